"""Tests of jaxsample.training's checkpoints: exact kill-and-resume, damaged checkpoints.

The subprocess runs share a persistent XLA compilation cache so that only the first
one pays for compiling the train step.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsample import cli
from jaxsample.data import build_tokenizer
from jaxsample.model import GPTConfig, load_pretrained
from jaxsample.training import (
    CheckpointError,
    TrainConfig,
    params_sha256,
    restore_checkpoint,
    train,
)
from jaxsample.training.checkpoint import CheckpointDir

REPO = Path(__file__).resolve().parents[2]

# The subprocess runs: tiny preset, 240 steps, a checkpoint every 40 steps.
STEPS = 240
SAVE_EVERY = 40
TRAIN_ARGS = ["--size", "tiny", "--steps", str(STEPS), "--save-every", str(SAVE_EVERY)]


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sub_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("xla_cache"))
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def train_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "jaxsample", "train", "--out", str(out), *TRAIN_ARGS,
            "--no-progress"]  # fmt: skip


# The training command, in a process that kills itself while saving a given step: after
# every item (and the file list) is in the temporary folder, just before the rename that
# commits it. Orbax's commit is patched here, in the test, so that the worst moment of
# a save is hit deterministically.
KILL_DURING_SAVE = """
import os, signal, sys
import orbax.checkpoint as ocp
from jaxsample.cli import main
rename = ocp.path.atomicity.AtomicRenameTemporaryPath
commit = rename.finalize
async def finalize(self, *args, **kwargs):
    if self.get_final().name == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
    return await commit(self, *args, **kwargs)
