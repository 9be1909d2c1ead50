"""One uniform number per row, derived from the row keys as ``jax.random`` does."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

#: Threefry-2x32 rotation constants, rounds 1-4 and 5-8 (Salmon et al., 2011).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
#: Threefry key-schedule parity constant.
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x: jax.Array, d: int) -> jax.Array:
    return lax.shift_left(x, np.uint32(d)) | lax.shift_right_logical(x, np.uint32(32 - d))


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
    keys = (k0, k1, k0 ^ k1 ^ _PARITY)
    a, b = x0 + keys[0], x1 + keys[1]
    for step in range(5):
        for r in _ROTATIONS[step % 2]:
            a = a + b
            b = _rotl(b, r) ^ a
        a = a + keys[(step + 1) % 3]
        b = b + keys[(step + 2) % 3] + np.uint32(step + 1)
    return a, b


def _written_out_applies(key: jax.Array) -> bool:
    """Whether :func:`row_uniforms` can reproduce ``jax.random`` for ``key`` itself."""
    return str(jax.random.key_impl(key)) == "threefry2x32" and bool(
        jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
    )


def row_uniforms(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """One float32 uniform in [0, 1) per row: ``jax.random.uniform(k_r, ())``.

    ``k_r`` is ``jax.random.fold_in(key, r)`` for a single typed ``key`` and a batch
    ``lead`` of rows (``r`` in row-major order), else ``key`` itself, reshaped to
    ``[n]`` (one key per row, or ``lead == ()``). For the default Threefry keys the
    two hashes (fold-in, then the draw) are computed with :func:`threefry2x32`,
    bit for bit what ``jax.random`` returns; other key types go through
    ``jax.random``.

    Returns:
        float32 ``[n]``, ``n = prod(lead)``.
    """
    n = math.prod(lead)
    single = key.shape == () and lead != ()
    if not _written_out_applies(key):
        keys = key.reshape(n) if not single else jax.vmap(
            jax.random.fold_in, in_axes=(None, 0)
        )(key, jnp.arange(n, dtype=jnp.uint32))
        u: jax.Array = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)
        return u
    data = jax.random.key_data(key).reshape(-1, 2)
    k0, k1 = data[:, 0], data[:, 1]
    if single:
        # fold_in(key, r): the hash of the block (0, r) under the key.
        k0, k1 = threefry2x32(k0, k1, jnp.zeros((n,), jnp.uint32), jnp.arange(n, dtype=jnp.uint32))
    # 32 random bits for a scalar draw: the two words of the hash of (0, 0), xored.
    b0, b1 = threefry2x32(k0, k1, jnp.zeros_like(k0), jnp.zeros_like(k0))
    bits = b0 ^ b1
    mantissa = lax.shift_right_logical(bits, np.uint32(9)) | np.uint32(0x3F800000)
    uniforms: jax.Array = lax.bitcast_convert_type(mantissa, jnp.float32) - jnp.float32(1.0)
    return uniforms
