"""jit, vmap, per-row parameters, determinism, batch invariance and recompilation."""

from __future__ import annotations

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import jaxsample as js

STRATEGIES = {
    "greedy": js.Greedy(),
    "temperature": js.Temperature(0.8),
    "top-k": js.TopK(5, tau=0.9),
    "top-p": js.TopP(0.9, tau=0.8),
    "chain": js.chain(js.Temperature(1.2), js.TopK(20), js.TopP(0.7)),
}


@pytest.fixture(scope="module")
def logits() -> jax.Array:
    return jax.random.normal(jax.random.key(11), (12, 300)) * 2.0


@functools.cache
def _without_jit(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Draws and probabilities of a strategy with jit disabled (computed once per strategy)."""
    logits = jax.random.normal(jax.random.key(11), (12, 300)) * 2.0
    with jax.disable_jit():
        draws = js.sample(jax.random.key(20261122), logits, STRATEGIES[name])
        q = js.probs(logits, STRATEGIES[name])
    return np.asarray(draws), np.asarray(q)


class SameDrawJittedOrNot(chex.TestCase):
    """``sample`` and ``probs`` give the same result jitted, not jitted and without jit."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(name, name) for name in sorted(STRATEGIES)])
    def test_same_key_same_tokens_and_jit_equals_eager(self, name: str) -> None:
        s = STRATEGIES[name]
        key = jax.random.key(20261122)
        logits = jax.random.normal(jax.random.key(11), (12, 300)) * 2.0
        a = self.variant(js.sample)(key, logits, s)
        b = self.variant(js.sample)(key, logits, s)
        d, pe = _without_jit(name)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, d)
        np.testing.assert_allclose(self.variant(js.probs)(logits, s), pe, rtol=1e-6, atol=1e-7)
        assert a.dtype == jnp.int32 and a.shape == (12,)
        # The seeds' call form is an alias.
        np.testing.assert_array_equal(s(logits, key), a)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_batch_invariance(name: str, key: jax.Array, logits: jax.Array) -> None:
    s = STRATEGIES[name]
    batch = js.sample(key, logits, s)
    for row in [0, 5, 11]:
        alone = js.sample(jax.random.fold_in(key, row), logits[row], s)
        assert int(alone) == int(batch[row])
    # Changing the other rows (even to garbage) never changes a row's token.
    other = logits.at[1:].set(jnp.nan).at[3].set(jnp.inf)
    assert int(js.sample(key, other, s)[0]) == int(batch[0])
    # One key per row: row r uses keys[r] as is.
    keys = jax.random.split(key, 12)
    per_row = js.sample(keys, logits, s)
    for row in [0, 7]:
        assert int(js.sample(keys[row], logits[row], s)) == int(per_row[row])


def test_legacy_uint32_keys_are_accepted(logits: jax.Array) -> None:
    legacy = jax.random.PRNGKey(3)
    typed = jax.random.wrap_key_data(legacy)
    s = js.Temperature(1.0)
    np.testing.assert_array_equal(js.sample(legacy, logits, s), js.sample(typed, logits, s))


def test_leading_axes_of_any_rank(key: jax.Array) -> None:
    z = jax.random.normal(key, (2, 3, 4, 50))
    ids = js.sample(key, z, js.TopP(0.9))
    assert ids.shape == (2, 3, 4)
    assert js.probs(z, js.TopK(3)).shape == z.shape
    flat = js.sample(key, z.reshape(24, 50), js.TopP(0.9))
    np.testing.assert_array_equal(ids.reshape(24), flat)


