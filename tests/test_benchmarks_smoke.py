"""The benchmarks' smoke mode: every implementation runs and the exact ones agree."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.run import run


def test_smoke_mode_runs_and_checks_pass(tmp_path: Path) -> None:
    results = run(smoke=True, out=tmp_path, log=lambda _: None)
    assert results["checks"]["failures"] == []
    records = results["checks"]["records"]
    assert all(r["tokens_valid"] for r in records if "tokens_valid" in r)
    compared = {r["impl"] for r in records if "max_abs_probs_diff" in r}
    assert {"jaxsample", "naive_jax"} <= compared
    if results["hf_peer"] == "included":
        assert "hf" in compared
    # Every output is written and readable.
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["machine"]["jax_backend"]
    assert {"samplers", "sweep", "seeds", "decode"} <= data.keys()
    assert "| B | V | sampler |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "results.png").stat().st_size > 0
    timed = {(r["sampler"], r["impl"]) for r in data["samplers"] if "median_ms" in r}
    assert ("top-p", "jaxsample") in timed and ("top-p", "floor") in timed
