"""Truncation kernels shared by the strategies: greedy, top-k and top-p masks.

Each function takes sanitised float32 log-weights ``z`` of shape ``[..., V]`` (no
NaN, no ``+inf``, at least one finite entry per row) and returns ``z`` with the
removed tokens set to ``-inf``. None of them sorts the whole vocabulary on its
fast path.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

#: A mass ahead within this distance of ``p`` counts as having reached ``p``.
TOP_P_TOLERANCE = 1e-6


def _token_iota(z: jax.Array) -> jax.Array:
    return lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)


def per_row(value: Any, lead: tuple[int, ...], dtype: Any) -> jax.Array:
    """A strategy parameter broadcast to the rows ``lead`` and flattened to ``[n]``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype), lead).reshape(-1)


def _positive_zero(z: jax.Array) -> jax.Array:
    """Replace ``-0.0`` by ``+0.0``: ``lax.top_k`` orders them, ``==`` does not."""
    return jnp.where(z == 0, jnp.float32(0.0), z)


def _keep_prefix(z: jax.Array, threshold: jax.Array, last_index: jax.Array) -> jax.Array:
    """Keep a prefix of the (value desc, index asc) order; ``-inf`` elsewhere.

    The prefix ends with the token ``last_index``, of value ``threshold`` (both of
    shape ``[..., 1]``), that token included.
    """
    iota = _token_iota(z)
    keep = (z > threshold) | ((z == threshold) & (iota <= last_index))
    return jnp.where(keep, z, -jnp.inf)


#: Tokens per chunk of the chunk-maxima pass used by the selection kernels.
SELECT_CHUNK = 16


def chunk_maxima(z: jax.Array, chunk: int = SELECT_CHUNK) -> jax.Array:
    """Maxima of consecutive chunks of ``chunk`` tokens of each row of ``z`` ``[n, V]``.

    Returns float32 ``[n, ceil(V / chunk)]``; the last chunk may be shorter. One
    vectorised read of ``z`` (the same cost as a row maximum), and NaN propagates.
    """
    return chunk_reduce(z, chunk, -jnp.inf, lax.max)


def chunk_reduce(z: jax.Array, chunk: int, init: float, op: Any) -> jax.Array:
    """Reduce consecutive chunks of the last axis of ``z`` ``[n, V]`` to ``[n, ceil(V / chunk)]``.

    A strided ``reduce_window`` with implicit padding: XLA fuses an elementwise
    producer into it and never copies the row (a slice and reshape would).
    """
    vocab = z.shape[-1]
    pad = -vocab % chunk
    out: jax.Array = lax.reduce_window(
        z, jnp.asarray(init, z.dtype), op, (1, chunk), (1, chunk), ((0, 0), (0, pad))
    )
    return out


def argmax_from_chunks(z: jax.Array, maxima: jax.Array, chunk: int = SELECT_CHUNK) -> jax.Array:
    """First maximum of each row of NaN-free ``z`` ``[n, V]`` given its :func:`chunk_maxima`.

    The first chunk holding the row maximum, then the first maximum inside it:
    equal to ``jnp.argmax`` without XLA:CPU's slow index-carrying full reduction.
    Returns int32 ``[n]``.
    """
    vocab = z.shape[-1]
    best = jnp.argmax(maxima, axis=-1).astype(jnp.int32)
    pos = best[:, None] * chunk + jnp.arange(chunk, dtype=jnp.int32)
    inside = jnp.take_along_axis(z, jnp.minimum(pos, vocab - 1), axis=-1)
    inside = jnp.where(pos < vocab, inside, -jnp.inf)
    return jnp.minimum(pos[:, 0] + jnp.argmax(inside, axis=-1).astype(jnp.int32), vocab - 1)


