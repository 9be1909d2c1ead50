"""The history strategies on bare logits: engine parity, the state, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from tests.samplers import engine_cases

HISTORY = ("repetition", "no_repeat_ngram", "min_new_tokens", "penalties", "dry", "mirostat2")


@pytest.mark.parametrize("case", engine_cases.cases(*HISTORY), ids=lambda c: c["name"])
def test_probs_match_the_engine(case: dict) -> None:
    expected = engine_cases.engine_probs(case)
    got = engine_cases.jaxsample_probs(case)
    np.testing.assert_array_equal(got > 0, expected > 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_history_fixtures_change_the_distribution() -> None:
    _, arrays = engine_cases.load()
    plain = np.asarray(js.probs(jnp.asarray(arrays["logits"]), js.Temperature(1.0)))
    for case in engine_cases.cases(*HISTORY):
        if case["name"] == "hf-min_new_tokens-14":  # 14 tokens generated: EOS allowed again
            continue
        assert np.abs(engine_cases.engine_probs(case) - plain).max() > 1e-3, case["name"]


def _state(strategy: js.Strategy, context: list[int], prompt: int, vocab: int = 50) -> js.History:
    h = js.init_history(strategy, vocab, jnp.asarray(context[:prompt]), window=len(context))
    for t in context[prompt:]:
        h = js.advance(strategy, h, jnp.asarray(t), logits=jnp.zeros((vocab,)))
    return h


def _kept(strategy: js.Strategy, h: js.History, z: jax.Array) -> np.ndarray:
    return np.asarray(js.probs(z, js.bind(strategy, h)))


def test_dry_penalises_the_tokens_that_extend_a_repeat() -> None:
    # llama.cpp's example: "a b c c b c y a b c" -> c extends "a b c" (3), b extends "c"
    # (1), y extends "b c" (2).
    a, b, c, y = 1, 2, 3, 4
    ctx = [a, b, c, c, b, c, y, a, b, c]
    s = js.DRY(1.0, 2.0, 1)
    z = jnp.zeros(50)
    lw = np.log(_kept(s, _state(s, ctx, 3), z))
    lw -= lw[0]  # token 0 is not penalised
    np.testing.assert_allclose(lw[[c, b, y, a]], [-(2.0**2), -1.0, -2.0, 0.0], atol=1e-5)
    # A breaker token stops the suffix: only the run after it counts.
    s2 = js.DRY(1.0, 2.0, 1, breakers=(b,))
    lw2 = np.log(_kept(s2, _state(s2, ctx, 3), z))
    lw2 -= lw2[0]
    np.testing.assert_allclose(lw2[[c, y, a]], [-1.0, -1.0, 0.0], atol=1e-5)
    assert lw2[b] == 0.0  # a breaker is never penalised


def test_penalties_follow_their_formulas() -> None:
    z = jnp.array([2.0, -1.0, 0.5, 3.0, -2.0] + [0.0] * 45)
    ctx = [0, 1, 1, 2, 0, 0]  # prompt [0, 1]; generated [1, 2, 0, 0]
    rep = js.RepetitionPenalty(2.0)
    h = _state(rep, ctx, 2)
    lw = js.bind(rep, h).log_weights(z)
    np.testing.assert_allclose(lw[:5], [1.0, -2.0, 0.25, 3.0, -2.0])
    freq = js.FrequencyPenalty(0.5)
    lw = js.bind(freq, _state(freq, ctx, 2)).log_weights(z)
    np.testing.assert_allclose(lw[:5], [2.0 - 1.0, -1.0 - 0.5, 0.5 - 0.5, 3.0, -2.0])
    pres = js.PresencePenalty(0.5)
    lw = js.bind(pres, _state(pres, ctx, 2)).log_weights(z)
    np.testing.assert_allclose(lw[:5], [1.5, -1.5, 0.0, 3.0, -2.0])
    # llama.cpp's window: only the last 2 tokens (0, 0) count.
    win = js.FrequencyPenalty(0.5, last_n=2)
    lw = js.bind(win, _state(win, ctx, 2)).log_weights(z)
    np.testing.assert_allclose(lw[:5], [1.0, -1.0, 0.5, 3.0, -2.0])


def test_min_new_tokens_and_no_repeat_ngram() -> None:
    z = jnp.zeros(50)
    s = js.MinNewTokens(3, 7)
    assert _kept(s, _state(s, [5, 6, 8], 1), z)[7] == 0  # 2 generated
    assert _kept(s, _state(s, [5, 6, 8, 9], 1), z)[7] > 0  # 3 generated
    g = js.NoRepeatNGram(2)
    q = _kept(g, _state(g, [4, 5, 9, 4, 6, 4], 2), z)  # after 4 came 5 and 6
    assert np.flatnonzero(q == 0).tolist() == [5, 6]
    g3 = js.NoRepeatNGram(3)
    q = _kept(g3, _state(g3, [4, 5, 9, 4, 5], 2), z)
    assert np.flatnonzero(q == 0).tolist() == [9]


def test_mirostat_truncates_by_surprise_and_updates_mu() -> None:
    p = np.array([0.5, 0.25, 0.125, 0.125])
    z = jnp.log(jnp.asarray(p))
    s = js.Mirostat2(target=1.5, lr=0.5)
    h = js.init_history(s, 4)
    np.testing.assert_allclose(h.mu, 3.0)  # 2 * target, as llama.cpp starts
    q = np.asarray(js.probs(z, js.bind(s, h)))
    np.testing.assert_allclose(q, p, atol=1e-6)  # every surprise <= 3 bits
    h2 = js.History(h.step, mu=jnp.float32(2.0))  # surprises 1, 2, 3, 3 bits
    q2 = np.asarray(js.probs(z, js.bind(s, h2)))
    np.testing.assert_allclose(q2, [2 / 3, 1 / 3, 0, 0], atol=1e-6)
    # After drawing token 1 (surprise under q2: log2(3) bits), mu moves towards the target.
    h3 = js.advance(s, h2, jnp.int32(1), logits=z)
    np.testing.assert_allclose(h3.mu, 2.0 - 0.5 * (np.log2(3) - 1.5), rtol=1e-6)
    assert int(h3.step) == 1


def test_advance_leaves_inactive_rows_alone_and_vmap_over_penalties() -> None:
    s = js.chain(js.RepetitionPenalty(1.5), js.NoRepeatNGram(2), js.Mirostat2(2.0))
    h = js.init_history(s, 10, jnp.array([[1, 2], [-1, 3]]), window=6)
    z = jnp.zeros((2, 10))
    h2 = js.advance(s, h, jnp.array([4, 5]), active=jnp.array([True, False]), logits=z)
    assert h2.step.tolist() == [1, 0]
    assert np.asarray(h2.recent).tolist() == [[-1, -1, -1, 1, 2, 4], [-1, -1, -1, -1, -1, 3]]
    assert np.asarray(h2.counts)[0, 4] == 1 and np.asarray(h2.counts)[1].sum() == 0
    assert float(h2.mu[1]) == float(h.mu[1]) and float(h2.mu[0]) != float(h.mu[0])
    # One repetition penalty per row (vmap) equals the rows one by one.
    logits = jax.random.normal(jax.random.key(0), (10,)) * 2
    one = js.init_history(js.RepetitionPenalty(1.0), 10, jnp.array([1, 2, 3]))
    rhos = jnp.array([1.0, 1.5, 3.0])
    swept = jax.vmap(lambda r: js.probs(logits, js.bind(js.RepetitionPenalty(r), one)))(rhos)
    for i in range(3):
        expected = js.probs(logits, js.bind(js.RepetitionPenalty(float(rhos[i])), one))
        np.testing.assert_allclose(swept[i], expected, atol=1e-7)


def test_sample_step_draws_what_bind_describes() -> None:
    s = js.chain(js.PresencePenalty(2.0), js.XTC(0.05, 0.5), js.Temperature(0.8))
    logits = jnp.stack([jnp.linspace(0, 3, 30)] * 4)
    h = js.init_history(s, 30, jnp.array([[29, 28]] * 4))
    key = jax.random.key(5)
    tokens, h2 = js.sample_step(key, logits, s, h)
    assert h2 is not None and h2.step.tolist() == [1, 1, 1, 1]
    assert np.asarray(h2.counts)[np.arange(4), np.asarray(tokens)].tolist() == [1, 1, 1, 1]
    # The same key gives the same tokens; the coins come from the row keys.
    again, _ = js.sample_step(key, logits, s, h)
    np.testing.assert_array_equal(tokens, again)
    # A stateless strategy passes None through.
    t, none = js.sample_step(key, logits, js.Temperature(1.0), None)
    assert none is None and t.shape == (4,)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: js.RepetitionPenalty(0.0), "rho must be > 0"),
        (lambda: js.RepetitionPenalty(1.2, last_n=0), "last_n"),
        (lambda: js.FrequencyPenalty(float("inf")), "a must be finite"),
        (lambda: js.PresencePenalty(float("nan")), "a must be finite"),
        (lambda: js.MinNewTokens(1.5, 2), "n must be an integer"),
        (lambda: js.MinNewTokens(2, -1), "eos_id must be an integer >= 0"),
        (lambda: js.NoRepeatNGram(0), "n must be a Python int >= 1"),
        (lambda: js.NoRepeatNGram(3, last_n=2), "last_n must be >= n"),
        (lambda: js.DRY(-1.0), "multiplier"),
        (lambda: js.DRY(1.0, 0.5), "base must be >= 1"),
        (lambda: js.DRY(1.0, 1.75, 0), "allowed_length"),
        (lambda: js.DRY(1.0, breakers=[1]), "breakers must be a tuple"),
        (lambda: js.Mirostat2(-1.0), "target"),
        (lambda: js.init_history(js.Mirostat2(), 0), "vocab"),
        (
            lambda: js.init_history(js.chain(js.Mirostat2(), js.Mirostat2()), 5),
            "at most one Mirostat2",
        ),
    ],
)
def test_bad_parameters_raise(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_a_history_strategy_without_a_state_says_so() -> None:
    z = jnp.zeros(5)
    with pytest.raises(ValueError, match="reads the generation's history"):
        js.probs(z, js.RepetitionPenalty(1.2))
    with pytest.raises(ValueError, match="pass a History"):
        js.bind(js.chain(js.FrequencyPenalty(1.0)), None)
    with pytest.raises(ValueError, match="needs the logits"):
        s = js.Mirostat2()
        js.advance(s, js.init_history(s, 5), jnp.int32(0))
    assert not js.needs_history(js.chain(js.MinP(0.1), js.TopK(3)))
    plain = js.chain(js.MinP(0.1))
    assert js.bind(plain, None) is plain
