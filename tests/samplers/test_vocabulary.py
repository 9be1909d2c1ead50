"""The stateless strategies of the engines: parity, exact draws, vmap, composition, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from tests.samplers import engine_cases

STATELESS = (
    "min_p",
    "typical",
    "epsilon",
    "eta",
    "top_n_sigma",
    "xtc_cut",
    "ban",
    "bias",
    "dense_bias",
    "allow",
)


@pytest.mark.parametrize("case", engine_cases.cases(*STATELESS), ids=lambda c: c["name"])
def test_probs_match_the_engine(case: dict) -> None:
    expected = engine_cases.engine_probs(case)
    got = engine_cases.jaxsample_probs(case)
    np.testing.assert_array_equal(got > 0, expected > 0)  # the same kept set
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_the_fixtures_exercise_every_stateless_kind() -> None:
    # Every parity case must change the distribution: a case that changes nothing tests
    # nothing (XTC above a threshold of 0.5 does nothing, by definition).
    _, arrays = engine_cases.load()
    for case in engine_cases.cases(*STATELESS):
        if case["name"] == "llama-xtc-0.6":
            continue
        z = arrays["flat" if case["kind"] == "xtc_cut" else "logits"]
        plain = np.asarray(js.probs(jnp.asarray(z), js.Temperature(1.0)))
        assert np.abs(engine_cases.engine_probs(case) - plain).max() > 1e-3, case["name"]


def _logits(vocab: int, seed: int) -> jax.Array:
    """A head of 40 likely tokens (ids ``7 i``) over a long tail, as a model's logits."""
    k1, k2 = jax.random.split(jax.random.key(seed))
    z = jax.random.normal(k1, (vocab,))
    head = jnp.arange(40) * 7
    return z.at[head].add(6.0 + jax.random.normal(k2, (40,)))


def test_xtc_is_the_mixture_of_its_two_branches() -> None:
    z = _logits(995, 3) * 0.3
    a = 0.3
    plain = np.asarray(js.probs(z, js.Temperature(1.0)), np.float64)
    ranked = np.sort(plain)
    t = float(ranked[-5] + ranked[-6]) / 2  # five tokens above the threshold
    keep = np.asarray(js.probs(z, js.XTC(t, a, coin=False)), np.float64)
    cut = np.asarray(js.probs(z, js.XTC(t, a, coin=True)), np.float64)
    np.testing.assert_allclose(keep, plain, atol=1e-7)
    assert (cut == 0).sum() == 4  # the branch cuts all of them but one
    mix = np.asarray(js.probs(z, js.XTC(t, a)), np.float64)
    np.testing.assert_allclose(mix, (1 - a) * keep + a * cut, atol=1e-7)
    # The cut keeps the least likely of the tokens above the threshold.
    above = np.flatnonzero(plain >= t)
    assert above.size >= 2 and np.flatnonzero((cut > 0) & (plain >= t)).tolist() == [
        above[np.argmin(keep[above])]
    ]


def test_min_p_is_a_floor_relative_to_the_top_in_log_space() -> None:
    p = jnp.array([0.5, 0.2, 0.1, 0.05, 0.04, 0.11])
    q = np.asarray(js.probs(jnp.log(p), js.MinP(0.2)))
    np.testing.assert_array_equal(q > 0, [True, True, True, False, False, True])
    # Temperature first: at tau = 2 the ratios are square roots, so more tokens pass.
    q2 = np.asarray(js.probs(jnp.log(p), js.MinP(0.2, tau=2.0)))
    np.testing.assert_array_equal(q2 > 0, [True] * 6)
    assert np.all(np.asarray(js.probs(jnp.log(p), js.MinP(0.0))) > 0)


