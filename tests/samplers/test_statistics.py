"""Goodness of fit: the tokens `sample` draws follow `probs` (fixed keys, deterministic)."""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from tests.helpers import chi_square_p_value

V = 32
N = 50_000
ALPHA = 1e-6


def draws(key: jax.Array, logits: jax.Array, strategy: js.Strategy) -> np.ndarray:
    ids = js.sample(key, jnp.broadcast_to(logits, (N, logits.shape[-1])), strategy)
    return np.bincount(np.asarray(ids), minlength=logits.shape[-1])


LOGITS = jax.random.normal(jax.random.key(7), (V,)) * 1.5
WITH_NEG_INF = LOGITS.at[jnp.array([0, 5, 9])].set(-jnp.inf)

CASES = {
    "temperature-0.7": (LOGITS, js.Temperature(0.7)),
    "temperature-1.0": (LOGITS, js.Temperature(1.0)),
    "temperature-2.5": (LOGITS, js.Temperature(2.5)),
    "top-k-5": (LOGITS, js.TopK(5, tau=1.3)),
    "top-p-0.8": (LOGITS, js.TopP(0.8, tau=0.9)),
    "top-p-0.3-flat": (LOGITS * 0.1, js.TopP(0.3, tau=2.0)),
    "chain": (LOGITS, js.chain(js.Temperature(1.5), js.TopK(12), js.TopP(0.9))),
    "neg-inf-entries": (WITH_NEG_INF, js.Temperature(1.0)),
    "bfloat16-input": (LOGITS.astype(jnp.bfloat16), js.Temperature(1.0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_sample_follows_probs(name: str) -> None:
    logits, strategy = CASES[name]
    p = np.asarray(js.probs(logits, strategy), np.float64)
    counts = draws(jax.random.key(zlib.crc32(name.encode())), logits, strategy)
    # Zero support first: no draw may land on a token of probability 0.
    assert counts[p == 0].sum() == 0
    assert chi_square_p_value(counts, p) > ALPHA


def test_greedy_draws_only_the_argmax() -> None:
    counts = draws(jax.random.key(0), LOGITS, js.Greedy())
    assert counts[int(jnp.argmax(LOGITS))] == N


def test_chi_square_detects_an_off_by_one_nucleus() -> None:
    # The same check must reject a sampler whose nucleus keeps one token too many.
    logits, strategy = CASES["top-p-0.8"]
    kept = int(np.sum(np.asarray(js.probs(logits, strategy)) > 0))
    wider = np.asarray(js.probs(logits, js.TopK(kept + 1, tau=0.9)), np.float64)
    counts = draws(jax.random.key(1), logits, js.TopK(kept + 1, tau=0.9))
    assert chi_square_p_value(counts, np.asarray(js.probs(logits, strategy), np.float64)) < ALPHA
    assert chi_square_p_value(counts, wider) > ALPHA


def test_many_seeds_from_one_distribution() -> None:
    # 100 seeds of one row by vmap over keys equals the batched draw with per-row keys.
    keys = jax.random.split(jax.random.key(3), 100)
    one = jax.vmap(lambda k: js.sample(k, LOGITS, js.TopP(0.9)))(keys)
    batched = js.sample(keys, jnp.broadcast_to(LOGITS, (100, V)), js.TopP(0.9))
    np.testing.assert_array_equal(one, batched)
    assert len(set(np.asarray(one).tolist())) > 5
