"""Smoke tests of the temperature labs: files, manifest and acceptance lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxsample.cli import main
from jaxsample.labs import simulator, temperature_sweep, temperature_theory


def _manifest(out: Path) -> dict:  # type: ignore[type-arg]
    m = json.loads((out / "manifest.json").read_text())
    for name in m["files"]:
        assert (out / name).stat().st_size > 0, name
    assert {"jax", "jaxlib", "numpy", "jaxsample"} <= set(m["versions"])
    assert m["device"]["platform"]
    return m  # type: ignore[no-any-return]


def test_temperature_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = temperature_sweep.run(tmp_path, seed=0)
    m = _manifest(tmp_path)
    for f in ["entropy_curve_synthetic.png", "entropy_curve_model.png", "unique_tokens_by_tau.png"]:
        assert f in m["files"]
    assert m["parameters"]["sweep_taus"] == list(temperature_sweep.SWEEP_TAUS)
    assert m["model"]["params_sha256"]
    out = capsys.readouterr().out
    assert out.count("PASS") + out.count("FAIL") == len(report.checks) == 7
    assert report.passed, out


def test_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = simulator.run(tmp_path, seed=1)
    m = _manifest(tmp_path)
    assert "entropy_vs_temperature.png" in m["files"]
    data = json.loads((tmp_path / "settings.json").read_text())
    assert [d["temperature"] for d in data] == list(simulator.TEMPERATURES)
    names = {c.name: c for c in report.checks}
    assert names["entropy increases with temperature"].passed
    assert names["empirical frequencies match the exact distribution"].passed
    # The simulator's 30-40% claim at tau = 2 contradicts softmax(z / 2) = 0.213: reported FAIL.
    assert not names["'approve' at tau = 2.0 (claim: 30-40%)"].passed
    assert "cannot hold" in capsys.readouterr().out


def test_temperature_theory(tmp_path: Path) -> None:
    report = temperature_theory.run(tmp_path, seed=0, quick=True)
    m = _manifest(tmp_path)
    assert {"limits.png", "entropy_derivative.png", "calibration.png"} <= set(m["files"])
    assert report.passed, [c.line() for c in report.checks]


def test_lab_command_line(tmp_path: Path) -> None:
    assert main(["lab", "temperature-sweep", "--out", str(tmp_path / "ts"), "--seed", "3"]) == 0
    m = json.loads((tmp_path / "ts" / "manifest.json").read_text())
    assert m["seed"] == 3 and m["all_passed"]
    with pytest.raises(SystemExit):
        main(["lab", "no-such-lab"])