def test_typical_keeps_the_tokens_closest_to_the_entropy() -> None:
    p = np.array([0.4, 0.3, 0.2, 0.1])
    h = -(p * np.log(p)).sum()
    order = np.argsort(np.abs(-np.log(p) - h), kind="stable")
    q = np.asarray(js.probs(jnp.log(jnp.asarray(p)), js.Typical(0.5)))
    before = np.concatenate([[0], np.cumsum(p[order])[:-1]])
    np.testing.assert_array_equal(np.flatnonzero(q > 0), np.sort(order[before < 0.5]))
    assert np.asarray(js.probs(jnp.log(jnp.asarray(p)), js.Typical(1.0))).min() > 0


def _typical_rows(vocab: int) -> np.ndarray:
    """Rows of several families: Zipf-like, Gaussian (sd 3), heavy-tailed, and plateaus."""
    rng = np.random.default_rng(11)
    ranks = rng.permutation(vocab) + 1.0
    zipf = -1.1 * np.log(ranks) + 0.3 * rng.standard_normal(vocab)
    rows = [
        zipf / 0.7,
        zipf / 1.5,
        3.0 * rng.standard_normal(vocab),
        np.clip(rng.standard_cauchy(vocab), -30, 30),
        np.round(2.0 * rng.standard_normal(vocab)) / 2.0,  # exact ties of logits and scores
    ]
    return np.stack(rows).astype(np.float32)


def test_typical_keeps_the_prefix_that_float64_masses_give_at_a_large_vocabulary() -> None:
    # The kept set is found without a sort; check it against a sort of the float32
    # scores (ties by lowest id) with the masses ahead added in float64: a prefix of
    # that ranking, holding every token whose mass ahead is clearly below the bound and
    # none whose mass ahead is clearly above it (float32 sums decide within 1e-6).
    from jaxsample.samplers._vocabulary import entropy_nats, log_probs

    z = jnp.asarray(_typical_rows(50257))
    logp = log_probs(z)
    score = np.asarray(jnp.abs(-logp - entropy_nats(logp)))
    x = np.asarray(z, np.float64)
    p64 = np.exp(x - x.max(-1, keepdims=True))
    p64 /= p64.sum(-1, keepdims=True)
    inside = 0
    for mass in (0.2, 0.9, 0.99):
        kept = np.asarray(js.probs(z, js.Typical(mass))) > 0
        for r in range(z.shape[0]):
            order = np.lexsort((np.arange(z.shape[1]), score[r]))
            ahead = np.concatenate([[0.0], np.cumsum(p64[r, order])[:-1]])
            ranked = kept[r, order]
            count = int(ranked.sum())
            assert ranked[:count].all(), (mass, r)  # a prefix of the ranking
            assert ranked[0]
            assert ranked[ahead < mass - 1e-6].all(), (mass, r)
            assert not ranked[ahead > mass + 1e-6].any(), (mass, r)
            inside += 1 < count < z.shape[1]
    assert inside >= 12  # most bounds cut inside the row (a flat row's top token may weigh 1%)


def test_eta_and_epsilon_thresholds() -> None:
    p = np.array([0.6, 0.25, 0.1, 0.04, 0.01])
    z = jnp.log(jnp.asarray(p))
    np.testing.assert_array_equal(
        np.asarray(js.probs(z, js.Epsilon(0.05))) > 0, [True, True, True, False, False]
    )
    h = -(p * np.log(p)).sum()
    eta = 0.2
    cut = min(eta, np.sqrt(eta) * np.exp(-h))
    np.testing.assert_array_equal(np.asarray(js.probs(z, js.Eta(eta))) > 0, p >= cut)
    # A threshold above every probability keeps the top token.
    assert (np.asarray(js.probs(z, js.Epsilon(0.99))) > 0).tolist() == [True] + [False] * 4


def test_top_n_sigma_is_temperature_invariant_and_uses_finite_logits() -> None:
    z = _logits(995, 4).at[:10].set(-jnp.inf)
    kept = np.asarray(js.probs(z, js.TopNSigma(1.0))) > 0
    for tau in (0.5, 3.0):
        np.testing.assert_array_equal(np.asarray(js.probs(z, js.TopNSigma(1.0, tau=tau))) > 0, kept)
    finite = np.asarray(z)[10:]
    floor = finite.max() - finite.std()
    np.testing.assert_array_equal(kept[10:], finite >= floor)
    assert np.asarray(js.probs(z, js.TopNSigma(jnp.inf))).min(initial=1, where=kept) > 0