def test_per_row_parameters(key: jax.Array) -> None:
    z = jnp.broadcast_to(jax.random.normal(key, (40,)), (4, 40))
    taus = jnp.array([0.0, 0.5, 1.0, 3.0])
    q = js.probs(z, js.Temperature(taus))
    for i, t in enumerate([0.0, 0.5, 1.0, 3.0]):
        np.testing.assert_allclose(q[i], js.probs(z[i], js.Temperature(t)), rtol=1e-6)
    k = jnp.array([1, 2, 0, 40], jnp.int32)
    kept = jnp.sum(js.probs(z, js.TopK(k)) > 0, axis=-1)
    assert kept.tolist() == [1, 2, 40, 40]
    p = jnp.array([1e-9, 0.5, 0.9, 1.0])
    kept_p = np.asarray(jnp.sum(js.probs(z, js.TopP(p)) > 0, axis=-1))
    assert kept_p[0] == 1 and kept_p[3] == 40 and np.all(np.diff(kept_p) >= 0)


def test_one_jitted_call_sweeps_nine_temperatures_by_100_seeds() -> None:
    z = jnp.array([3.0, 2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])
    taus = jnp.array([0.0, 0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0])
    keys = jax.random.split(jax.random.key(0), 100)

    @jax.jit
    def sweep(taus: jax.Array, keys: jax.Array, z: jax.Array) -> jax.Array:
        def one(t: jax.Array, k: jax.Array) -> jax.Array:
            return js.sample(k, z, js.Temperature(t))

        return jax.vmap(lambda t: jax.vmap(lambda k: one(t, k))(keys))(taus)

    ids = sweep(taus, keys, z)
    assert ids.shape == (9, 100)
    assert np.all(np.asarray(ids[0]) == 0)  # tau = 0 is greedy inside the sweep
    distinct = [len(set(r)) for r in np.asarray(ids).tolist()]
    assert distinct[0] == 1 and distinct[-1] == 8
    assert all(b >= a - 1 for a, b in itertools.pairwise(distinct))
    # Equal to the same draws made one setting at a time.
    np.testing.assert_array_equal(ids[4, 17], js.sample(keys[17], z, js.Temperature(0.7)))


def test_vmap_over_strategies_of_every_kind(key: jax.Array, logits: jax.Array) -> None:
    z = logits[0]
    # Map over a strategy whose leaves are all arrays ...
    ps = js.TopP(jnp.array([0.1, 0.5, 0.9, 1.0]), tau=jnp.array([0.5, 1.0, 1.0, 2.0]))
    qp = jax.vmap(lambda s: js.probs(z, s))(ps)
    # ... or build the strategy inside the mapped function from a traced value.
    ks = jnp.array([1, 3, 10, 0], jnp.int32)
    qk = jax.vmap(lambda k: js.probs(z, js.TopK(k, k_max=16)))(ks)
    for i, k in enumerate([1, 3, 10, 0]):
        np.testing.assert_allclose(qk[i], js.probs(z, js.TopK(k)), rtol=1e-6)
    for i, (p, t) in enumerate([(0.1, 0.5), (0.5, 1.0), (0.9, 1.0), (1.0, 2.0)]):
        np.testing.assert_allclose(qp[i], js.probs(z, js.TopP(p, tau=t)), rtol=1e-6)


def test_new_parameter_values_do_not_recompile(key: jax.Array, logits: jax.Array) -> None:
    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw_t(key: jax.Array, z: jax.Array, s: js.Strategy) -> jax.Array:
        return js.sample(key, z, s)

    for tau in [0.0, 0.3, 0.7, 1.5, 100.0]:
        draw_t(key, logits, js.Temperature(tau))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw_p(key: jax.Array, z: jax.Array, s: js.Strategy) -> jax.Array:
        return js.sample(key, z, s)

    for p, tau in [(0.9, 0.8), (0.5, 1.0), (1.0, 0.0), (0.1, 2.0)]:
        draw_p(key, logits, js.TopP(p, tau=tau))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def draw_k(key: jax.Array, z: jax.Array, s: js.Strategy) -> jax.Array:
        return js.sample(key, z, s)

    for k in [1, 5, 40, 64, 0]:  # one k_max bucket (64)
        draw_k(key, logits, js.TopK(k, tau=0.7))

    with pytest.raises(AssertionError):  # the counter does catch a retrace
        draw_k(key, logits, js.TopK(65))
