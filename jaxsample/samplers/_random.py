"""One uniform number per row, derived from the row keys as ``jax.random`` does."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._layout import lanes

#: Threefry-2x32 rotation constants, rounds 1-4 and 5-8 (Salmon et al., 2011).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Threefry key-schedule parity constant.
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, d: int) -> jax.Array:
    return lax.bitwise_or(
        lax.shift_left(x, np.uint32(d)), lax.shift_right_logical(x, np.uint32(32 - d))
    )


def threefry2x32(
    k0: jax.Array, k1: jax.Array, x0: jax.Array, x1: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """The Threefry-2x32 block cipher with 20 rounds, written out in full.

    J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
    numbers: as easy as 1, 2, 3", SC 2011. The same function as the hash behind
    ``jax.random``'s default keys; JAX lowers it on CPU as a five-step loop (to
    keep compile times short), which costs about 0.1 ms per call at any size, while
    the twenty rounds written out fuse into one elementwise kernel.

    Args:
        k0: uint32 first key word, broadcast against the block.
        k1: uint32 second key word, broadcast against the block.
        x0: uint32 first block word.
        x1: uint32 second block word, the shape of ``x0``.

    Returns:
        The two uint32 output words.
    """
    # lax's ops, not jnp's operators: each of those is a nested jit to trace.
    add, xor = lax.add, lax.bitwise_xor
    keys = (k0, k1, xor(xor(k0, k1), _PARITY))
    a, b = add(x0, keys[0]), add(x1, keys[1])
    for step in range(5):
        for r in _ROTATIONS[step % 2]:
            a = add(a, b)
            b = xor(_rotl(b, r), a)
        a = add(a, keys[(step + 1) % 3])
        b = add(add(b, keys[(step + 2) % 3]), np.uint32(step + 1))
    return a, b


def _written_out_applies(key: jax.Array) -> bool:
    """Whether the written-out hash reproduces ``jax.random`` for keys like ``key``."""
    return str(jax.random.key_impl(key)) == "threefry2x32" and bool(
        jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
    )


def row_keys(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """The key of each row, typed ``[n]``: ``fold_in(key, r)`` for a single key, else ``key``.

    ``r`` counts the rows of ``lead`` in row-major order; ``n = prod(lead)``.
    """
    n = math.prod(lead)
    if key.shape == () and lead != ():
        data = jax.random.key_data(key).reshape(2)
        if _written_out_applies(key):
            k0, k1 = threefry2x32(
                data[0], data[1], jnp.zeros((n,), jnp.uint32), jnp.arange(n, dtype=jnp.uint32)
            )
            impl = jax.random.key_impl(key)
            out: jax.Array = jax.random.wrap_key_data(jnp.stack([k0, k1], -1), impl=impl)
            return out
        return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(n, dtype=jnp.uint32))
    return key.reshape(n)


def stored(keys: jax.Array) -> jax.Array:
    """Typed keys ``[n]`` unchanged, formed once in a kernel of their own.

    For a loop that reads the keys every round: XLA would otherwise form them
    (a hash, for :func:`row_keys`) again inside the loop. The key words are
    packed as lanes (:func:`~._layout.lanes`), not stacked: a stack is compiled
    once per word, and each word needs the whole hash.
    """
    data = jax.random.key_data(keys)
    words = _stored(lanes(*(data[:, j] for j in range(data.shape[-1]))))
    out: jax.Array = jax.random.wrap_key_data(words, impl=jax.random.key_impl(keys))
    return out


def _bits_to_uniform(bits: jax.Array) -> jax.Array:
    mantissa = lax.bitwise_or(lax.shift_right_logical(bits, np.uint32(9)), np.uint32(0x3F800000))
    u: jax.Array = lax.sub(lax.bitcast_convert_type(mantissa, jnp.float32), np.float32(1.0))
    return u


def uniforms(keys: jax.Array, counters: jax.Array) -> jax.Array:
    """Uniforms in [0, 1) for row keys ``[n]`` and counters ``[c]``: float32 ``[n, c]``.

    For the default (partitionable Threefry) keys, entry ``[r, j]`` is entry
    ``counters[j]`` of ``jax.random.uniform(keys[r], (N,))`` for any ``N`` above it,
    bit for bit: the ``j``-th number of the key's stream, one hash each
    (:func:`threefry2x32`). For other keys, counter ``j > 0`` draws
    ``jax.random.uniform(jax.random.fold_in(k, j), ())``. Counter 0 is
    ``jax.random.uniform(k, ())`` for every key.
    """
    c = jnp.asarray(counters, jnp.uint32)
    if not _written_out_applies(keys):

        def one(k: jax.Array, j: jax.Array) -> jax.Array:
            folded = jax.random.key_data(jax.random.fold_in(k, j))
            k = jnp.where(j == 0, jax.random.key_data(k), folded)
            u: jax.Array = jax.random.uniform(
                jax.random.wrap_key_data(k, impl=jax.random.key_impl(keys)), (), jnp.float32
            )
            return u

        out: jax.Array = jax.vmap(lambda k: jax.vmap(lambda j: one(k, j))(c))(keys)
        return out
    data = jax.random.key_data(keys)
    b0, b1 = threefry2x32(data[:, 0:1], data[:, 1:2], jnp.zeros_like(c)[None], c[None])
    return _bits_to_uniform(_stored(lax.bitwise_xor(b0, b1)))


def _stored(bits: jax.Array) -> jax.Array:
    """``bits`` unchanged, computed in a kernel of their own rather than inside each reader.

    XLA fuses cheap integer ops into every consumer, also into a reduction that
    reads each entry many times, where the hash is then compiled (and run) again
    per read. An integer division is among the ops it does not fuse into such a
    reader; dividing by ``(bits >> 31) | 1``, which is 1, changes no bit.
    """
    one = lax.bitwise_or(lax.shift_right_logical(bits, np.uint32(31)), np.uint32(1))
    return lax.div(bits, one)
