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


#: Widths up to which :func:`prefix_sums` is one matrix product.
_PREFIX_BY_DOT = 512


def prefix_sums(w: jax.Array) -> jax.Array:
    """Inclusive prefix sums along the last axis of ``w`` ``[..., m]`` (float32).

    Up to ``_PREFIX_BY_DOT`` entries, one product with an upper-triangular matrix
    of ones (at full float32 precision): a single operation, where a parallel scan
    costs a dozen small ones; longer rows use the parallel scan. Either way the
    rounding is not that of a running sum, so the result need not be monotone to
    the last bit.
    """
    m = w.shape[-1]
    if m > _PREFIX_BY_DOT:
        out: jax.Array = lax.associative_scan(jnp.add, w, axis=-1)
        return out
    upper = jnp.triu(jnp.ones((m, m), w.dtype))
    return jnp.matmul(w, upper, precision=lax.Precision.HIGHEST)


def per_row(value: Any, lead: tuple[int, ...], dtype: Any) -> jax.Array:
    """A strategy parameter broadcast to the rows ``lead`` and flattened to ``[n]``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype), lead).reshape(-1)


def _positive_zero(z: jax.Array) -> jax.Array:
    """Replace ``-0.0`` by ``+0.0``: ``lax.top_k`` orders them, ``==`` does not."""
    return jnp.where(z == 0, jnp.float32(0.0), z)


def _prefix_mask(keys: jax.Array, threshold: jax.Array, last_index: jax.Array) -> jax.Array:
    """The tokens of a prefix of the (key desc, index asc) order of ``keys`` ``[..., V]``.

    The prefix ends with the token ``last_index``, of key ``threshold`` (both of
    shape ``[..., 1]``), that token included.
    """
    iota = _token_iota(keys)
    return (keys > threshold) | ((keys == threshold) & (iota <= last_index))


def _keep_prefix(z: jax.Array, threshold: jax.Array, last_index: jax.Array) -> jax.Array:
    """``z`` on a prefix of its (value desc, index asc) order, ``-inf`` elsewhere.

    See :func:`_prefix_mask`.
    """
    return jnp.where(_prefix_mask(z, threshold, last_index), z, -jnp.inf)


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


def group_count(vocab: int, size: int = SELECT_CHUNK) -> int:
    """Number ``q = ceil(V / size)`` of interleaved groups of a row of ``V`` tokens."""
    return -(-vocab // size)


def fold_slices(
    x: jax.Array,
    columns: int,
    size: int,
    fill: float,
    combine: Any,
    f: Any = None,
) -> jax.Array:
    """Combine ``size`` contiguous slices of the last axis of ``x`` into ``[..., columns]``.

    ``out[..., c] = combine_j f(x)[..., c + j * columns]`` over ``j < size``;
    positions past the row read ``fill`` (before ``f``). One elementwise loop
    over the row that XLA vectorises with ``f`` fused in; on XLA:CPU a row
    reduction with the same producer runs unvectorised.
    Returns ``[..., columns]``.
    """
    length = x.shape[-1]
    pad = [(0, 0)] * (x.ndim - 1) + [(0, size * columns - length)]
    padded = jnp.pad(x, pad, constant_values=fill)
    f = (lambda v: v) if f is None else f
    out: jax.Array = f(padded[..., :columns])
    for j in range(1, size):
        out = combine(out, f(padded[..., j * columns : (j + 1) * columns]))
    return out


def group_maxima(z: jax.Array, size: int = SELECT_CHUNK) -> jax.Array:
    """Maxima of the interleaved groups of each row of ``z`` ``[n, V]``.

    Group ``c`` holds the tokens ``c + j q`` (``j < size``, ``q = ceil(V / size)``,
    tokens past ``V`` read ``-inf``): :func:`fold_slices`, one vectorised read of
    ``z``, as cheap as a row maximum (a windowed reduction over consecutive tokens
    costs up to twice that on XLA:CPU). NaN propagates. Returns float32 ``[n, q]``.
    """
    return fold_slices(z, group_count(z.shape[-1], size), size, -jnp.inf, jnp.maximum)


#: Other members of the picked groups that :func:`top_window` merges directly.
_INTRUDERS = 16
#: Of them, the most that one group may hold (its next largest members).
_GROUP_INTRUDERS = 2


def _gather_groups(z: jax.Array, groups: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The members of the interleaved groups ``groups`` ``[n, w]`` of each row of ``z`` ``[n, V]``.

    Returns ``(values, tokens)``, float32 (as in ``z``, ``-inf`` past the row) and
    int32 ``[n, size, w]``: member ``j`` of group ``groups[:, i]`` is
    at ``[:, j, i]``. With ``groups`` ascending, the flattened ``[n, size * w]``
    layout is in token order.
    """
    n, vocab = z.shape
    q = group_count(vocab)
    width = groups.shape[-1]
    full = vocab // q  # members j < full exist for every group
    # The first full * q tokens viewed as [n, full, q]: a group's first members are
    # one column, gathered as a single strided slice (much cheaper on XLA:CPU than
    # one index per member, and no padded copy of the row).
    rows = lax.broadcasted_iota(jnp.int32, (n, width), 0)
    dims = lax.GatherDimensionNumbers(
        offset_dims=(1,), collapsed_slice_dims=(0, 2), start_index_map=(0, 2)
    )
    parts = [
        lax.gather(
            z[:, : full * q].reshape(n, full, q), jnp.stack([rows, groups], axis=-1), dims,
            slice_sizes=(1, full, 1), mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
        )
    ]
    for j in range(full, SELECT_CHUNK):  # the members past the view, one by one
        token = groups + j * q
        value = jnp.take_along_axis(z, jnp.minimum(token, vocab - 1), axis=-1)
        parts.append(jnp.where(token < vocab, value, -jnp.inf)[:, None, :])
    values = jnp.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
    tokens = groups[:, None, :] + q * lax.broadcasted_iota(jnp.int32, (1, SELECT_CHUNK, 1), 1)
    return values, tokens