def test_vmap_over_min_p_and_over_a_chain() -> None:
    z = _logits(995, 5)
    ps = jnp.array([0.0, 0.01, 0.1, 0.5])
    swept = jax.vmap(lambda p: js.probs(z, js.MinP(p)))(ps)
    for i, p in enumerate(ps):
        np.testing.assert_allclose(swept[i], js.probs(z, js.MinP(float(p))), atol=1e-7)
    taus = jnp.array([0.5, 1.0, 2.0, 3.0])

    def chained(tau: jax.Array, p: jax.Array) -> jax.Array:
        return js.probs(z, js.chain(js.Temperature(tau), js.MinP(p), js.TopNSigma(1.5)))

    swept = jax.vmap(chained)(taus, ps)
    for i in range(4):
        np.testing.assert_allclose(swept[i], chained(taus[i], ps[i]), atol=1e-7)
    # Per-row parameters: one min-p per row of a batch equals the rows one by one.
    rows = jnp.stack([z, z * 0.5, z * 2.0, z])
    batched = js.probs(rows, js.MinP(ps, tau=taus))
    for i in range(4):
        np.testing.assert_allclose(
            batched[i], js.probs(rows[i], js.MinP(float(ps[i]), tau=float(taus[i]))), atol=1e-7
        )
    ids = jax.vmap(lambda p, k: js.sample(k, z, js.MinP(p)))(
        ps, jax.random.split(jax.random.key(0), 4)
    )
    assert ids.shape == (4,)


PARTS = [
    js.MinP(0.1),
    js.Typical(0.7),
    js.Epsilon(0.01),
    js.Eta(0.01),
    js.TopNSigma(0.5),
    js.XTC(0.05, 1.0),
    js.Ban(jnp.arange(0, 995, 2)),
    js.Allow(jnp.arange(995) < 30),
    js.TopK(3),
    js.TopP(0.3),
    js.Temperature(0.5),
]


@pytest.mark.parametrize(
    "strategy",
    [
        js.Typical(0.9),
        js.Epsilon(3e-3),
        js.Eta(3e-3),
        js.TopNSigma(1.0),
        js.XTC(0.003, 1.0),
        js.chain(js.Typical(0.9, tau=0.7), js.TopK(3), js.MinP(0.05)),
    ],
    ids=lambda s: type(s).__name__,
)
def test_a_row_keeps_the_same_tokens_in_any_batch(strategy: js.Strategy) -> None:
    # Near-uniform rows make the typical ranking hang on the last bits of the entropy
    # and of the normaliser (the scores are differences of nearly equal numbers), so
    # every sum over the vocabulary must be added in an order the batch cannot change.
    z = np.full((2, 257), 1.0, np.float32)
    z[0, 226] += 1e-6
    z[1, 3] -= 1e-6
    z[1, 100:140] = np.float32(-3.0)
    for row in z:
        alone = np.asarray(js.probs(jnp.asarray(row), strategy)) > 0
        keys = jax.random.split(jax.random.key(7), 300)
        one_by_one = [int(js.sample(k, jnp.asarray(row), strategy)) for k in keys[:8]]
        for batch in (7, 64, 300):
            rows = jnp.asarray(np.tile(row, (batch, 1)))
            kept = np.asarray(js.probs(rows, strategy)) > 0
            assert (kept == alone[None]).all(), (batch, np.nonzero(kept[0] != alone)[0])
            drawn = np.asarray(js.sample(keys[:batch], rows, strategy))
            assert drawn[:8].tolist() == one_by_one[:batch], batch
            assert alone[drawn].all()


