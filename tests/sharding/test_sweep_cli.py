"""``jaxsample sweep``: mistakes are one line on stderr and exit status 2, before any work."""

from __future__ import annotations

from pathlib import Path

import jax
import pytest

from jaxsample.cli import main


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if "compiling" not in ln]
    assert len(err) == 1, err
    assert err[0].startswith("jaxsample sweep: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--coordinator", "127.0.0.1:1234"], "go together"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"], "[0, "),
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "HOST:PORT"),
        (["--cpu-devices", "0"], "--cpu-devices must be >= 1"),
        (["--seeds", "0"], "seeds must be >= 1"),
        (["--taus", "1", "-0.5"], "finite and >= 0"),
        (["--top-p", "0"], "top_p must be in (0, 1]"),
        (["--prompts", "Tomorrow SHE"], "unknown words"),
        (["--max-tokens", "40"], "exceeds the model's context"),
    ],
)
def test_bad_flags(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", "--out", str(tmp_path), *flags]) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "sweep.json").exists()


def test_cpu_devices_after_jax_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jax.devices()  # this process's backend is running: the count is fixed
    assert main(["sweep", "--out", str(tmp_path), "--cpu-devices", "4"]) == 2
    assert "before JAX starts" in _error(capsys)
