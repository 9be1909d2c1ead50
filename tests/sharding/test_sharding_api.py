"""jaxsample.sharding on the one device of the test process: padding, checks, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from jaxsample import sharding


@pytest.fixture(scope="module")
def mesh() -> jax.sharding.Mesh:
    return jax.make_mesh((1, 1), ("dp", "tp"))


def test_padded_vocab() -> None:
    m = sharding.VOCAB_MULTIPLE
    assert m == js.samplers.VOCAB_MULTIPLE and m % sharding.MAX_VOCAB_SHARDS == 0
    assert sharding.padded_vocab(1) == m
    assert sharding.padded_vocab(m) == m
    assert sharding.padded_vocab(m + 1) == 2 * m
    assert sharding.padded_vocab(128256) == 128256  # Llama 3's vocabulary needs no padding
    assert sharding.padded_vocab(50257) == -(-50257 // m) * m
    assert sharding.padded_vocab(10, multiple=3) == 12
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="vocab"):
            sharding.padded_vocab(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="multiple"):
        sharding.padded_vocab(5, multiple=0)


def test_pad_vocab_appends_minus_inf_only() -> None:
    m = sharding.VOCAB_MULTIPLE
    x = jnp.arange(2 * 3 * 200, dtype=jnp.bfloat16).reshape(2, 3, 200)
    y = sharding.pad_vocab(x)
    assert y.shape == (2, 3, m) and y.dtype == jnp.bfloat16
    np.testing.assert_array_equal(np.asarray(y[..., :200]), np.asarray(x))
    assert bool(jnp.all(y[..., 200:] == -jnp.inf))
    z = jnp.ones((4, 2 * m))
    assert sharding.pad_vocab(z) is z
    ints = sharding.pad_vocab(jnp.arange(5))
    assert ints.dtype == jnp.float32 and ints.shape == (m,)
    assert bool(jnp.isneginf(ints[5:]).all())


def test_padding_keeps_the_distribution() -> None:
    x = jax.random.normal(jax.random.key(0), (3, 200)) * 2
    s = js.TopP(0.8, tau=0.7)
    q = js.probs(sharding.pad_vocab(x), s)
    np.testing.assert_allclose(np.asarray(q[:, :200]), np.asarray(js.probs(x, s)), atol=1e-6)
    assert bool((q[:, 200:] == 0).all())


def test_pad_vocab_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        sharding.pad_vocab(jnp.zeros((3, 0)))
    with pytest.raises(ValueError, match="real"):
        sharding.pad_vocab(jnp.zeros((3,), jnp.complex64))
    with pytest.raises(ValueError, match="multiple"):
        sharding.pad_vocab(jnp.zeros((3,)), multiple=-2)


def test_batch_only_layout_matches_sample(mesh: jax.sharding.Mesh) -> None:
    """With the vocabulary whole, the wrapper is a shard_map over rows: same tokens."""
    x = jax.random.normal(jax.random.key(1), (5, 300)) * 3
    key = jax.random.key(2)
    for s in (js.Greedy(), js.TopK(7, tau=jnp.linspace(0.5, 1.5, 5)), js.TopP(0.9)):
        got = sharding.sample(key, x, s, mesh=mesh, vocab_axis=None)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(js.sample(key, x, s)))
    keys = jax.random.split(key, 5)
    got = sharding.sample(keys, x, js.Temperature(0.9), mesh=mesh, vocab_axis=None)
    want = js.sample(keys, x, js.Temperature(0.9))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_layout_errors(mesh: jax.sharding.Mesh) -> None:
    x = jnp.zeros((4, 256))
    key = jax.random.key(0)
    s = js.Temperature(1.0)
    with pytest.raises(ValueError, match=r"jax\.sharding\.Mesh"):
        sharding.sample(key, x, s, mesh="dp")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"vocab_axis must be None or one of the mesh's axes"):
        sharding.sample(key, x, s, mesh=mesh, vocab_axis="model")
    with pytest.raises(ValueError, match="batch_axis=None"):
        sharding.sample(key, x, s, mesh=mesh, batch_axis="data")
    with pytest.raises(ValueError, match="different mesh axes"):
        sharding.sample(key, x, s, mesh=mesh, vocab_axis="tp", batch_axis="tp")
    with pytest.raises(ValueError, match="one key per row"):
        sharding.sample(jax.random.split(key, 3), x, s, mesh=mesh, vocab_axis=None)
    with pytest.raises(ValueError, match="strategy"):
        sharding.sample(key, x, "greedy", mesh=mesh, vocab_axis=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="broadcast against the rows"):
        sharding.sample(key, x, js.Temperature(jnp.ones(3)), mesh=mesh, vocab_axis=None)
    with pytest.raises(ValueError, match="shape"):
        sharding.probs(jnp.zeros((2, 0)), s, mesh=mesh)