def _leading_members(cand: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """The ``count`` leading members of each group of ``cand`` ``[n, size, w]``.

    Members are ranked by value descending, then member index ascending (as
    ``jnp.argmax`` breaks ties). Returns ``(values, members)``, float32 and int32
    ``[n, count, w]``; a group with fewer finite members repeats member 0 with
    value ``-inf``. Built as an insertion of the members, one at a time, into a
    sorted list: elementwise over the groups, one vectorised pass (an ``argmax``
    over the member axis per rank costs several).
    """
    n, size, w = cand.shape

    def insert(kept: list[jax.Array], new: Any, above: list[jax.Array]) -> list[jax.Array]:
        # Rank r takes the entry of rank r - 1 when the new member passes both, the
        # new member when it passes only rank r, and keeps its entry otherwise.
        out = [jnp.where(above[0], new, kept[0])]
        for r in range(1, count):
            out.append(jnp.where(above[r - 1], kept[r - 1], jnp.where(above[r], new, kept[r])))
        return out

    vals = [jnp.full((n, w), -jnp.inf, cand.dtype) for _ in range(count)]
    idx = [jnp.zeros((n, w), jnp.int32) for _ in range(count)]
    for j in range(size):
        v = cand[:, j, :]
        above = [v > a for a in vals]  # strict: an equal, earlier member stays ahead
        vals, idx = insert(vals, v, above), insert(idx, j, above)
    return jnp.stack(vals, axis=1), jnp.stack(idx, axis=1)


def _ahead(v1: jax.Array, i1: jax.Array, v2: jax.Array, i2: jax.Array) -> jax.Array:
    """Whether the entry ``(v1, i1)`` precedes ``(v2, i2)``: value descending, index ascending."""
    return (v1 > v2) | ((v1 == v2) & (i1 < i2))


def _count_ahead(v1: jax.Array, i1: jax.Array, v2: jax.Array, i2: jax.Array) -> jax.Array:
    """For each entry of ``(v2, i2)`` ``[n, a]``, how many of ``(v1, i1)`` ``[n, b]`` precede it."""
    ahead = _ahead(v1[:, None, :], i1[:, None, :], v2[:, :, None], i2[:, :, None])
    return jnp.sum(ahead, axis=-1, dtype=jnp.int32)


#: Most groups per bucket in :func:`_top_groups` (bounds the unrolled loop).
_BUCKET_MEMBERS = 32


def _top_groups(gm: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """``lax.top_k(gm, width)`` up to the order of equal values, for NaN-free ``gm`` ``[n, q]``.

    ``-0.0`` is read as ``0.0`` (the returned values hold no ``-0.0``).

    XLA:CPU's TopK is a partial sort whose cost grows with how often a later
    entry displaces one of the ``width`` kept so far, which is often for entries in
    random order. So the input is led by entries that are likely large, the maxima
    of at least ``width`` interleaved buckets of ``gm``, and followed by ``gm`` with
    those entries masked: about a third cheaper on Zipf-like rows. The same values
    are returned, and the same indices wherever values are distinct.
    """
    n, q = gm.shape
    per = min(-(-q // width), _BUCKET_MEMBERS)  # groups per bucket
    if per < 4:
        values, indices = lax.top_k(_positive_zero(gm), width)
        return values, indices.astype(jnp.int32)
    buckets = -(-q // per)  # about width, more when per is capped
    # Bucket b holds the groups b + j * buckets: contiguous slices of gm, of which
    # only the last may be short (no padded copy of gm).
    parts = [_positive_zero(gm[:, j * buckets : min((j + 1) * buckets, q)]) for j in range(per)]
    lead = parts[0]
    slot = jnp.zeros((n, buckets), jnp.int32)  # which member of its bucket leads
    for j in range(1, per):
        v = jnp.pad(parts[j], ((0, 0), (0, buckets - parts[j].shape[1])), constant_values=-jnp.inf)
        larger = v > lead
        lead = jnp.where(larger, v, lead)
        slot = jnp.where(larger, j, slot)
    # After the leads, gm itself with each lead masked: position buckets + g is group g.
    rest = [jnp.where(slot[:, : v.shape[1]] == j, -jnp.inf, v) for j, v in enumerate(parts)]
    values, pos = lax.top_k(jnp.concatenate([lead, *rest], axis=-1), width)
    pos = pos.astype(jnp.int32)
    bucket = jnp.minimum(pos, buckets - 1)
    led = jnp.take_along_axis(slot, bucket, axis=-1) * buckets + bucket
    return values, jnp.where(pos < buckets, led, jnp.minimum(pos - buckets, q - 1))


def _window_parts(
    z: jax.Array, width: int, gm: jax.Array
) -> tuple[tuple[jax.Array, jax.Array], jax.Array, jax.Array, jax.Array]:
    """Stages 1 and 2 of :func:`top_window` for ``z`` ``[n, V]`` and its group maxima ``gm``.

    Returns ``((values, indices), exact, cut_clean, best)``: the merged window
    (``[n, width]`` each), whether it is exact and whether no group left out
    reaches the smallest picked maximum (bool ``[n]`` each), and the picked
    groups (int32 ``[n, width]``).
    """
    n = z.shape[0]
    a_val, best = _top_groups(gm, width)
    # The checks gather and reduce the top_k outputs rather than slice them: a
    # slice of its output can turn XLA's TopK kernel back into a full sort.
    t = jnp.min(a_val, axis=-1)
    slot = lax.broadcasted_iota(jnp.int32, a_val.shape, 1)
    after = jnp.take_along_axis(a_val, jnp.minimum(slot + 1, width - 1), axis=-1)
    # No group left out reaches t, and the picked maxima strictly decrease.
    cut_clean = jnp.sum(gm >= t[:, None], axis=-1, dtype=jnp.int32) == width
    distinct = jnp.all((a_val > after) | (slot == width - 1), axis=-1)
    cand, tokens = _gather_groups(z, best)  # [n, size, width]
    # Each group's maximum, its next members (the candidate intruders) and the one
    # after them, which must stay below t.
    lead_v, lead_j = _leading_members(cand, _GROUP_INTRUDERS + 2)  # [n, 4, width]
    a_idx = jnp.take_along_axis(tokens, lead_j[:, :1], axis=1)[:, 0, :]
    few = jnp.all(lead_v[:, -1] < t[:, None], axis=-1)
    picks = slice(1, 1 + _GROUP_INTRUDERS)
    b_cand = _positive_zero(lead_v[:, picks].reshape(n, -1))
    b_tok = jnp.take_along_axis(tokens, lead_j[:, picks], axis=1).reshape(n, -1)
    intruders = min(_INTRUDERS, b_cand.shape[-1])
    b_val, where_ = lax.top_k(jnp.where(b_cand >= t[:, None], b_cand, -jnp.inf), intruders)
    b_idx = jnp.take_along_axis(b_tok, where_, axis=-1)
    # Each entry's place in the merged order: the entries of its own list ahead of
    # it plus those of the other list.
    a_rank = jnp.arange(width, dtype=jnp.int32) + _count_ahead(b_val, b_idx, a_val, a_idx)
    b_rank = _count_ahead(b_val, b_idx, b_val, b_idx) + _count_ahead(a_val, a_idx, b_val, b_idx)
    rank = jnp.concatenate([a_rank, b_rank], axis=-1)
    rows = lax.broadcasted_iota(jnp.int32, rank.shape, 0)
    size = (n, width + intruders)

    def place(a: jax.Array, b: jax.Array) -> jax.Array:
        out = jnp.zeros(size, a.dtype).at[rows, rank].set(
            jnp.concatenate([a, b], axis=-1), unique_indices=True
        )
        return out[:, :width]

    merged_val, merged_idx = place(a_val, b_val), place(a_idx, b_idx)
    last_b = jnp.min(b_val, axis=-1)
    exact = (
        cut_clean
        & few
        & distinct
        & (t > -jnp.inf)
        & ~jnp.any(b_val == t[:, None], axis=-1)
        & ((last_b == -jnp.inf) | (jnp.min(merged_val, axis=-1) > last_b))
    )

    return (merged_val, merged_idx), exact, cut_clean, best


def _top_window_grouped(
    z: jax.Array, width: int, maxima: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """:func:`top_window` from interleaved group maxima, tuned for XLA:CPU.

    Equal to ``lax.top_k`` (values descending, ties by lowest index; ``-0.0`` is
    read as ``0.0``) up to which ``-inf`` entries fill a row with fewer than
    ``width`` finite values. For a long row it avoids ``lax.top_k`` over the whole
    row (several row reads on a CPU):

    1. ``lax.top_k`` over the group maxima (see :func:`group_maxima` and
       :func:`_top_groups`) picks the ``width`` groups with the largest maxima.
       When no group left out reaches the smallest picked maximum ``t``, they
       hold the ``width`` largest entries: every entry left out is below ``t``.
    2. Usually the answer is then those ``width`` maxima, already in order,
       merged with the few other members of the picked groups that reach ``t``
       (up to ``_INTRUDERS`` of them, by a small ``lax.top_k`` over the next
       ``_GROUP_INTRUDERS`` largest members of each group). This is exact when
       the picked maxima are distinct, no group holds more such members than
       that, no other member equals ``t``, and, if there may be more such
       members than were merged, the merged window ends above the last one
       merged.
    3. Otherwise ``lax.top_k`` runs over all members of the picked groups, laid
       out in token order so that ties keep their index order;
    4. or, when a group left out also reaches ``t`` (ties across the cut), over
       the whole row.

    The route is chosen for the whole batch (``lax.switch``).

    Args:
        z: float32 ``[n, V]`` without NaN.
        width: static number of entries, ``1 <= width <= V``.
        maxima: the row's :func:`group_maxima`, when already computed.

    Returns:
        ``(values, indices)``: float32 and int32 ``[n, width]``.
    """
    n, vocab = z.shape

    def whole_row() -> tuple[jax.Array, jax.Array]:
        out, where_ = lax.top_k(_positive_zero(z), width)
        return out, where_.astype(jnp.int32)

    if 8 * width * SELECT_CHUNK > vocab:
        return whole_row()
    gm = group_maxima(z) if maxima is None else maxima
    merged, exact, cut_clean, best = _window_parts(z, width, gm)

    def in_token_order() -> tuple[jax.Array, jax.Array]:
        values, tokens = _gather_groups(z, jnp.sort(best, axis=-1))
        out, where_ = lax.top_k(_positive_zero(values.reshape(n, -1)), width)
        return out, jnp.take_along_axis(tokens.reshape(n, -1), where_, axis=-1)

    route = jnp.where(jnp.all(exact), 0, jnp.where(jnp.all(cut_clean), 1, 2))
    window: tuple[jax.Array, jax.Array] = lax.switch(
        route, [lambda: merged, in_token_order, whole_row]
    )
    return window


def _top_positions(
    v: jax.Array, width: int, chunks: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
    """``lax.top_k(v, width)`` for NaN-free ``v`` ``[n, L]``, by nested chunk maxima.

    A row longer than ``SELECT_CHUNK * width`` is cut into chunks of
    ``SELECT_CHUNK`` consecutive entries (``chunks``, their :func:`chunk_maxima`,
    when already computed). The ``width`` best chunks are found the same way,
    one level up, and sorted by position; ``lax.top_k`` then runs over their
    members only, laid out in position order. Ranking entries and chunks by
    (value descending, position ascending), the chunk of each of the ``width``
    best entries is among the ``width`` best chunks (every chunk ranked above it
    holds a distinct entry ranked above that entry), so the result is exact,
    ties included, and each ``lax.top_k`` sees at most ``SELECT_CHUNK * width``
    entries (GPUs sort those in one kernel; the whole row would take a global
    radix sort).

    Returns ``(values, positions)``: float32 (``-0.0`` read as ``0.0``) and int32
    ``[n, width]``.
    """
    n, length = v.shape
    if length <= SELECT_CHUNK * width:
        out, pos = lax.top_k(_positive_zero(v), width)
        return out, pos.astype(jnp.int32)
    chunks = chunk_maxima(v) if chunks is None else chunks
    _, best = _top_positions(chunks, width)
    best = jnp.sort(best, axis=-1)
    member = jnp.arange(SELECT_CHUNK, dtype=jnp.int32)
    pos = (best[:, :, None] * SELECT_CHUNK + member).reshape(n, width * SELECT_CHUNK)
    cand = jnp.take_along_axis(v, jnp.minimum(pos, length - 1), axis=-1)
    # Past the row: -inf, after every real entry (at least width of them).
    cand = jnp.where(pos < length, _positive_zero(cand), -jnp.inf)
    out, where_ = lax.top_k(cand, width)
    return out, jnp.minimum(jnp.take_along_axis(pos, where_, axis=-1), length - 1)


def chunk_max_and_mass(z: jax.Array, s: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Chunk maxima of ``z`` ``[n, V]`` and the row's tempered mass, in one read.

    Returns ``(maxima, mass)``: the :func:`chunk_maxima` of ``z`` (float32
    ``[n, ceil(V / SELECT_CHUNK)]``) and ``sum_i exp((z_i - m) * s)`` with ``m``
    the row maximum and ``s`` ``[n]`` a positive finite scale (float32 ``[n]``).
    One variadic ``reduce_window`` carries, per chunk, the maximum of ``z``, the
    maximum ``c`` of ``y = z * s`` and ``sum exp(y - c)``, merged as in an online
    softmax (Milakov and Gimelshein 2018, "Online normalizer calculation for
    softmax"); the chunks are then combined as ``sum_c t_c exp(c - max_c c)``
    (scaling by ``s > 0`` keeps the maximum: ``max(z * s) = max(z) * s``). A row
    with NaN, ``+inf``, or no finite entry gets a meaningless mass.
    """
    vocab = z.shape[-1]
    y = z * s[:, None]

    def merge(
        a: tuple[jax.Array, jax.Array, jax.Array], b: tuple[jax.Array, jax.Array, jax.Array]
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        za, ya, ta = a
        zb, yb, tb = b
        top = jnp.maximum(ya, yb)
        # exp(0) written as 1 where an input is the maximum: no -inf - -inf.
        ea = jnp.where(ya == top, 1.0, jnp.exp(ya - top))
        eb = jnp.where(yb == top, 1.0, jnp.exp(yb - top))
        return jnp.maximum(za, zb), top, ta * ea + tb * eb

    init = (jnp.float32(-jnp.inf), jnp.float32(-jnp.inf), jnp.float32(0.0))
    chunk = (1, SELECT_CHUNK)
    pad = ((0, 0), (0, -vocab % SELECT_CHUNK))
    maxima, top, mass = lax.reduce_window((z, y, jnp.ones_like(z)), init, merge, chunk, chunk, pad)
    scale = jnp.exp(top - jnp.max(top, axis=-1, keepdims=True))
    return maxima, jnp.sum(mass * scale, axis=-1)


def top_window(z: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """The ``width`` largest entries of each row of NaN-free ``z`` ``[n, V]``, exactly.

    Equal to ``lax.top_k`` (values descending, ties by lowest index; ``-0.0`` is
    read as ``0.0``) up to which ``-inf`` entries fill a row with fewer than
    ``width`` finite values, without a ``lax.top_k`` over the whole row (several
    row reads on a CPU, a global radix sort on a GPU). The selection is chosen
    for the platform (``lax.platform_dependent``): on a CPU, interleaved group
    maxima and a merged window (:func:`_top_window_grouped`, built around
    XLA:CPU's vectorisation and its partial-sort TopK); elsewhere (GPU, TPU),
    nested chunk maxima with ``lax.top_k`` over at most ``SELECT_CHUNK * width``
    entries per level (:func:`_top_positions`). Both are exact.

    Args:
        z: float32 ``[n, V]`` without NaN.
        width: static number of entries, ``1 <= width <= V``.

    Returns:
        ``(values, indices)``: float32 and int32 ``[n, width]``.
    """

    def grouped(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _top_window_grouped(x, width)

    def nested(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _top_positions(x, width)

    out: tuple[jax.Array, jax.Array] = lax.platform_dependent(z, cpu=grouped, default=nested)
    return out


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
    cum = prefix_sums(probs)
    target = (p - TOP_P_TOLERANCE)[:, None]
    count = jnp.maximum(jnp.sum(cum - probs < target, axis=-1, keepdims=True), 1)
    return count.astype(jnp.int32), cum[:, -1] >= target[:, 0]


def _sortable_bits(z: jax.Array) -> jax.Array:
    """Map float32 values to int32 keys with the same order (no NaN; ``-0.0`` removed)."""
    bits = lax.bitcast_convert_type(z, jnp.int32)
    return jnp.where(bits >= 0, bits, bits ^ jnp.int32(0x7FFFFFFF))


def _float_of_bits(key: jax.Array) -> jax.Array:
    """Inverse of :func:`_sortable_bits`."""
    bits = jnp.where(key >= 0, key, key ^ jnp.int32(0x7FFFFFFF))
    return lax.bitcast_convert_type(bits, jnp.float32)


def _nucleus_by_bisection(
    order: jax.Array, rows: jax.Array, z_max: jax.Array, total: jax.Array, p: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Exact nucleus boundary of each row without sorting: bisection on the value.

    The boundary value ``T`` is the smallest row value whose strictly larger values
    hold less than ``p`` of the mass; it is found by bisection over the order-
    preserving integer keys of the float32 values (33 masked sums over the row).
    Tokens tied at ``T`` are then kept in index order while the mass ahead of
    them stays below ``p``.

    Args:
        order: ``[n, V]`` the values that order the tokens (no ``-0.0``).
        rows: ``[n, V]`` sanitised log-weights, a non-decreasing function of ``order``.
        z_max: ``[n, 1]`` row maxima of ``rows``.
        total: ``[n]`` row sums of ``exp(rows - z_max)``.
        p: ``[n]`` nucleus mass.

    Returns:
        ``(threshold, last_index)``, ``[n, 1]`` each: the ``order`` value and the
        index of the last kept token (see :func:`_prefix_mask`).
    """
    e = jnp.exp(rows - z_max)
    keys = _sortable_bits(order)
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
    e_t = jnp.max(jnp.where(tied, e, 0.0), axis=-1, keepdims=True)  # the tied tokens' weight
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


def top_p_log_weights(
    z: jax.Array, p: Any, window: int, order: jax.Array | None = None
) -> jax.Array:
    """Keep the nucleus of mass ``p`` of each row (see :class:`jaxsample.TopP`).

    Tokens are ranked by ``order`` (descending, ties by lowest index), by default
    ``z`` itself; :class:`jaxsample.TopP` ranks by the logits before temperature
    scaling, whose rounding can merge neighbouring values. The boundary is searched
    among the ``window`` first tokens of that ranking (:func:`top_window`); a row
    whose window holds less than ``p`` of the mass is answered exactly without a
    sort instead, by bisection on the boundary value (see
    :func:`_nucleus_by_bisection`). The bisection is skipped entirely
    (``lax.cond``) when no row needs it; under ``vmap`` both branches run. Each
    row's answer depends on that row alone.

    Args:
        z: float32 ``[..., V]`` sanitised log-weights.
        p: scalar or array broadcast against ``z.shape[:-1]``.
        window: static candidate count.
        order: float32 ``[..., V]`` values that rank the tokens, ``z`` a
            non-decreasing function of them; ``None`` ranks by ``z``.

    Returns:
        float32 ``[..., V]``.
    """
    lead, vocab = z.shape[:-1], z.shape[-1]
    rows = _positive_zero(z).reshape(-1, vocab)
    keys = rows if order is None else _positive_zero(order).reshape(-1, vocab)
    pp = per_row(p, lead, jnp.float32)
    z_max = jnp.max(rows, axis=-1, keepdims=True)
    total = jnp.sum(jnp.exp(rows - z_max), axis=-1)

    width = min(window, vocab)
    top_key, top_idx = top_window(keys, width)
    top_z = jnp.take_along_axis(rows, top_idx, axis=-1)
    count, covered = nucleus_size(jnp.exp(top_z - z_max) / total[:, None], pp)
    threshold = jnp.take_along_axis(top_key, count - 1, axis=-1)
    last = jnp.take_along_axis(top_idx, count - 1, axis=-1)
    # Rows with p >= 1 keep everything below, whatever the window says.
    covered = covered | (pp >= 1.0)

    def exact(operand: None) -> tuple[jax.Array, jax.Array]:
        t_full, last_full = _nucleus_by_bisection(keys, rows, z_max, total, pp)
        need = ~covered[:, None]
        return jnp.where(need, t_full, threshold), jnp.where(need, last_full, last)

    if width < vocab:
        threshold, last = lax.cond(
            jnp.all(covered), lambda _: (threshold, last), exact, None
        )
    kept = jnp.where(_prefix_mask(keys, threshold, last), rows, -jnp.inf)
    out = jnp.where((pp >= 1.0)[:, None], rows, kept)
    return out.reshape(z.shape)