def first_argmax(z: jax.Array) -> jax.Array:
    """Index of the first maximum of each row of NaN-free ``z`` ``[..., V]``, int32 ``[...]``.

    Equal to ``jnp.argmax`` (see :func:`argmax_from_chunks`).
    """
    vocab = z.shape[-1]
    if vocab < 4 * SELECT_CHUNK:
        return jnp.argmax(z, axis=-1).astype(jnp.int32)
    rows = z.reshape(-1, vocab)
    out = argmax_from_chunks(rows, chunk_maxima(rows))
    return out.reshape(z.shape[:-1])


def top_window(
    z: jax.Array, width: int, maxima: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """The ``width`` largest entries of each row of NaN-free ``z`` ``[n, V]``, exactly.

    Equal to ``lax.top_k`` (values descending, ties by lowest index; ``-0.0`` is
    read as ``0.0``) up to which ``-inf`` entries fill a row with fewer than
    ``width`` finite values. For a long row it runs in two stages: the ``width``
    chunks with the largest maxima (see :func:`chunk_maxima`) hold the ``width``
    largest entries (each chunk maximum ahead of a chunk outside them is an entry
    ahead of everything in that chunk), so ``lax.top_k`` runs on the chunk maxima
    and then on the gathered chunks, laid out in token order so that ties keep
    their index order. This avoids ``lax.top_k`` over the whole row, which costs
    several row reads on a CPU.

    Args:
        z: float32 ``[n, V]`` without NaN.
        width: static number of entries, ``1 <= width <= V``.
        maxima: the row's :func:`chunk_maxima`, when already computed.

    Returns:
        ``(values, indices)``: float32 and int32 ``[n, width]``.
    """
    n, vocab = z.shape
    chunk = SELECT_CHUNK
    if 8 * width * chunk > vocab:
        values, indices = lax.top_k(_positive_zero(z), width)
        return values, indices.astype(jnp.int32)
    gm = _positive_zero(chunk_maxima(z, chunk) if maxima is None else maxima)
    _, best = lax.top_k(gm, width)
    best = jnp.sort(best.astype(jnp.int32), axis=-1)
    # Gather whole chunks as slices (a slice may not run past the row, so the last,
    # shorter chunk is read from further left and its borrowed entries masked).
    start = jnp.minimum(best * chunk, vocab - chunk)
    rows = lax.broadcasted_iota(jnp.int32, (n, width), 0)
    dims = lax.GatherDimensionNumbers(
        offset_dims=(2,), collapsed_slice_dims=(0,), start_index_map=(0, 1)
    )
    sliced = lax.gather(
        z, jnp.stack([rows, start], axis=-1), dims, slice_sizes=(1, chunk),
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )
    pos = start[:, :, None] + jnp.arange(chunk, dtype=jnp.int32)
    cand = jnp.where(pos >= best[:, :, None] * chunk, _positive_zero(sliced), -jnp.inf)
    values, where_ = lax.top_k(cand.reshape(n, -1), width)
    indices = jnp.take_along_axis(pos.reshape(n, -1), where_, axis=-1)
    return values, indices


def greedy_log_weights(z: jax.Array) -> jax.Array:
    """Return 0 at the first maximum of each row of ``z`` and ``-inf`` elsewhere."""
    first_max = first_argmax(z)[..., None]
    return jnp.where(_token_iota(z) == first_max, jnp.float32(0.0), -jnp.inf)


def top_k_log_weights(z: jax.Array, k: Any, k_max: int | None) -> jax.Array:
    """Keep exactly ``k`` tokens per row (ties by lowest index); ``k <= 0`` or ``>= V`` keeps all.

    Args:
        z: float32 ``[..., V]`` sanitised log-weights.
        k: integer scalar or array broadcast against ``z.shape[:-1]``.
        k_max: static bound on ``k`` (``None``: ``V``); larger ``k`` keeps ``k_max``.

    Returns:
        float32 ``[..., V]``.
    """
    z = _positive_zero(z)
    vocab = z.shape[-1]
    cap = vocab if k_max is None else min(k_max, vocab)
    kk = jnp.broadcast_to(jnp.asarray(k, jnp.int32)[..., None], (*z.shape[:-1], 1))
    disabled = (kk <= 0) | (kk >= vocab)
    pos = jnp.clip(kk, 1, cap) - 1
    values, indices = top_window(z.reshape(-1, vocab), cap)
    values = values.reshape(*z.shape[:-1], cap)
    indices = indices.reshape(*z.shape[:-1], cap)
    threshold = jnp.take_along_axis(values, pos, axis=-1)
    last = jnp.take_along_axis(indices, pos, axis=-1)
    return jnp.where(disabled, z, _keep_prefix(z, threshold, last))


def nucleus_size(probs: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Size of the nucleus among candidates sorted by (value desc, index asc).

    Args:
        probs: ``[n, W]`` the candidates' probabilities under the whole row.
        p: ``[n]`` nucleus mass.

    Returns:
        ``(count, covered)``: int32 ``[n, 1]``, the number of leading candidates
        kept (a candidate is kept iff the mass strictly ahead of it is below
        ``p - TOP_P_TOLERANCE``; at least one), and bool ``[n]``, whether the
        candidates' mass reaches that target, i.e. whether ``count`` is exact.
    """
    cum = lax.associative_scan(jnp.add, probs, axis=-1)
    target = (p - TOP_P_TOLERANCE)[:, None]
    count = jnp.maximum(jnp.sum(cum - probs < target, axis=-1, keepdims=True), 1)
    return count.astype(jnp.int32), cum[:, -1] >= target[:, 0]


def _nucleus_cut(
    sorted_z: jax.Array, sorted_idx: jax.Array, z_max: jax.Array, total: jax.Array, p: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Find the nucleus boundary among candidates sorted by (value desc, index asc).

    Args:
        sorted_z: ``[n, W]`` the W largest log-weights of each row, descending.
        sorted_idx: ``[n, W]`` their token indices.
        z_max: ``[n, 1]`` row maxima.
        total: ``[n]`` the row sums of ``exp(z - z_max)``.
        p: ``[n]`` nucleus mass.

    Returns:
        ``(threshold, last_index, covered)``: the value and index of the last kept
        token (``[n, 1]`` each) and whether the candidates' mass reaches ``p``
        (``[n]``), i.e. whether the answer is exact for this row.
    """
    count, covered = nucleus_size(jnp.exp(sorted_z - z_max) / total[:, None], p)
    threshold = jnp.take_along_axis(sorted_z, count - 1, axis=-1)
    last = jnp.take_along_axis(sorted_idx, count - 1, axis=-1)
    return threshold, last, covered


def _sortable_bits(z: jax.Array) -> jax.Array:
    """Map float32 values to int32 keys with the same order (no NaN; ``-0.0`` removed)."""
    bits = lax.bitcast_convert_type(z, jnp.int32)
    return jnp.where(bits >= 0, bits, bits ^ jnp.int32(0x7FFFFFFF))


def _float_of_bits(key: jax.Array) -> jax.Array:
    """Inverse of :func:`_sortable_bits`."""
    bits = jnp.where(key >= 0, key, key ^ jnp.int32(0x7FFFFFFF))
    return lax.bitcast_convert_type(bits, jnp.float32)


def _nucleus_by_bisection(
    rows: jax.Array, z_max: jax.Array, total: jax.Array, p: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Exact nucleus boundary of each row without sorting: bisection on the value.

    The boundary value ``T`` is the smallest row value whose strictly larger values
    hold less than ``p`` of the mass; it is found by bisection over the order-
    preserving integer keys of the float32 values (33 masked sums over the row).
    Tokens tied at ``T`` are then kept in index order while the mass ahead of
    them stays below ``p``.

    Args:
        rows: ``[n, V]`` sanitised log-weights (no ``-0.0``).
        z_max: ``[n, 1]`` row maxima.
        total: ``[n]`` row sums of ``exp(rows - z_max)``.
        p: ``[n]`` nucleus mass.

    Returns:
        ``(threshold, last_index)``, ``[n, 1]`` each, as in :func:`_nucleus_cut`.
    """
    e = jnp.exp(rows - z_max)
    keys = _sortable_bits(rows)
    target = (p - TOP_P_TOLERANCE)[:, None] * total[:, None]  # unnormalised masses

    def mass_above(c: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(keys > c, e, 0.0), axis=-1, keepdims=True)

    def step(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds  # mass_above(lo) >= target > mass_above(hi)
        mid = (lo >> 1) + (hi >> 1) + (lo & hi & 1)
        below = mass_above(mid) < target
        return jnp.where(below, lo, mid), jnp.where(below, mid, hi)

    lo0 = jnp.min(keys, axis=-1, keepdims=True) - 1
    hi0 = jnp.max(keys, axis=-1, keepdims=True)
    _, t_key = lax.fori_loop(0, 33, step, (lo0, hi0))
    # p below the tolerance: only the first maximum is kept.
    t_key = jnp.where(target > 0, t_key, hi0)
    threshold = _float_of_bits(t_key)
    tied = keys == t_key
    ahead = mass_above(t_key)
    e_t = jnp.exp(threshold - z_max)
    iota = _token_iota(rows)
    vocab = rows.shape[-1]

    def partial_ties(_: None) -> jax.Array:
        rank = jnp.cumsum(tied.astype(jnp.int32), axis=-1) - 1
        kept = tied & ((ahead + rank.astype(jnp.float32) * e_t < target) | (rank == 0))
        return jnp.max(jnp.where(kept, iota, -1), axis=-1, keepdims=True)

    n_tied = jnp.sum(tied, axis=-1, keepdims=True)
    last_tied_ahead = ahead + (n_tied - 1).astype(jnp.float32) * e_t
    some_partial = jnp.any((n_tied > 1) & (last_tied_ahead >= target))
    last = lax.cond(
        some_partial, partial_ties, lambda _: jnp.full_like(t_key, vocab), None
    )
    return threshold, last


def top_p_log_weights(z: jax.Array, p: Any, window: int) -> jax.Array:
    """Keep the nucleus of mass ``p`` of each row (see :class:`jaxsample.TopP`).

    The boundary is searched among the ``window`` largest log-weights
    (``lax.top_k``); a row whose window holds less than ``p`` of the mass is
    answered exactly without a sort instead, by bisection on the boundary value
    (see :func:`_nucleus_by_bisection`). The bisection is skipped entirely
    (``lax.cond``) when no row needs it; under ``vmap`` both branches run. Each
    row's answer depends on that row alone.

    Args:
        z: float32 ``[..., V]`` sanitised log-weights.
        p: scalar or array broadcast against ``z.shape[:-1]``.
        window: static candidate count.

    Returns:
        float32 ``[..., V]``.
    """
    lead, vocab = z.shape[:-1], z.shape[-1]
    rows = _positive_zero(z).reshape(-1, vocab)
    pp = per_row(p, lead, jnp.float32)
    z_max = jnp.max(rows, axis=-1, keepdims=True)
    total = jnp.sum(jnp.exp(rows - z_max), axis=-1)

    width = min(window, vocab)
    top_z, top_idx = top_window(rows, width)
    threshold, last, covered = _nucleus_cut(top_z, top_idx, z_max, total, pp)
    # Rows with p >= 1 keep everything below, whatever the window says.
    covered = covered | (pp >= 1.0)

    def exact(operand: None) -> tuple[jax.Array, jax.Array]:
        t_full, last_full = _nucleus_by_bisection(rows, z_max, total, pp)
        need = ~covered[:, None]
        return jnp.where(need, t_full, threshold), jnp.where(need, last_full, last)

    if width < vocab:
        threshold, last = lax.cond(
            jnp.all(covered), lambda _: (threshold, last), exact, None
        )
    kept = _keep_prefix(rows, threshold, last)
    out = jnp.where((pp >= 1.0)[:, None], rows, kept)
    return out.reshape(z.shape)