rename.finalize = finalize
sys.exit(main(sys.argv[2:]))
"""


def train_cmd_killed_at(out: Path, step: int) -> list[str]:
    return [sys.executable, "-c", KILL_DURING_SAVE, str(step), *train_cmd(out)[3:]]


def run_train(out: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(train_cmd(out), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def summary_sha(stdout: str) -> str:
    line = stdout.strip().splitlines()[-1]
    assert line.startswith(f"step {STEPS}/{STEPS}"), line
    return line.split("params sha256 ")[1].strip()


def committed_steps(run: Path) -> list[int]:
    return sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, sub_env: dict[str, str]) -> Path:
    """An uninterrupted run of the test command."""
    out = tmp_path_factory.mktemp("reference") / "run"
    stdout = run_train(out, sub_env)
    (out / "summary.txt").write_text(stdout)
    return out


def reference_sha(run: Path) -> str:
    return summary_sha((run / "summary.txt").read_text())


@pytest.fixture
def run_copy(reference_run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(reference_run, dst)
    return dst


def data_files(item_dir: Path) -> list[Path]:
    files = sorted(p for p in item_dir.rglob("*") if p.is_file() and p.parent.name == "d")
    assert files, f"no data files under {item_dir}"
    return files


# ---------------------------------------------------------------------------------------
# Exact resume after SIGKILL
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_uninterrupted_run_is_reproducible_and_reported(
    reference_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sha = reference_sha(reference_run)
    assert committed_steps(reference_run) == [160, 200, 240]  # the last three are kept
    assert (reference_run / "loss_curve.png").stat().st_size > 10_000
    state = restore_checkpoint(reference_run)
    assert state.step == STEPS and params_sha256(state.params) == sha
    assert state.meta["data_position"] == STEPS
    assert cli.main(["info", str(reference_run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == STEPS and info["params_sha256"] == sha
    assert info["val_loss"] == pytest.approx(state.evals[-1].val_loss)


@pytest.mark.slow
def test_loss_decreases_on_tiny_preset(reference_run: Path) -> None:
    curve = json.loads((reference_run / "loss_curve.json").read_text())
    evals = curve["evals"]
    assert [e["step"] for e in evals] == [*range(0, STEPS + 1, 50), STEPS]
    assert evals[0]["val_loss"] == pytest.approx(np.log(build_tokenizer().vocab_size), abs=0.1)
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 3.0
    assert all(b["train_loss"] < a["train_loss"] for a, b in itertools.pairwise(evals))
    losses = curve["step_losses"]
    assert len(losses) == STEPS and np.mean(losses[-20:]) < np.mean(losses[:20]) - 2.0


@pytest.mark.slow
def test_sigkill_at_random_moment_then_resume_is_bitwise_identical(
    reference_run: Path, sub_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    rng = np.random.default_rng(20261122)
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(train_cmd(out), env=sub_env, stdout=log, stderr=log)

    def wait_for(step: int) -> float:
        path = out / "checkpoints" / str(step)
        deadline = time.monotonic() + 240
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        assert path.exists(), f"the run never wrote checkpoint {step}"
        return time.monotonic()

    # Time one checkpoint interval, then kill at a seeded random moment within the
    # next three (the run has four left after step 2 * SAVE_EVERY).
    first = wait_for(SAVE_EVERY)
    interval = wait_for(2 * SAVE_EVERY) - first
    time.sleep(float(rng.uniform(0.0, 3.0)) * interval)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = committed_steps(out)
    assert killed_at and killed_at[-1] < STEPS, killed_at

    stdout = run_train(out, sub_env)
    assert summary_sha(stdout) == reference_sha(reference_run)


@pytest.mark.slow
def test_sigkill_during_save_keeps_previous_checkpoint_and_resumes_exactly(
    reference_run: Path, sub_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    kill_step = 3 * SAVE_EVERY
    proc = subprocess.run(
        train_cmd_killed_at(out, kill_step),
        env=sub_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpt = out / "checkpoints"
    assert committed_steps(out) == [SAVE_EVERY, 2 * SAVE_EVERY]
    leftovers = [p.name for p in ckpt.iterdir() if p.name.startswith(f"{kill_step}.")]
    assert leftovers, "the interrupted save left no temporary folder"
    # The previous checkpoint is intact and the half-written one is invisible.
    state = restore_checkpoint(out)
    assert state.step == 2 * SAVE_EVERY

    stdout = run_train(out, sub_env)
    assert summary_sha(stdout) == reference_sha(reference_run)
    assert all(p.name.isdigit() for p in ckpt.iterdir()), sorted(p.name for p in ckpt.iterdir())


# ---------------------------------------------------------------------------------------
# Damaged or mismatched checkpoints
# ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_truncated_data_file_is_reported(run_copy: Path) -> None:
    target = data_files(run_copy / "checkpoints" / "240" / "params")[0]
    with open(target, "r+b") as fh:
        fh.truncate(target.stat().st_size // 2)
    with pytest.raises(CheckpointError, match=r"checkpoints/240"):
        restore_checkpoint(run_copy)


@pytest.mark.slow
def test_flipped_bytes_are_reported(run_copy: Path) -> None:
    for target in data_files(run_copy / "checkpoints" / "240" / "train_state"):
        raw = bytearray(target.read_bytes())
        for i in range(len(raw) // 2, min(len(raw), len(raw) // 2 + 8)):
            raw[i] ^= 0xFF
        target.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"checkpoints/240"):
        restore_checkpoint(run_copy)
    # Without the optimiser state the (intact) parameters still load.
    assert restore_checkpoint(run_copy, with_optimizer=False).step == STEPS


@pytest.mark.slow
def test_truncated_metadata_is_reported(run_copy: Path) -> None:
    meta = run_copy / "checkpoints" / "240" / "meta" / "metadata"
    meta.write_bytes(meta.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"240/meta"):
        restore_checkpoint(run_copy)


def _edit_meta(run: Path, step: int, edit: Any) -> None:
    path = run / "checkpoints" / str(step) / "meta" / "metadata"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


@pytest.mark.slow
def test_changed_saved_config_is_reported(run_copy: Path) -> None:
    tiny = GPTConfig.preset("tiny", build_tokenizer().vocab_size)

    def widen(meta: dict[str, Any]) -> None:
        meta["model_config"]["d_model"] = 64

    _edit_meta(run_copy, 240, widen)
    with pytest.raises(CheckpointError, match=r"model_config\.d_model is 64 in the checkpoint"):
        restore_checkpoint(run_copy, expected_model=tiny)
    # Without an expectation, the stored arrays contradict the (edited) config.
    with pytest.raises(
        CheckpointError,
        match=r"240/params: field 'h/0/attn/c_attn/b' has shape \(96,\), expected \(192,\)",
    ):
        restore_checkpoint(run_copy)


@pytest.mark.slow
def test_tiny_checkpoint_against_small_config_is_reported(
    run_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = GPTConfig.preset("small", build_tokenizer().vocab_size)
    with pytest.raises(CheckpointError, match=r"model_config\.n_layer is 1 .* 4 was requested"):
        restore_checkpoint(run_copy, expected_model=small)
    # The command line refuses to resume it as a small run, in one line, touching nothing.
    before = committed_steps(run_copy)
    assert cli.main(["train", "--out", str(run_copy), "--size", "small", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train_config.size is 'tiny'" in err
    assert committed_steps(run_copy) == before


@pytest.mark.slow
def test_changed_run_length_is_refused(run_copy: Path) -> None:
    config = TrainConfig.for_size("tiny", steps=STEPS + 10, save_every=SAVE_EVERY)
    with pytest.raises(CheckpointError, match=r"train_config\.steps is 240 .* 250 was requested"):
        train(run_copy, config, progress=False)


@pytest.mark.slow
def test_wrong_dtype_is_reported(run_copy: Path) -> None:
    state = restore_checkpoint(run_copy)
    params = dict(state.params)
    params["wte"] = params["wte"].astype(jnp.float16)
    ckdir = run_copy / "checkpoints"
    shutil.rmtree(ckdir / "240")
    with CheckpointDir(ckdir, ("params", "train_state")) as ckpts:
        ckpts.save(
            240,
            {"params": params,
             "train_state": {"opt_state": state.opt_state, "rng_key": state.rng_key}},
            state.meta,
        )  # fmt: skip
    with pytest.raises(CheckpointError, match=r"field 'wte' has dtype float16, expected float32"):
        restore_checkpoint(run_copy)


@pytest.mark.slow
def test_digest_mismatch_is_reported(run_copy: Path) -> None:
    def tamper(meta: dict[str, Any]) -> None:
        meta["leaf_sha256"]["params"]["ln_f/g"] = "0" * 64

    _edit_meta(run_copy, 240, tamper)
    with pytest.raises(CheckpointError, match=r"field 'ln_f/g' is damaged"):
        restore_checkpoint(run_copy)


def test_missing_or_empty_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        restore_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        restore_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither an exported model"):
        load_pretrained(tmp_path)
    assert cli.main(["info", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxsample info: error:") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(tmp_path), "--size", "huge"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--out", str(tmp_path), "--steps", "0"])
