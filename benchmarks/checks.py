"""Correctness checks run by the smoke mode: valid tokens and matching distributions."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxsample as js
from benchmarks.logits import gaussian_logits, heavy_tailed_logits, llm_like_logits
from benchmarks.peers import SPECS, TOP_P_HOT, implementations

#: Largest allowed difference between two exact implementations' probabilities.
PROBS_TOL = 2e-5
#: Largest allowed total variation between jaxsample's empirical and exact frequencies.
TV_TOL = 0.05


def check_rows(vocab: int) -> np.ndarray:
    """The rows the checks use: two LLM-like, one Gaussian and one heavy-tailed row.

    float32 ``[4, vocab]``, the shape of the smoke mode's sampler table, so that the
    table reuses the functions compiled here. The near-tie family is left out: its
    nucleus cut falls inside groups of tokens whose logits differ by a few float32
    ulps, where NumPy's float32 cumsum and jaxsample's fixed-order sums (with
    ``TOP_P_SLACK``) may decide a token differently, which is no error of either.
    """
    rng = np.random.default_rng(99)
    return np.concatenate(
        [
            llm_like_logits(rng, 2, vocab),
            gaussian_logits(rng, 1, vocab),
            heavy_tailed_logits(rng, 1, vocab),
        ]
    )


def check_samplers(vocab: int, with_hf: bool, draws: int) -> list[dict[str, Any]]:
    """Check every implementation's tokens, and the exact ones' distributions.

    For each spec (:data:`SPECS` and top-p 0.9 at tau 1.5) on :func:`check_rows`:
    each implementation's sampled ids lie in ``[0, V)``; jaxsample's, naive JAX's and
    (when present) Hugging Face's exact distributions equal the NumPy peer's to
    ``PROBS_TOL``; and, for the chain of all filters, ``draws`` jaxsample draws from
    the first row have total variation at most ``TV_TOL`` from the NumPy peer's
    distribution.
    """
    rows = check_rows(vocab)
    out: list[dict[str, Any]] = []
    for spec in (*SPECS, TOP_P_HOT):
        impls = implementations(spec, with_hf=with_hf)
        ref = next(i for i in impls if i.name == "numpy")
        assert ref.probs is not None
        target = np.stack([ref.probs(r) for r in rows])
        for impl in impls:
            if impl.name == "floor":
                continue
            data = jnp.asarray(rows) if impl.is_jax else rows
            ids = np.asarray(impl.sample(data))
            rec: dict[str, Any] = {
                "vocab": vocab,
                "sampler": spec.name,
                "tau": None if spec.greedy else spec.tau,
                "impl": impl.name,
                "tokens_valid": bool(
                    ids.shape == (len(rows),) and np.all((ids >= 0) & (ids < vocab))
                ),
            }
            if impl.probs is not None and impl is not ref:
                rec["max_abs_probs_diff"] = float(np.max(np.abs(impl.probs(rows) - target)))
            out.append(rec)
        if spec.name == "chain":
            tiled = jnp.broadcast_to(jnp.asarray(rows[0]), (draws, vocab))
            ids = np.asarray(js.sample(jax.random.key(5), tiled, spec.strategy()))
            freq = np.bincount(ids, minlength=vocab) / draws
            out.append(
                {
                    "vocab": vocab,
                    "sampler": spec.name,
                    "impl": "jaxsample",
                    "draws": draws,
                    "total_variation": float(0.5 * np.sum(np.abs(freq - target[0]))),
                }
            )
    return out


def failures(records: list[dict[str, Any]]) -> list[str]:
    """Human-readable descriptions of the records that fail a check."""
    bad = []
    for r in records:
        tau = "" if r.get("tau") is None else f" (tau {r['tau']})"
        where = f"{r['sampler']}{tau} / {r['impl']} at V={r['vocab']}"
        if r.get("tokens_valid") is False:
            bad.append(f"{where}: token ids out of range")
        if r.get("max_abs_probs_diff", 0.0) > PROBS_TOL:
            bad.append(f"{where}: distribution differs by {r['max_abs_probs_diff']:.2e}")
        if r.get("total_variation", 0.0) > TV_TOL:
            bad.append(f"{where}: empirical total variation {r['total_variation']:.3f}")
    return bad
