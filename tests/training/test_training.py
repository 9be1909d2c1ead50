"""Tests of jaxsample.training: exact kill-and-resume, damaged checkpoints, the shipped model.

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

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsample import cli
from jaxsample.data import build_tokenizer, check_completion, generate_corpus, heldout_prompts
from jaxsample.model import SHIPPED_MODEL_DIR, GPTConfig, count_params, forward, load_pretrained
from jaxsample.model.params import leaf_digests
from jaxsample.training import (
    CheckpointError,
    TrainConfig,
    params_sha256,
    restore_checkpoint,
    train,
)
from jaxsample.training.checkpoint import CheckpointDir
from jaxsample.training.data import batch_indices

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


# ---------------------------------------------------------------------------------------
# Configuration, data order and hashing
# ---------------------------------------------------------------------------------------


def test_train_config_validation_and_round_trip() -> None:
    config = TrainConfig.for_size("tiny", steps=50, seed=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig() == TrainConfig.for_size("small")
    with pytest.raises(ValueError, match=r"TrainConfig\.size"):
        TrainConfig(size="huge")
    with pytest.raises(ValueError, match=r"TrainConfig\.batch_size"):
        TrainConfig.for_size("tiny", batch_size=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig.for_size("tiny", steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.for_size("tiny", learning_rate=float("nan"))
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.for_size("tiny", lr=1.0)
    with pytest.raises(ValueError, match="missing keys"):
        TrainConfig.from_dict({"size": "tiny"})


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    n, b = 103, 10
    epoch0 = np.concatenate([batch_indices(n, b, 7, s) for s in range(10)])
    assert len(set(epoch0.tolist())) == 100  # one epoch: distinct rows, last 3 dropped
    assert np.array_equal(batch_indices(n, b, 7, 13), batch_indices(n, b, 7, 13))
    assert not np.array_equal(batch_indices(n, b, 7, 3), batch_indices(n, b, 8, 3))
    assert not np.array_equal(batch_indices(n, b, 7, 0), batch_indices(n, b, 7, 10))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(5, 6, 0, 0)


def test_params_sha256_is_canonical() -> None:
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.zeros(2, np.float32)]}
    b = {"b": [jnp.zeros(2, jnp.float32)], "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3)}
    assert params_sha256(a) == params_sha256(b)
    assert len(params_sha256(a)) == 64
    assert params_sha256(a) != params_sha256({**a, "w": a["w"].reshape(3, 2)})
    assert params_sha256(a) != params_sha256({**a, "w": a["w"].astype(np.float64)})
    assert params_sha256(a) != params_sha256({"v": a["w"], "b": a["b"]})
    flipped = a["w"].copy()
    flipped.view(np.uint32)[0, 0] ^= 1
    assert params_sha256(a) != params_sha256({**a, "w": flipped})
    assert set(leaf_digests(a)) == {"w", "b/0"}


# ---------------------------------------------------------------------------------------
# The shipped model
# ---------------------------------------------------------------------------------------


def _manifest() -> dict[str, Any]:
    return json.loads((SHIPPED_MODEL_DIR / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_shipped_model_loads_and_matches_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    model = load_pretrained()
    manifest = _manifest()
    assert params_sha256(model.params) == manifest["params_sha256"]
    assert model.config == GPTConfig.from_dict(manifest["model_config"])
    assert model.config == GPTConfig.preset("small", model.tokenizer.vocab_size)
    assert 1_000_000 <= count_params(model.params) <= 3_000_000
    assert model.tokenizer == build_tokenizer()
    assert manifest["corpus_sha256"] == generate_corpus(manifest["corpus_seed"]).sha256
    # `jaxsample train --size small` regenerates it: the defaults are the manifest's.
    assert TrainConfig.for_size("small").to_dict() == manifest["train_config"]
    assert TrainConfig.from_dict(manifest["train_config"]) == TrainConfig()
    size = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 10_000_000
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params_sha256"] == manifest["params_sha256"]
    assert info["step"] == manifest["steps"]
    assert info["val_loss"] == manifest["final_val_loss"]


def test_shipped_large_model_loads_and_matches_manifest() -> None:
    folder = SHIPPED_MODEL_DIR.parent / "mini_gpt_large"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = load_pretrained(folder)
    assert params_sha256(model.params) == manifest["params_sha256"]
    assert model.config == GPTConfig.preset("large", model.tokenizer.vocab_size)
    assert TrainConfig.for_size("large").to_dict() == manifest["train_config"]
    assert model.tokenizer == build_tokenizer()
    # Larger and trained longer than the shipped small model: lower validation loss.
    assert manifest["final_val_loss"] < _manifest()["final_val_loss"]


def test_shipped_model_damage_is_reported(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, dst)
    raw = bytearray((dst / "params.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (dst / "params.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"params\.npz"):
        load_pretrained(dst)
    (dst / "params.npz").write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(CheckpointError, match=r"params\.npz"):
        load_pretrained(dst)


@pytest.mark.slow
def test_manifest_settings_reproduce_recorded_first_losses(tmp_path: Path) -> None:
    manifest = _manifest()
    recorded = manifest["first_step_losses"]
    config = TrainConfig.from_dict(manifest["train_config"])
    result = train(tmp_path / "run", config, progress=False, until=len(recorded))
    assert result.step == len(recorded) == 20
    np.testing.assert_allclose(result.step_losses, recorded, rtol=0, atol=1e-5)


def _greedy(model: Any, prompts: list[str]) -> list[str]:
    tok, cfg = model.tokenizer, model.config
    buf = np.full((len(prompts), cfg.n_ctx), tok.pad_id, np.int32)
    lens = np.zeros(len(prompts), np.int64)
    for i, prompt in enumerate(prompts):
        ids = tok.encode(prompt, bos=True)
        buf[i, : len(ids)] = ids
        lens[i] = len(ids)
    start, done = lens.copy(), np.zeros(len(prompts), bool)
    step = jax.jit(lambda p, x: jnp.argmax(forward(p, x, cfg), axis=-1))
    while not done.all():
        # Right padding is invisible to earlier positions under causal attention.
        nxt = np.asarray(step(model.params, jnp.asarray(buf)))[np.arange(len(prompts)), lens - 1]
        for i in np.flatnonzero(~done):
            if nxt[i] == tok.eos_id:
                done[i] = True
            else:
                buf[i, lens[i]] = nxt[i]
                lens[i] += 1
                done[i] = lens[i] >= cfg.n_ctx
    return [tok.decode(buf[i, start[i] : lens[i]].tolist()) for i in range(len(prompts))]


def test_shipped_model_acceptance() -> None:
    model = load_pretrained()
    tok = model.tokenizer
    ids = jnp.asarray([tok.encode("Tomorrow she", bos=True)], jnp.int32)
    logits = forward(model.params, ids, model.config)[0, -1]
    distinct = {}
    for tau in (0.5, 1.0, 2.0):
        keys = jax.random.split(jax.random.key(1234), 100)
        draws = jax.vmap(lambda k, t=tau: jax.random.categorical(k, logits / t))(keys)
        distinct[tau] = len(set(np.asarray(draws).tolist()))
    assert 1 <= distinct[0.5] <= 3 and 5 <= distinct[1.0] <= 15 and distinct[2.0] >= 20, distinct
    prompts = heldout_prompts(generate_corpus(_manifest()["corpus_seed"]))
    completions = _greedy(model, prompts)
    ok = [check_completion(p, c).ok for p, c in zip(prompts, completions, strict=True)]
    assert np.mean(ok) >= 0.95, [
        (p, c) for p, c, good in zip(prompts, completions, ok, strict=True) if not good
    ]