@pytest.mark.parametrize("seed", range(3))
def test_any_order_keeps_at_least_one_token(seed: int) -> None:
    rng = np.random.default_rng(seed)
    order = [PARTS[i] for i in rng.permutation(len(PARTS))]
    z = _logits(995, seed).at[rng.integers(0, 995, 300)].set(-jnp.inf)
    rows = jnp.stack([z, z * 0.1, jnp.full((995,), -jnp.inf).at[5].set(0.0)])
    q = np.asarray(js.probs(rows, js.chain(*order)))
    assert np.all((q > 0).sum(-1) >= 1)
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
    ids = np.asarray(js.sample(jax.random.key(seed), rows, js.chain(*order)))
    assert np.all(q[np.arange(3), ids] > 0)


def test_masks_that_remove_everything_leave_the_row_unchanged() -> None:
    z = _logits(995, 6)
    base = np.asarray(js.probs(z, js.Temperature(1.0)))
    np.testing.assert_allclose(js.probs(z, js.Ban(jnp.arange(995))), base, atol=1e-7)
    np.testing.assert_allclose(js.probs(z, js.Allow(jnp.zeros(995, bool))), base, atol=1e-7)
    np.testing.assert_allclose(js.probs(z, js.LogitBias(jnp.full(995, -jnp.inf))), base, atol=1e-7)
    # Ids out of range ban nothing (-1 pads per-row lists).
    np.testing.assert_allclose(js.probs(z, js.Ban(jnp.array([-1, 995, 10**6]))), base, atol=1e-7)
    per_row = js.probs(jnp.stack([z, z]), js.Ban(jnp.array([[1, -1], [2, 3]])))
    assert np.flatnonzero(np.asarray(per_row[0]) == 0).tolist() == [1]
    assert np.flatnonzero(np.asarray(per_row[1]) == 0).tolist() == [2, 3]


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: js.MinP(1.5), "min_p must be in \\[0, 1\\].*got 1.5"),
        (lambda: js.MinP(-0.1), "min_p"),
        (lambda: js.MinP(float("nan")), "min_p"),
        (lambda: js.MinP(0.1, tau=-1.0), "tau"),
        (lambda: js.Typical(0.0), "mass must be in \\(0, 1\\]"),
        (lambda: js.Typical(1.2), "mass"),
        (lambda: js.Epsilon(1.0), "eps must be in \\[0, 1\\)"),
        (lambda: js.Eta(-0.5), "eta"),
        (lambda: js.TopNSigma(-1.0), "n must be in \\[0, inf\\]"),
        (lambda: js.XTC(1.5, 0.5), "threshold"),
        (lambda: js.XTC(0.1, 2.0), "probability"),
        (lambda: js.LogitBias(jnp.array([0.0, jnp.nan])), "bias"),
        (lambda: js.LogitBias(jnp.array([0.0, jnp.inf])), "bias"),
        (lambda: js.LogitBias(1.0), "bias must have shape"),
        (lambda: js.Allow(jnp.array([1, 0])), "mask must be a bool array"),
        (lambda: js.Ban(jnp.array([0.5])), "ids must be an integer array"),
        (lambda: js.MinP(True), "min_p must be a real number"),
    ],
)
def test_bad_parameters_raise(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def test_traced_out_of_range_values_keep_the_top_token() -> None:
    z = _logits(995, 7)
    top = int(jnp.argmax(z))

    @jax.jit
    def f(v: jax.Array) -> jax.Array:
        return jnp.stack(
            [
                js.probs(z, js.MinP(v)),
                js.probs(z, js.Epsilon(v)),
                js.probs(z, js.TopNSigma(-v)),
                js.probs(z, js.Typical(-v)),  # keeps the first token of its own ranking
            ]
        )

    for v in (2.0, float("nan")):
        q = np.asarray(f(jnp.float32(v)))
        assert np.all(np.isfinite(q))
        np.testing.assert_allclose(q[:3, top], 1.0, atol=1e-6)
        assert (q[3] > 0).sum() == 1


def test_engine_step_names_and_exports() -> None:
    for name in (
        "MinP",
        "Typical",
        "Epsilon",
        "Eta",
        "TopNSigma",
        "XTC",
        "LogitBias",
        "Allow",
        "Ban",
    ):
        assert name in js.__all__
        assert getattr(js, name).__doc__
