"""Bad parameters and bad logits: clear errors when concrete, defined behaviour when traced."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import jaxsample as js
from jaxsample.samplers import _strategies

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: js.Temperature(-0.5), r"tau must be in \[0, inf\].*-0\.5"),
        (lambda: js.Temperature(NAN), r"tau must be in \[0, inf\].*nan"),
        (lambda: js.Temperature(np.array([1.0, -2.0])), r"tau.*-2\.0"),
        (lambda: js.TopP(0.0), r"p must be in \(0, 1\].*0\.0"),
        (lambda: js.TopP(1.5), r"p must be in \(0, 1\].*1\.5"),
        (lambda: js.TopP(NAN), r"p must be in \(0, 1\].*nan"),
        (lambda: js.TopP(0.9, tau=-1.0), r"tau must be in"),
        (lambda: js.TopK(-1), r"k must be an integer >= 0.*-1"),
        (lambda: js.TopK(2.5), r"k must be an integer >= 0.*2\.5"),
        (lambda: js.TopK(True), r"k must be an integer"),
        (lambda: js.TopK(100, k_max=10), r"k must be <= k_max=10, got 100"),
        (lambda: js.TopK(1, k_max=0), r"k_max must be"),
        (lambda: js.chain(js.Greedy(), "top-k"), r"chain arguments must be strategies"),
    ],
)
def test_concrete_invalid_parameters_raise_at_construction(build, pattern) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=pattern):
        build()


def test_bad_call_arguments_raise(key: jax.Array) -> None:
    z = jnp.zeros((2, 5))
    with pytest.raises(ValueError, match="shape"):
        js.sample(key, jnp.zeros(()), js.Greedy())
    with pytest.raises(ValueError, match="V >= 1"):
        js.probs(jnp.zeros((3, 0)), js.Temperature(1.0))
    with pytest.raises(ValueError, match="strategy"):
        js.sample(key, z, "greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="one key per row"):
        js.sample(jax.random.split(key, 3), z, js.Temperature(1.0))
    with pytest.raises(ValueError, match="key must be"):
        js.sample(jnp.zeros(3, jnp.float32), z, js.Temperature(1.0))


BAD_ROWS = {
    "one-nan": [NAN, 1.0, 2.0, 0.5],
    "nan-at-argmax": [1.0, NAN, 0.5, 0.0],
    "all-nan": [NAN, NAN, NAN, NAN],
    "one-pos-inf": [1.0, INF, 0.5, 0.0],
    "tied-pos-inf": [INF, 0.0, INF, 1.0],
    "half-neg-inf": [-INF, 1.0, -INF, 0.0],
    "all-but-one-neg-inf": [-INF, -INF, 3.0, -INF],
    "all-neg-inf": [-INF, -INF, -INF, -INF],
    "all-equal": [0.7, 0.7, 0.7, 0.7],
    "spread-1e-6": [1.0, 1.000001, 0.999999, 1.0000005],
    "huge": [1e30, -1e30, 3e38, -3e38],
    "normal": [0.1, 2.0, -1.0, 0.3],
}
EXPECTED_VALID = {
    name: name not in {"one-nan", "nan-at-argmax", "all-nan", "all-neg-inf"} for name in BAD_ROWS
}

TRACED = [
    js.Greedy(),
    js.Temperature(1.0),
    js.TopK(2, tau=0.5),
    js.TopP(0.5, tau=2.0),
    js.chain(js.TopK(1), js.TopP(0.9)),
]


@pytest.mark.parametrize("strategy", TRACED, ids=lambda s: type(s).__name__)
def test_bad_logits_never_crash_and_stay_in_range(strategy: js.Strategy, key: jax.Array) -> None:
    names = sorted(BAD_ROWS)
    z = jnp.asarray([BAD_ROWS[n] for n in names], jnp.float32)
    ids = np.asarray(js.sample(key, z, strategy))
    q = np.asarray(js.probs(z, strategy))
    assert np.all((ids >= 0) & (ids < 4))
    assert np.all(np.isfinite(q))
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-6)
    assert np.all(q[np.arange(len(names)), ids] > 0)  # never a token of probability 0
    assert np.asarray(js.valid_rows(z)).tolist() == [EXPECTED_VALID[n] for n in names]
    # NaN is removed, +inf wins, an all -inf row is uniform.
    row = dict(zip(names, q, strict=True))
    assert row["one-nan"][0] == 0 and row["nan-at-argmax"][1] == 0
    assert row["one-pos-inf"].tolist() == [0, 1, 0, 0]
    assert row["tied-pos-inf"][1] == 0 and row["tied-pos-inf"][3] == 0
    assert row["half-neg-inf"][0] == 0 and row["half-neg-inf"][2] == 0
    assert row["all-but-one-neg-inf"].tolist() == [0, 0, 1, 0]
    assert row["huge"][2] == 1.0
    # A bad row never changes another row.
    clean = jnp.asarray([BAD_ROWS["normal"]] * len(names), jnp.float32)
    i = names.index("normal")
    assert js.sample(key, clean, strategy)[i] == ids[i]


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32, jnp.int32])
def test_any_real_dtype_is_computed_in_float32(dtype: jnp.dtype, key: jax.Array) -> None:
    z = jnp.asarray([[3.0, 1.0, 2.0, 0.0]]).astype(dtype)
    q = js.probs(z, js.Temperature(1.0))
    assert q.dtype == jnp.float32
    np.testing.assert_allclose(q, jax.nn.softmax(z.astype(jnp.float32)), rtol=1e-6)
    assert js.sample(key, z, js.TopP(0.9)).dtype == jnp.int32


def test_vocabulary_of_one(key: jax.Array) -> None:
    z = jnp.zeros((5, 1))
    for s in [*TRACED, js.TopK(0), js.TopK(3), js.TopP(1e-9)]:
        assert np.asarray(js.sample(key, z, s)).tolist() == [0] * 5
        np.testing.assert_array_equal(js.probs(z, s), 1.0)


@pytest.mark.parametrize(
    "strategy",
    [
        js.Greedy(),
        js.Temperature(0.7),
        js.TopK(3, tau=0.8),
        js.TopP(0.9, tau=0.8),
        js.chain(js.TopK(3), js.TopP(0.8)),
        js.MinP(0.1),
        js.Typical(0.9),
    ],
)
def test_a_batch_without_rows_gives_empty_results(strategy: js.Strategy, key: jax.Array) -> None:
    for shape in [(0, 300), (2, 0, 7)]:
        z = jnp.zeros(shape, jnp.float32)
        for ids in (
            js.sample(key, z, strategy),
            jax.jit(lambda k, x: js.sample(k, x, strategy))(key, z),
            js.sample(jax.random.split(key, 0).reshape(shape[:-1]), z, strategy),
        ):
            assert ids.shape == shape[:-1] and ids.dtype == jnp.int32
        q = js.probs(z, strategy)
        assert q.shape == shape and q.dtype == jnp.float32
    assert js.probs(jnp.zeros((0, 300)), strategy, vocab_size=200).shape == (0, 200)
    assert js.entropy_sweep(jnp.zeros((0, 5)), jnp.array([0.5, 1.0])).shape == (2, 0)
    mesh = jax.make_mesh((1, 1), ("dp", "tp"))
    assert js.sharding.sample(key, jnp.zeros((0, 300)), strategy, mesh=mesh).shape == (0,)
    assert js.sharding.probs(jnp.zeros((0, 300)), strategy, mesh=mesh).shape == (0, 300)


def test_parameters_that_do_not_fit_the_rows_raise_before_tracing(key: jax.Array) -> None:
    z = jnp.zeros((3, 10))
    for strategy, name in [
        (js.TopP(jnp.array([0.5, 0.9])), r"TopP\.p of shape \(2,\)"),
        (js.chain(js.Temperature(0.5), js.TopK(jnp.array([1, 2]))), r"TopK\.k of shape \(2,\)"),
        (js.Temperature(jnp.ones((3, 1))), r"Temperature\.tau of shape \(3, 1\)"),
        (js.LogitBias(jnp.zeros((2, 10))), r"LogitBias\.bias of shape \(2, 10\)"),
    ]:
        pattern = r"logits.shape\[:-1\] = \(3,\); got " + name
        with pytest.raises(ValueError, match=pattern):
            js.sample(key, z, strategy)
        with pytest.raises(ValueError, match=pattern):
            js.probs(z, strategy)
    # Shapes that broadcast are accepted, as NumPy broadcasts them.
    z3 = jnp.zeros((2, 3, 10))
    for tau in (jnp.ones((2, 1)), jnp.ones((3,)), jnp.ones((1, 3)), 0.7):
        assert js.sample(key, z3, js.Temperature(tau)).shape == (2, 3)
    assert js.sample(key, z, js.LogitBias(jnp.zeros((3, 10)))).shape == (3,)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(0, 3), max_size=4).map(tuple),
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
)
def test_the_fit_of_a_parameter_is_numpys_broadcasting(
    shape: tuple[int, ...], lead: tuple[int, ...]
) -> None:
    """The check on the host (no NumPy call per parameter) accepts exactly the shapes that
    ``np.broadcast_shapes`` broadcasts to ``lead`` itself."""
    try:
        numpy_fits = np.broadcast_shapes(shape, lead) == lead
    except ValueError:
        numpy_fits = False
    assert _strategies._fits(shape, lead) == numpy_fits


def test_sample_step_without_rows_keeps_the_state(key: jax.Array) -> None:
    s = js.chain(js.RepetitionPenalty(1.3), js.TopP(0.9))
    history = js.init_history(s, 5, jnp.zeros((0, 3), jnp.int32))
    tokens, after = js.sample_step(key, jnp.zeros((0, 5)), s, history)
    assert tokens.shape == (0,) and after is history
    with pytest.raises(ValueError, match="history"):  # the same error as with rows
        js.sample_step(key, jnp.zeros((0, 5)), s, None)


def test_traced_invalid_parameters_have_defined_behaviour(key: jax.Array) -> None:
    z = jnp.broadcast_to(jnp.array([2.0, 1.0, 0.5, 0.0, -1.0]), (1, 5))

    @jax.jit
    def q_tau(t: jax.Array) -> jax.Array:
        return js.probs(z, js.Temperature(t))[0]

    greedy = np.array([1.0, 0, 0, 0, 0])
    for t in [0.0, -1.0, NAN, 1e-38, 1e-12, 1e-6]:  # 1e-38 is flushed to 0 on XLA:CPU
        np.testing.assert_array_equal(q_tau(jnp.float32(t)), greedy)
    # Just above the cut-off the gaps (>= 0.5 / 1e-5) underflow exp: one-hot, no NaN.
    np.testing.assert_array_equal(q_tau(jnp.float32(1e-5)), greedy)
    for t in [1.0, 1e6, INF]:
        q = np.asarray(q_tau(jnp.float32(t)))
        assert np.all(np.isfinite(q)) and abs(q.sum() - 1) < 1e-6 and np.all(q > 0)
    np.testing.assert_allclose(q_tau(jnp.float32(INF)), np.full(5, 0.2))

    @jax.jit
    def kept_p(p: jax.Array) -> jax.Array:
        return jnp.sum(js.probs(z, js.TopP(p))[0] > 0)

    for p, n in [(0.0, 1), (-3.0, 1), (NAN, 1), (1e-9, 1), (1.0, 5), (2.0, 5)]:
        assert int(kept_p(jnp.float32(p))) == n, p

    @jax.jit
    def kept_k(k: jax.Array) -> jax.Array:
        return jnp.sum(js.probs(z, js.TopK(k, k_max=8))[0] > 0)

    for k, n in [(0, 5), (-1, 5), (1, 1), (4, 4), (5, 5), (99, 5)]:
        assert int(kept_k(jnp.int32(k))) == n, k


def test_composition_that_leaves_one_token_keeps_one(key: jax.Array) -> None:
    z = jnp.array([[-INF, -INF, 1.0, -INF, -INF]])
    s = js.chain(js.TopK(1), js.TopP(1e-9), js.Temperature(0.0), js.TopP(0.3))
    assert js.sample(key, z, s).tolist() == [2]
    assert js.probs(z, s)[0].tolist() == [0, 0, 1, 0, 0]


def test_negative_zero_ties_with_zero(key: jax.Array) -> None:
    # -0.0 and 0.0 are one logit: ties go to the lowest index, in the direct top-k
    # cut and in the grouped one (V = 5000, the maximum in the first group as -0.0).
    for vocab in (16, 5000):
        z = np.full((2, vocab), -3.0, np.float32)
        z[:, 0], z[:, 1], z[:, vocab - 1] = -0.0, 0.0, 0.0
        ones = [js.Greedy(), js.TopK(1), js.TopK(1, tau=1e-3), js.chain(js.TopK(1), js.TopP(1.0))]
        for s in ones:
            assert js.sample(key, jnp.asarray(z), s).tolist() == [0, 0], (vocab, s)
        two = js.sample(key, jnp.asarray(z), js.TopK(2, tau=1e-3))
        assert set(two.tolist()) <= {0, 1}


special = st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1e30, -1e30, 1e-30])
finite = st.floats(-20, 20, width=32)


@settings(max_examples=60, deadline=None)
@given(
    z=arrays(np.float32, (4, 16), elements=st.one_of(finite, finite, finite, special)),
    tau=st.sampled_from([0.0, 1e-3, 0.5, 1.0, 3.0]),
    p=st.floats(1e-6, 1.0),
    k=st.integers(0, 20),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_random_logits(z: np.ndarray, tau: float, p: float, k: int, seed: int) -> None:
    key = jax.random.key(seed)
    for s in [
        js.Temperature(tau),
        js.TopK(k, tau=tau),
        js.TopP(p, tau=tau),
        js.chain(js.TopK(k), js.TopP(p, tau=tau)),
    ]:
        q = np.asarray(js.probs(jnp.asarray(z), s))
        ids = np.asarray(js.sample(key, jnp.asarray(z), s))
        assert np.all(np.isfinite(q)) and np.all(q >= 0)
        np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
        assert np.all((ids >= 0) & (ids < 16))
        assert np.all(q[np.arange(4), ids] > 0)
        # Row 0 alone gives the same token as inside the batch.
        assert int(js.sample(jax.random.fold_in(key, 0), jnp.asarray(z[0]), s)) == ids[0]


def test_nan_next_to_the_maximum(key: jax.Array) -> None:
    # XLA's CPU max reduction may miss a row's maximum next to a NaN: the row
    # maximum, the greedy token, the top-k set and the weights must not depend on
    # where the NaNs are.
    rng = np.random.default_rng(11)
    x = rng.standard_normal((48, 5003)).astype(np.float32) * 3
    for r in range(48):
        x[r, rng.integers(0, 5003, 1 + r % 9)] = NAN
    x[5, [7, 900, 4000]] = INF
    x[6] = NAN
    x[7, 1:] = -INF
    x[7, 0] = NAN
    ref = np.where(np.isnan(x), -INF, x)
    z = jnp.asarray(x)
    greedy = np.argmax(ref, -1)
    assert np.asarray(js.sample(key, z, js.Greedy())).tolist() == greedy.tolist()
    top3 = np.argsort(-ref, axis=-1, kind="stable")[:, :3]
    expected = np.zeros(x.shape, bool)
    np.put_along_axis(expected, top3, True, -1)
    expected[6:8] = np.arange(5003) < 3  # no usable logit: all tied, the first three kept
    for strategy in (js.TopK(3, tau=0.5), js.TopK(3, tau=0.5, k_max=None)):
        q = np.asarray(js.probs(z, strategy))
        np.testing.assert_array_equal(q > 0, expected)
        for i in range(5):
            ids = np.asarray(js.sample(jax.random.fold_in(key, i), z, strategy))
            assert expected[np.arange(48), ids].all()
    q = np.asarray(js.probs(z, js.TopP(0.9, tau=0.7)))
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(
        js.sample(key, z, js.TopP(0.9, tau=0.0)), js.sample(key, z, js.Greedy())
    )
