"""The six labs in CI: each quick mode exits 0, and the temperature labs' outputs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxsample.cli import main
from jaxsample.labs import Finding, LabReport, simulator, temperature_sweep, z_score
from jaxsample.labs.commands import LABS
from jaxsample.labs.temperature_sweep import distinct_count_moments


def _manifest(out: Path) -> dict:  # type: ignore[type-arg]
    m = json.loads((out / "manifest.json").read_text())
    for name in m["files"]:
        assert (out / name).stat().st_size > 0, name
    assert {"jax", "jaxlib", "numpy", "jaxsample"} <= set(m["versions"])
    assert m["device"]["platform"]
    return m  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Every lab, quick mode, through the command line: a failed check fails CI.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LABS))
def test_quick_mode_exits_0_and_prints_findings_and_checks(
    name: str, quick_lab: Callable[[str], Any]
) -> None:
    run = quick_lab(name)
    m = run.manifest
    failed = [c for c in m["checks"] if not c["passed"]]
    assert run.status == 0, f"{name}: failed checks {failed}"
    assert m["all_passed"] and m["parameters"]["quick"] is True
    assert m["checks"], "a lab must record checks of the software"
    for c in m["checks"]:
        assert f"PASS  {c['name']}: {c['measured']}" in run.stdout
    for f in m["findings"]:
        verdict = "holds" if f["holds"] else "does not hold"
        assert f"{verdict:<13}  {f['name']}: {f['measured']}" in run.stdout
    assert f"{len(m['checks'])}/{len(m['checks'])} checks passed" in run.stdout
    _manifest(run.out)


# ---------------------------------------------------------------------------------------
# Findings, checks and standard errors
# ---------------------------------------------------------------------------------------


def test_a_finding_never_fails_the_report(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # type: ignore[type-arg]
    report = LabReport("demo", tmp_path, seed=0)
    report.check("identity", "0", "0", True)
    f = report.finding("a claim", "0.21", "30-40%", False, "it cannot hold")
    assert isinstance(f, Finding) and report.passed
    report.check("broken", "1", "0", False)
    assert not report.passed
    report.write_manifest()
    report.print_checks()
    out = capsys.readouterr().out
    assert "does not hold  a claim: 0.21 (claim: 30-40%)" in out and "it cannot hold" in out
    assert "FAIL  broken" in out and "1/2 checks passed; 0/1 claims hold" in out
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["findings"] == [
        {
            "name": "a claim",
            "measured": "0.21",
            "claim": "30-40%",
            "holds": False,
            "note": "it cannot hold",
        }
    ]
    assert not m["all_passed"]


def test_z_score_at_a_zero_standard_error() -> None:
    assert z_score(0.5, 0.25) == 2.0
    assert z_score(0.0, 0.0) == 0.0
    assert z_score(1e-9, 0.0) == math.inf
    assert z_score(-1e-9, 0.0) == -math.inf
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="standard error"):
            z_score(0.0, bad)


def test_distinct_count_moments_match_enumeration() -> None:
    # Three tokens, three draws: enumerate all 27 sequences.
    q = np.array([0.5, 0.3, 0.2])
    counts, weights = [], []
    for a in range(3):
        for b in range(3):
            for c in range(3):
                counts.append(len({a, b, c}))
                weights.append(q[a] * q[b] * q[c])
    w = np.array(weights)
    mean = float(np.sum(w * counts))
    sd = math.sqrt(float(np.sum(w * (np.array(counts) - mean) ** 2)))
    got = distinct_count_moments(q, 3)
    assert got[0] == pytest.approx(mean, abs=1e-12)
    assert got[1] == pytest.approx(sd, abs=1e-12)
    # A certain token cannot vary; zeros are ignored.
    assert distinct_count_moments([0.0, 1.0, 0.0], 7) == (1.0, 0.0)
    with pytest.raises(ValueError, match="non-negative"):
        distinct_count_moments([0.5, -0.5], 2)
    with pytest.raises(ValueError, match="n must be"):
        distinct_count_moments([1.0], 0)


# ---------------------------------------------------------------------------------------
# The temperature labs' outputs
# ---------------------------------------------------------------------------------------


def test_temperature_sweep(quick_lab: Callable[[str], Any]) -> None:
    run = quick_lab("temperature-sweep")
    m = _manifest(run.out)
    for f in ["entropy_curve_synthetic.png", "entropy_curve_model.png", "unique_tokens_by_tau.png"]:
        assert f in m["files"]
    assert m["parameters"]["sweep_taus"] == list(temperature_sweep.SWEEP_TAUS)
    assert m["model"]["params_sha256"]
    assert run.stdout.count("PASS") + run.stdout.count("FAIL") == len(m["checks"]) == 4
    assert len(m["findings"]) == 5
    assert m["all_passed"], run.stdout
    data = json.loads((run.out / "unique_tokens_by_tau.json").read_text())
    assert data["in_claimed_range"] == [f["holds"] for f in m["findings"][1:4]]


def test_simulator(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = simulator.run(tmp_path, seed=1)
    m = _manifest(tmp_path)
    assert {"entropy_vs_temperature.png", "approve_claims.png"} <= set(m["files"])
    data = json.loads((tmp_path / "settings.json").read_text())
    assert [d["temperature"] for d in data] == list(simulator.TEMPERATURES)
    names = {c.name: c for c in report.checks}
    assert names["entropy increases with temperature"].passed
    assert names["empirical frequencies match the exact distribution"].passed
    assert names["temperature keeps the order of the tokens"].passed
    # The simulator's 30-40% claim at tau = 2 contradicts softmax(z / 2) = 0.213: a finding
    # that does not hold, which leaves the run passing.
    claims = {f.name: f for f in report.findings}
    assert not claims["'approve' at tau = 2.0"].holds
    assert claims["'approve' at tau = 0.1"].holds
    assert report.passed
    assert "cannot hold" in capsys.readouterr().out


def test_temperature_theory(quick_lab: Callable[[str], Any]) -> None:
    run = quick_lab("temperature-theory")
    m = _manifest(run.out)
    assert {"limits.png", "entropy_derivative.png", "calibration.png"} <= set(m["files"])
    assert m["all_passed"], run.stdout
    tau = json.loads((run.out / "theory.json").read_text())["calibration"]["tau"]
    assert m["findings"][0]["holds"] == (tau > 1)


def test_lab_command_line(tmp_path: Path) -> None:
    assert main(["lab", "temperature-sweep", "--out", str(tmp_path / "ts"), "--seed", "3"]) == 0
    m = json.loads((tmp_path / "ts" / "manifest.json").read_text())
    assert m["seed"] == 3 and m["all_passed"]
    with pytest.raises(SystemExit):
        main(["lab", "no-such-lab"])


# ---------------------------------------------------------------------------------------
# The diversity and exercises labs' outputs (their quick runs, shared above)
# ---------------------------------------------------------------------------------------


def _check_outputs(out: Path, manifest: dict[str, Any], name: str) -> dict[str, Any]:
    assert manifest["lab"] == name
    assert manifest["checks"], "a lab must record acceptance checks"
    assert manifest["all_passed"] == all(c["passed"] for c in manifest["checks"])
    pngs = [f for f in manifest["files"] if f.endswith(".png")]
    jsons = [f for f in manifest["files"] if f.endswith(".json")]
    assert pngs and jsons
    for f in manifest["files"]:
        assert (out / f).stat().st_size > 0, f
    for f in jsons:
        json.loads((out / f).read_text())
    assert manifest["model"]["params_sha256"]
    return manifest


def test_diversity_lab_quick(quick_lab: Callable[[str], Any]) -> None:
    from jaxsample.labs import diversity

    run = quick_lab("diversity-vs-correctness")
    _check_outputs(run.out, run.manifest, "diversity-vs-correctness")
    curve = json.loads((run.out / "diversity_vs_correctness.json").read_text())
    assert len(curve["points"]) == len(diversity.SETTINGS)
    assert curve["pareto_front"]
    # Greedy repeats itself whatever the sample size.
    assert curve["points"][0]["distinct_completions"] == 1.0
    # Standard errors are never 0, even for a share of exactly 0 or 1.
    assert all(pt["correctness_se"] > 0 for pt in curve["points"])
    # Min-p, typical and top-n-sigma at tau 1 to 3 against top-p and pure temperature.
    curves = curve["correctness_against_tau"]["curves"]
    assert set(curves) == {"temperature", "top-p 0.9", "min-p 0.1", "typical 0.9", "top-n-sigma 1"}
    assert all(len(c) == len(diversity.HOT_LADDER) for c in curves.values())
    assert any(f["name"].startswith("min-p keeps correctness") for f in run.manifest["findings"])


def test_exercises_lab_quick(quick_lab: Callable[[str], Any]) -> None:
    from jaxsample.labs import exercises

    run = quick_lab("exercises")
    manifest = _check_outputs(run.out, run.manifest, "exercises")
    by_name = {c["name"]: c for c in manifest["checks"]}
    # The deterministic parts cannot depend on the sample size.
    resume = next(c for n, c in by_name.items() if n.startswith("5.4 resuming"))
    assert resume["passed"], resume
    losses = next(c for n, c in by_name.items() if n.startswith("5.5"))
    assert losses["passed"], losses
    ex51 = json.loads((run.out / "ex5_1.json").read_text())
    assert ex51["exact"][0] == pytest.approx(
        math.exp(4) / sum(math.exp(2 * v) for v in exercises.FOOD_LOGITS)
    )


def test_a_lab_given_the_model_object_matches_its_default_run(
    tmp_path: Path, quick_lab: Callable[[str], Any]
) -> None:
    from jaxsample.model import load_pretrained

    report = temperature_sweep.run(tmp_path, seed=0, model=load_pretrained(), quick=True)
    default = quick_lab("temperature-sweep").manifest
    assert [c.measured for c in report.checks] == [c["measured"] for c in default["checks"]]
    assert [f.measured for f in report.findings] == [f["measured"] for f in default["findings"]]


def test_top_k_top_p_lab_through_the_cli(quick_lab: Callable[[str], Any]) -> None:
    run = quick_lab("top-k-top-p")
    manifest = run.manifest
    assert run.status == (0 if manifest["all_passed"] else 1)
    assert manifest["seed"] == 0
    for c in manifest["checks"]:
        line = ("PASS" if c["passed"] else "FAIL") + f"  {c['name']}: {c['measured']}"
        assert line in run.stdout
    assert {"kept_vs_k.png", "kept_vs_p.png", "temperature_order.png"} <= set(manifest["files"])
