"""The benchmarks' smoke mode: every implementation runs and the exact ones agree."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.decode import DECODE_METHODS
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
    # The smoke mode times the table in two windows, as a full run does in three.
    assert all(len(r["window_median_ms"]) == 2 for r in data["samplers"] if "median_ms" in r)
    # Every decode method ran, produced all its tokens (no <eos>) and drew the tokens of
    # the KV-cache scan from the same keys (up to float rounding, which could flip a
    # draw and so the rest of its row).
    decode = data["decode"]["results"]
    assert {r["method"] for r in decode} == set(DECODE_METHODS)
    for r in decode:
        assert r["tokens_per_s"] > 0 and r["eos_drawn"] == 0
        assert r["same_tokens_as_scan_kv_cache"] >= 0.5
    assert "| new tokens | scan, KV cache |" in (tmp_path / "results.md").read_text()
