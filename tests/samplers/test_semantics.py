"""Exact behaviour of each strategy on hand-made cases and against a NumPy reference."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from jaxsample.samplers import entropy_sweep, tempered_entropy
from tests.helpers import filtered, softmax, top_k_keep, top_p_keep, top_p_margin

SEED_Z = np.array([3.0, 2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0], np.float32)
SEED_TAUS = [0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 10.0]


def logp(p: list[float]) -> jax.Array:
    return jnp.log(jnp.asarray(p, jnp.float32))


def test_temperature_exact_small_case() -> None:
    p = [0.5, 0.25, 0.125, 0.125]
    np.testing.assert_allclose(js.probs(logp(p), js.Temperature(1.0)), p, rtol=1e-6)
    # tau = 0.5 squares the probabilities before renormalising.
    sq = np.array(p) ** 2 / np.sum(np.array(p) ** 2)
    np.testing.assert_allclose(js.probs(logp(p), js.Temperature(0.5)), sq, rtol=1e-5)


def test_temperature_is_softmax_of_scaled_logits_not_power_of_softmax() -> None:
    z = jnp.asarray(SEED_Z)
    tau = 2.0
    right = softmax(np.asarray(SEED_Z, np.float64) / tau)
    got = np.asarray(js.probs(z, js.Temperature(tau)))
    np.testing.assert_allclose(got, right, rtol=1e-5)
    # The wrong stage: the power of the softmax, softmax(z) ** (1 / tau), is not a
    # distribution (it sums to more than 1 for tau > 1) and its entropy differs.
    power = softmax(np.asarray(SEED_Z, np.float64)) ** (1 / tau)
    assert power.sum() > 1.5
    h_got = float(js.entropy(jnp.asarray(got)))
    h_power = float(-np.sum(power * np.log2(power)))
    assert abs(h_got - float(js.entropy(jnp.asarray(right)))) < 1e-5
    assert abs(h_got - h_power) > 0.5
    # Renormalising the power gives back softmax(z / tau) exactly (in exact arithmetic):
    # (e^z / Z)^(1/tau) / sum_j (e^z_j / Z)^(1/tau) = e^(z/tau) / sum_j e^(z_j/tau).
    np.testing.assert_allclose(power / power.sum(), right, rtol=1e-12)


HF_CASE = [0.3, 0.1, 0.1, 0.5]
TIES = [0.25, 0.25, 0.25, 0.25]


def test_top_p_hf_case_probabilities() -> None:
    q = js.probs(logp(HF_CASE), js.TopP(0.79))
    np.testing.assert_allclose(q, [0.375, 0.0, 0.0, 0.625], rtol=1e-6)


@pytest.mark.parametrize(
    ("p", "top_p", "kept"),
    [
        # The Hugging Face case.
        (HF_CASE, 0.79, [True, False, False, True]),
        # The undecidable boundary: at p = 0.8 the first 0.1 has exactly p ahead of it in
        # exact arithmetic, which float32 cannot tell from just below p: it is kept
        # (TOP_P_SLACK), the second is not.
        (HF_CASE, 0.8, [True, True, False, True]),
        (HF_CASE, 0.8 - 2 * js.TOP_P_SLACK, [True, False, False, True]),
        # The crossing token is kept: mass ahead of 0.3 is 0.5 < 0.6, so 0.3 is kept.
        (HF_CASE, 0.6, [True, False, False, True]),
        (HF_CASE, 0.49, [False, False, False, True]),
        # Exactly p ahead (0.5) is within TOP_P_SLACK of p: kept, as float32 cannot decide.
        (HF_CASE, 0.5, [True, False, False, True]),
        # Ties are broken by the lowest index.
        (TIES, 0.45, [True, True, False, False]),
        (TIES, 0.55, [True, True, True, False]),
    ],
)
def test_top_p_kept_set(p: list[float], top_p: float, kept: list[bool]) -> None:
    q = js.probs(logp(p), js.TopP(top_p))
    assert np.asarray(q > 0).tolist() == kept


def test_top_p_temperature_first() -> None:
    z = jnp.array([3.0, 2.0, 1.0])
    # temperature first: softmax([6, 4, 2]) puts 0.867 on token 0 -> keeps {0}
    assert np.asarray(js.probs(z, js.TopP(0.8, tau=0.5)) > 0).tolist() == [True, False, False]
    # temperature last (a chain written in that order) keeps {0, 1}
    last = js.chain(js.TopP(0.8), js.Temperature(0.5))
    assert np.asarray(js.probs(z, last) > 0).tolist() == [True, True, False]


def test_top_k_exact_and_ties() -> None:
    q = js.probs(logp([0.1, 0.4, 0.2, 0.3]), js.TopK(2))
    np.testing.assert_allclose(q, [0.0, 4 / 7, 0.0, 3 / 7], rtol=1e-6)
    # Exactly k kept on ties, lowest index first.
    q = js.probs(jnp.array([1.0, 2.0, 2.0, 2.0, 0.0]), js.TopK(2))
    assert np.asarray(q > 0).tolist() == [False, True, True, False, False]


@pytest.mark.parametrize("v", [1, 5, 32, 300])
def test_identities(v: int) -> None:
    z = jax.random.normal(jax.random.key(v), (3, v)) * 3
    base = js.probs(z, js.Temperature(1.0))
    np.testing.assert_allclose(base, jax.nn.softmax(z, axis=-1), rtol=1e-5, atol=1e-7)
    for s in [js.TopP(1.0), js.TopK(0), js.TopK(v), js.TopK(v + 7), js.chain()]:
        np.testing.assert_array_equal(js.probs(z, s), base)


def test_top_p_one_keeps_the_whole_tail_at_large_vocab() -> None:
    v = 32_000
    z = jax.random.normal(jax.random.key(1), (v,)) * 4.0
    q = js.probs(z, js.TopP(1.0))
    assert int(jnp.sum(q > 0)) == v
    np.testing.assert_array_equal(q, js.probs(z, js.Temperature(1.0)))


def test_greedy_equivalences(key: jax.Array) -> None:
    z = jax.random.normal(key, (64, 50))
    ref = jnp.argmax(z, axis=-1)
    for s in [js.Greedy(), js.TopK(1), js.Temperature(0.0), js.TopP(1e-9), js.TopK(1, tau=3.0)]:
        np.testing.assert_array_equal(js.sample(key, z, s), ref)
    # With ties, every greedy form picks the lowest index.
    tied = jnp.array([[0.0, 5.0, 1.0, 5.0], [2.0, 2.0, 2.0, 2.0]])
    for s in [js.Greedy(), js.TopK(1), js.Temperature(0.0)]:
        assert js.sample(key, tied, s).tolist() == [1, 0]
        np.testing.assert_array_equal(js.probs(tied, s), jax.nn.one_hot(jnp.array([1, 0]), 4))


def test_temperature_limits() -> None:
    z = jnp.array([1.0, 3.0, 3.0, 0.0])
    # tau -> 0+ (but above the greedy cut-off): uniform over the tied maxima.
    np.testing.assert_allclose(js.probs(z, js.Temperature(1e-3)), [0, 0.5, 0.5, 0], atol=1e-6)
    # tau -> inf: uniform.
    np.testing.assert_allclose(js.probs(z, js.Temperature(1e6)), [0.25] * 4, atol=1e-5)
    np.testing.assert_allclose(js.probs(z, js.Temperature(math.inf)), [0.25] * 4)


def test_entropy_monotone_in_tau_on_seed_vector() -> None:
    taus = jnp.asarray(SEED_TAUS)
    h = jax.vmap(lambda t: js.entropy(js.probs(jnp.asarray(SEED_Z), js.Temperature(t))))(taus)
    assert np.all(np.diff(np.asarray(h)) >= -1e-9)
    assert float(h[0]) < 0.1 and float(h[-1]) > 2.8  # near 0 bits, near log2(8) = 3 bits


def test_entropy_gradient_matches_variance_formula() -> None:
    z = jnp.asarray(SEED_Z)

    def h_nats(tau: jax.Array) -> jax.Array:
        return js.entropy(js.probs(z, js.Temperature(tau)), base=math.e)

    for tau in [0.3, 0.7, 1.0, 2.0, 5.0]:
        q = js.probs(z, js.Temperature(tau))
        var = jnp.sum(q * z**2) - jnp.sum(q * z) ** 2
        np.testing.assert_allclose(jax.grad(h_nats)(jnp.float32(tau)), var / tau**3, rtol=2e-3)


def test_entropy_values() -> None:
    assert float(js.entropy(jnp.array([0.5, 0.5, 0.0]))) == pytest.approx(1.0)
    certain = js.entropy(jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    for h in (certain, jax.jit(js.entropy)(jnp.array([[1.0, 0.0], [0.0, 1.0]]))):
        assert not np.any(np.signbit(np.asarray(h))), h  # +0.0, not -0.0
    assert float(js.entropy(jnp.full(8, 1 / 8), base=math.e)) == pytest.approx(math.log(8), 1e-6)
    g = jax.grad(lambda p: js.entropy(p))(jnp.array([0.5, 0.5, 0.0]))
    assert bool(jnp.all(jnp.isfinite(g)))
    with pytest.raises(ValueError, match="base"):
        js.entropy(jnp.array([1.0]), base=1.0)


TEMPERED_TAUS = [0.0, 1e-7, 0.05, 0.3, 1.0, 2.5, 40.0, math.inf]


def _entropy_bits_f64(z: np.ndarray, tau: float) -> np.ndarray:
    """NumPy float64 entropy (bits) of softmax(z / tau) per row; finite z, tau > 1e-6."""
    if tau == math.inf:
        return np.full(z.shape[:-1], math.log2(z.shape[-1]))
    s = (z.astype(np.float64) - z.max(-1, keepdims=True)) / tau
    q = np.exp(s)
    q /= q.sum(-1, keepdims=True)
    return -np.sum(np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0), axis=-1)


def _both_branches(x: jax.Array, tau: jax.Array | float, base: float = 2.0) -> list[jax.Array]:
    """tempered_entropy eagerly and under jit."""
    return [
        tempered_entropy(x, tau, base),
        jax.jit(lambda v, t: tempered_entropy(v, t, base))(x, jnp.asarray(tau, jnp.float32)),
    ]


@pytest.mark.parametrize("tau", TEMPERED_TAUS)
def test_tempered_entropy_matches_float64_reference(tau: float) -> None:
    rng = np.random.default_rng(11)
    # Rows from peaked to flat, and a vocabulary that is no multiple of the slice count.
    z = rng.standard_normal((6, 5003)) * np.array([[0.1], [1], [3], [6], [12], [30]])
    z = z.astype(np.float32)
    want = np.zeros(6) if tau <= js.GREEDY_TAU else _entropy_bits_f64(z, tau)
    plain = np.asarray(js.entropy(js.probs(jnp.asarray(z), js.Temperature(tau))))
    for got in _both_branches(jnp.asarray(z), tau):
        # Entropies up to log2(5003) = 12.3 bits, float32 sums over 5003 terms.
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-5)
        np.testing.assert_allclose(got, plain, rtol=0, atol=2e-5)


def test_tempered_entropy_bad_rows_dtypes_and_per_row_tau() -> None:
    nan, inf = math.nan, math.inf
    bad = jnp.asarray(
        [
            [1.0, nan, 2.0, -inf],  # NaN reads -inf
            [inf, 1.0, inf, 0.0],  # uniform over the +inf entries
            [-inf, -inf, -inf, -inf],  # unusable: uniform
            [nan, nan, nan, nan],
            [0.0, 1.0, 2.0, -inf],
        ],
        jnp.float32,
    )
    taus = jnp.asarray([0.5, 1.0, 3.0, 0.0, inf])
    want = np.asarray(js.entropy(js.probs(bad, js.Temperature(taus))))
    for got in _both_branches(bad, taus):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert got[1] == pytest.approx(1.0) and got[2] == pytest.approx(2.0) and got[3] == 0.0
    z16 = jnp.asarray(SEED_Z, jnp.bfloat16)
    np.testing.assert_allclose(
        tempered_entropy(z16, 0.7),
        js.entropy(js.probs(z16, js.Temperature(0.7))),
        rtol=0,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="base"):
        tempered_entropy(jnp.asarray(SEED_Z), 1.0, base=-2.0)


def test_tempered_entropy_gradient_and_lab_sweep() -> None:
    z = jnp.asarray(SEED_Z)
    for tau in [0.3, 1.0, 5.0]:
        q = js.probs(z, js.Temperature(tau))
        var = jnp.sum(q * z**2) - jnp.sum(q * z) ** 2
        grad = jax.grad(lambda t: tempered_entropy(z, t, math.e))(jnp.float32(tau))
        np.testing.assert_allclose(grad, var / tau**3, rtol=2e-3)
    assert bool(jnp.isfinite(jax.grad(lambda t: tempered_entropy(z, t))(jnp.float32(math.inf))))
    # The lab's sweep is the same function vmapped, over [..., V] logits.
    taus = jnp.asarray(SEED_TAUS)
    rows = jnp.stack([z, z[::-1] * 2])
    swept = np.asarray(entropy_sweep(rows, taus))
    assert swept.shape == (len(SEED_TAUS), 2)
    for i, tau in enumerate(SEED_TAUS):
        np.testing.assert_allclose(swept[i], tempered_entropy(rows, tau), rtol=0, atol=1e-6)
    assert np.all(np.diff(swept[:, 0]) >= -1e-9)


def test_distributions_sum_to_one_and_zero_exactly_where_removed(key: jax.Array) -> None:
    z = jax.random.normal(key, (16, 200)) * 2
    for s in [js.TopK(7, tau=0.8), js.TopP(0.7, tau=1.3), js.chain(js.TopK(20), js.TopP(0.5))]:
        q = np.asarray(js.probs(z, s), np.float64)
        np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
        lw = np.asarray(s.log_weights(z))
        assert np.array_equal(q == 0, np.isneginf(lw))


@pytest.mark.parametrize("v", [1, 2, 7, 64, 300])
def test_against_reference_with_per_row_parameters(v: int) -> None:
    rng = np.random.default_rng(v)
    rows = 60
    z = (rng.standard_normal((rows, v)) * rng.uniform(0.1, 6, (rows, 1))).astype(np.float32)
    z[::4] = np.round(z[::4])  # plenty of exact ties
    tau = rng.choice([0.3, 0.8, 1.0, 2.5], rows).astype(np.float32)
    k = rng.integers(0, v + 3, rows).astype(np.int32)
    p = rng.uniform(0.01, 1.0, rows).astype(np.float32)
    p[::7] = 1.0
    got_k = np.asarray(js.probs(jnp.asarray(z), js.TopK(jnp.asarray(k), tau=jnp.asarray(tau))))
    got_p = np.asarray(js.probs(jnp.asarray(z), js.TopP(jnp.asarray(p), tau=jnp.asarray(tau))))
    checked = 0
    for r in range(rows):
        zt = np.asarray(z[r], np.float64) / float(tau[r])
        np.testing.assert_allclose(got_k[r], filtered(zt, top_k_keep(zt, int(k[r]))), atol=2e-6)
        # Skip top-p rows whose boundary lies within float32 rounding of p.
        if top_p_margin(zt, float(p[r])) > 1e-4:
            ref = filtered(zt, top_p_keep(zt, float(p[r])))
            np.testing.assert_allclose(got_p[r], ref, atol=2e-6)
            checked += 1
    assert checked > rows // 2


def test_top_p_wide_and_narrow_nuclei_in_one_batch() -> None:
    # Flat rows (nuclei of thousands of tokens) next to peaked ones (a few tokens).
    z = jnp.concatenate(
        [
            jax.random.normal(jax.random.key(3), (4, 5000)) * 0.1,
            jax.random.normal(jax.random.key(4), (4, 5000)) * 8.0,
        ]
    )
    q = js.probs(z, js.TopP(0.9))
    for row in range(z.shape[0]):
        zr = np.asarray(z[row], np.float64)
        if top_p_margin(zr, 0.9) > 1e-5:
            assert np.array_equal(np.asarray(q[row] > 0), top_p_keep(zr, 0.9)), row


def test_chain_is_applied_in_order_and_flattened() -> None:
    c = js.chain(js.Temperature(0.5), js.chain(js.TopK(3), js.TopP(0.9)))
    assert [type(x).__name__ for x in c.parts] == ["Temperature", "TopK", "TopP"]
    z = jnp.array([2.0, 1.5, 1.0, 0.5, 0.0])
    manual = js.TopP(0.9).log_weights(js.TopK(3).log_weights(js.Temperature(0.5).log_weights(z)))
    np.testing.assert_allclose(js.probs(z, c), jax.nn.softmax(manual), rtol=1e-6)


def test_ahead_is_the_tie_rule_on_every_kind_of_float() -> None:
    """One comparison with a bound (``_reference.ahead``) ranks as "larger, or equal and earlier".

    Every pair of values from zeros of both signs, denormals, the least normal
    float and its neighbours, the largest float and the infinities, at an index
    below and at the pivot, compared in one compiled program (where XLA's CPU
    reads denormals as 0, both forms must agree under that rule).
    """
    from jaxsample.samplers._reference import ahead

    f32 = np.finfo(np.float32)
    base = np.array(
        [
            0.0,
            f32.smallest_subnormal,
            3 * f32.smallest_subnormal,
            f32.tiny / 2,
            f32.tiny,
            np.nextafter(f32.tiny, np.float32(1)),
            0.5,
            1.0,
            np.nextafter(np.float32(1), np.float32(2)),
            np.nextafter(f32.max, np.float32(0)),
            f32.max,
            np.inf,
        ],
        np.float32,
    )
    values = np.concatenate([base, -base, [np.nan]]).astype(np.float32)
    z, v = (a.ravel() for a in np.meshgrid(values, values, indexing="ij"))
    index = np.tile(np.array([3, 4], np.int32), z.size)
    z, v = np.repeat(z, 2), np.repeat(v, 2)

    @jax.jit
    def both(z: jax.Array, v: jax.Array) -> tuple[jax.Array, jax.Array]:
        rule = jnp.where(z == v, index < 4, z > v)
        return ahead(z, jnp.asarray(index), v, jnp.int32(4)), rule

    got, want = both(jnp.asarray(z), jnp.asarray(v))
    assert np.array_equal(np.asarray(got), np.asarray(want))
    # The rule itself: equal values rank by index, NaN is ahead of nothing.
    assert np.asarray(got)[(z == 1.0) & (v == 1.0)].tolist() == [True, False]
    assert not np.asarray(got)[np.isnan(z)].any()
