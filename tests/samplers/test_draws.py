"""Exact draws of the new strategies: chi-square of ``sample`` against ``probs``.

For each strategy (the history ones bound to a fixed state) at V = 995 and V = 50257:
50,000 draws from one row by ``vmap`` over keys (the row's log-weights are computed
once and shared by the draws), zero support first, then a Pearson chi-square at
alpha = 1e-6 with fixed keys. One jitted function per strategy structure and size.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from tests.helpers import ALPHA, chi_square_p_value
from tests.samplers.test_vocabulary import _logits


@jax.jit
def probs_and_draws(
    z: jax.Array, keys: jax.Array, strategy: js.Strategy
) -> tuple[jax.Array, jax.Array]:
    """``probs(z, strategy)`` and one draw per key from the single row ``z``."""
    return js.probs(z, strategy), jax.vmap(lambda k: js.sample(k, z, strategy))(keys)


def fits(counts: np.ndarray, p: np.ndarray) -> bool:
    """No draw outside the support, and the chi-square test accepts."""
    return bool(counts[p == 0].sum() == 0) and chi_square_p_value(counts, p) > ALPHA


def _history(strategy: js.Strategy, vocab: int) -> js.History:
    """A state after a prompt and a few generated tokens with repeats."""
    ids = jnp.arange(12, dtype=jnp.int32) % 5 * 7 % vocab
    h = js.init_history(strategy, vocab, ids[:6], window=16)
    for t in ids[6:]:
        h = js.advance(strategy, h, t, logits=jnp.zeros((vocab,)))
    return h


DRAWN = {
    "min-p": js.MinP(0.05, tau=1.3),
    "typical": js.Typical(0.8),
    "epsilon": js.Epsilon(0.002, tau=1.2),
    "eta": js.Eta(0.002),
    "top-n-sigma": js.TopNSigma(1.0, tau=1.5),
    "xtc-mixture": js.XTC(0.02, 0.5),
    "xtc-cut": js.XTC(0.02, 0.5, coin=True),
    "logit-bias": js.LogitBias(jnp.where(jnp.arange(995) % 3 == 0, -2.0, 0.5)),
    "allow": js.Allow(jnp.arange(995) % 2 == 0),
    "ban": js.Ban(jnp.array([3, 7, 14, 42, 500])),
    "repetition": js.RepetitionPenalty(1.5),
    "frequency": js.FrequencyPenalty(1.0),
    "presence": js.PresencePenalty(1.5),
    "min-new-tokens": js.MinNewTokens(20, 7),
    "no-repeat-ngram": js.NoRepeatNGram(2),
    "dry": js.DRY(1.0, 1.75, 1),
    "mirostat2": js.Mirostat2(3.0, 0.1),
    "chain": js.chain(js.MinP(0.02), js.Temperature(1.4), js.Typical(0.9), js.TopNSigma(2.0)),
}
N_DRAWS = 50_000


@pytest.mark.parametrize("vocab", [995, 50257])
@pytest.mark.parametrize("name", sorted(DRAWN))
def test_sample_follows_probs(name: str, vocab: int) -> None:
    strategy = DRAWN[name]
    if isinstance(strategy, js.LogitBias | js.Allow):  # [V]-shaped parameters
        field = "bias" if isinstance(strategy, js.LogitBias) else "mask"
        value = getattr(strategy, field)
        strategy = type(strategy)(jnp.resize(value, (vocab,)))
    logits = _logits(vocab, zlib.crc32(name.encode()))
    if isinstance(strategy, js.Mirostat2):  # a mu that keeps the head of ~40 tokens
        strategy = js.bind(strategy, js.History(jnp.int32(0), mu=jnp.float32(7.0)))
    elif js.needs_history(strategy):
        strategy = js.bind(strategy, _history(strategy, vocab))
    keys = jax.random.split(jax.random.key(zlib.crc32(f"{name}{vocab}".encode())), N_DRAWS)
    p, ids = probs_and_draws(logits, keys, strategy)
    p = np.asarray(p, np.float64)
    plain = np.asarray(js.probs(logits, js.Temperature(1.0)), np.float64)
    assert np.abs(p - plain).max() > 1e-3  # the strategy changes this distribution
    assert (p > 0).sum() >= 3  # and leaves something to test
    counts = np.bincount(np.asarray(ids), minlength=vocab)
    assert counts[p == 0].sum() == 0  # zero support first
    assert chi_square_p_value(counts, p) > ALPHA


def test_chi_square_rejects_a_min_p_that_keeps_one_token_too_many() -> None:
    # The same check must fail a sampler whose min-p floor sits one token too low.
    logits = _logits(995, 1)
    s = js.MinP(0.05)
    keys = jax.random.split(jax.random.key(2), N_DRAWS)
    p, ids = probs_and_draws(logits, keys, s)
    p = np.asarray(p, np.float64)
    assert fits(np.bincount(np.asarray(ids), minlength=995), p)
    kept = int((p > 0).sum())
    _, wider = probs_and_draws(logits, keys, js.TopK(kept + 1))
    assert not fits(np.bincount(np.asarray(wider), minlength=995), p)
