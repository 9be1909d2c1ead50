"""Exact draws by inverse CDF over the summation layout, and the top-k cut.

:func:`locate` draws a token from column and block sums (a block, then a column,
then a token; :func:`pick` searches one level); :func:`reject` runs the
rejection rounds of a top-p part; :func:`top_k_cut` finds the ``k`` first tokens
of the ranking without a sort of the row.
"""

from __future__ import annotations

import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._layout import (
    SLICES,
    Layout,
    add,
    both,
    eq,
    fixed_sum,
    ge,
    gt,
    lanes,
    layout_reduce,
    le,
    lt,
    minimum,
    mul,
    sub,
    sums_of,
    tuning,
    varying_like,
    where,
    whole,
)
from jaxsample.samplers._random import stored, uniforms
from jaxsample.samplers._reference import (
    ahead,
    clean,
    clean_top,
    logit_ahead,
    logit_bounds,
    max_and_nan,
    nan_safe,
    row_top,
    weights,
)

__all__ = [
    "CANDIDATES",
    "FAN",
    "GROUP",
    "Pivot",
    "first_max_index",
    "first_ranked",
    "grouped",
    "locate",
    "pick",
    "pick_column",
    "prefix_sums",
    "reject",
    "row_scan",
    "select",
    "take",
    "token_ids",
    "top_k_cut",
]

#: Candidates drawn in the first rejection round (a later round draws one fewer and
#: tests the middle value in its place).
CANDIDATES = 3


#: Entries per level of the inverse-CDF search.
FAN = 16
#: Tokens per group in the first top-k stage.
GROUP = 16


def grouped(k_max: int, local: int) -> bool:
    """Whether a top-k cut of at most ``k_max`` of ``local`` tokens ranks groups first."""
    return local > 4 * GROUP * min(k_max, local)


def _group_maxima(x: jax.Array) -> jax.Array:
    """Maxima of the groups of ``GROUP`` consecutive entries of each row (raw; see row_scan)."""
    window = ((1, GROUP), (1, GROUP), ((0, 0), (0, -x.shape[-1] % GROUP)))
    out: jax.Array = lax.reduce_window(x, -jnp.inf, lax.max, *window)
    return out


def row_scan(x: jax.Array, axis: str | None, groups: bool) -> tuple[jax.Array, jax.Array | None]:
    """:func:`row_top` of float32 ``x`` ``[n, local]``; with ``groups``, the cleaned group maxima.

    With ``groups``, the pass for the maximum forms the maxima of the groups of
    ``GROUP`` consecutive tokens instead (the row read in place as ``[n, groups,
    GROUP]``, the last short group apart), whether each met a NaN, and the row
    maximum from them (with a NaN, again from the logits with NaN read as
    ``-inf``: next to a NaN, XLA's CPU reduction may miss a maximum; see
    :func:`~._reference.nan_safe`). :func:`clean` maps the logits of a row in
    order, so the cleaned maxima ``[n, ceil(local / GROUP)]`` are the maxima,
    cleaned. ``axis``: as in :func:`row_top`.
    """
    if not groups:
        return row_top(x, axis), None
    top, raw = _grouped_scan(x)
    if axis is not None:
        top = lax.pmax(top, axis)  # type: ignore[no-untyped-call]
    return top, clean(raw, top[:, None])


def _grouped_scan(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The pass of :func:`row_scan` with groups: row maxima here and raw group maxima.

    Both uncleaned, NaN read as ``-inf``, with no exchange between shards.
    """

    def scan(v: jax.Array) -> tuple[jax.Array, jax.Array]:
        maxima = _group_maxima(v)
        return jnp.max(maxima, axis=-1), maxima

    def flagged(v: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        n, size = v.shape
        even = size - size % GROUP  # tokens in whole groups
        parts = [max_and_nan(v[:, even:][:, None])] if even < size else []
        if even:
            parts.insert(0, max_and_nan(v[:, :even].reshape(n, even // GROUP, GROUP)))
        maxima = jnp.concatenate([m for m, _ in parts], 1)
        nan = functools.reduce(operator.or_, [jnp.any(f) for _, f in parts])
        return (jnp.max(maxima, axis=-1), maxima), nan

    out: tuple[jax.Array, jax.Array] = nan_safe(scan, x, flagged)
    return out


def first_max_index(
    x: jax.Array, top: jax.Array, maxima: jax.Array | None, layout: Layout | None = None
) -> jax.Array:
    """The first index of the cleaned row maximum: int32 ``[n]``.

    ``x`` float32 ``[n, local]``, its :func:`~._reference.row_top` ``[n]`` and
    the cleaned maxima of its groups of ``GROUP`` tokens (:func:`row_scan` with
    ``groups``; formed here when ``None``): the lowest index whose cleaned logit
    equals the cleaned row maximum (over every shard of ``layout``). The first
    group whose maximum is the row's holds it, so after the pass for the maxima
    only that group's ``GROUP`` logits are read.
    """
    lay = whole(x.shape[-1]) if layout is None else layout
    # Formed here when not given, cleaned with ``top`` (the maximum over all shards).
    groups = clean(_grouped_scan(x)[1], top[:, None]) if maxima is None else maxima
    count = groups.shape[-1]
    group = jnp.min(where(eq(groups, clean_top(top)[:, None]), _arange(count), count), axis=-1)
    tokens = add(mul(group, GROUP)[:, None], _arange(GROUP))  # [n, GROUP]; past the row if none
    v = take(x, minimum(tokens, x.shape[-1] - 1), axis=-1)
    ids = add(tokens, lay.offset())
    # The raw logits equal to the raw maximum are those whose cleaned value is the
    # cleaned maximum (NaN equals nothing), but in an empty row, all of whose cleaned
    # logits are 0.
    hit = both(both(eq(v, top[:, None]), lt(tokens, x.shape[-1])), lt(ids, lay.vocab))
    first = jnp.min(where(hit, ids, lay.vocab), axis=-1)
    return where(eq(top, -jnp.inf), 0, lay.across(lax.pmin, first))


def top_k_cut(
    x: jax.Array, top: jax.Array, maxima: jax.Array | None, k_max: int, layout: Layout
) -> tuple[jax.Array, jax.Array]:
    """The ``k_max`` first tokens of the ranking of ``clean(x, top)``: values and global ids.

    ``x`` float32 ``[n, local]``, ``top`` and ``maxima`` from :func:`row_scan`
    (``maxima`` needed when :func:`grouped`). Exact, ties by lowest index: the
    first stage keeps the ``k_max`` groups of ``GROUP`` consecutive tokens with
    the largest maxima (every token of the answer lies in one of them, and groups
    tied on their maximum are taken lowest first), the second ranks their members
    in token order. A sharded row merges the shards' own cuts (gathered in shard
    order, so ties still go to the lowest id).
    """
    n, vocab = x.shape
    width = min(k_max, vocab)
    tc = top[:, None]
    if not grouped(k_max, vocab):
        values, indices = lax.top_k(clean(x, tc), width)
    else:
        if maxima is None:
            raise ValueError("a grouped top-k cut needs the group maxima (row_scan)")
        _, chosen = lax.top_k(maxima, width)
        chosen = jnp.sort(chosen, axis=-1)  # members in token order, so ties go to the lowest
        token = (chosen[:, :, None] * GROUP + jnp.arange(GROUP)).reshape(n, width * GROUP)
        picked = clean(take(x, jnp.minimum(token, vocab - 1), axis=-1), tc)
        values, slots = lax.top_k(where(token < vocab, picked, -jnp.inf), width)
        indices = take(token, slots, axis=-1)
    indices = indices.astype(jnp.int32) + layout.offset()
    if layout.axis is not None:
        values = lax.all_gather(values, layout.axis, axis=1, tiled=True)
        indices = lax.all_gather(indices, layout.axis, axis=1, tiled=True)
        values, slots = lax.top_k(values, min(k_max, layout.vocab))
        indices = take(indices, slots, axis=-1)
    return values, indices


Pivot = tuple[jax.Array, jax.Array]


def prefix_sums(w: jax.Array) -> jax.Array:
    """Inclusive prefix sums along the last axis, each added left to right (same bits anywhere)."""
    size, nd = w.shape[-1], w.ndim
    window = (1,) * (nd - 1) + (size,)
    out: jax.Array = lax.reduce_window(
        w, 0.0, lax.add, window, (1,) * nd, [(0, 0)] * (nd - 1) + [(size - 1, 0)]
    )
    return out


def select(i: jax.Array, axis: int, *arrays: jax.Array) -> Any:
    """Entry ``i`` of ``axis`` of each array (one shape), exactly, in one reduction.

    ``i`` is indexed by the leading axes only. Returns an array, or a tuple for
    several.
    """
    i = i.reshape(i.shape + (1,) * (arrays[0].ndim - i.ndim))
    shape = jnp.broadcast_shapes(arrays[0].shape, i.shape)
    axis = axis % len(shape)
    hit = eq(lax.broadcasted_iota(jnp.int32, shape, axis), i)
    out = lax.reduce(
        tuple(where(hit, a, jnp.zeros((), a.dtype)) for a in arrays),
        tuple(jnp.zeros((), a.dtype) for a in arrays),
        lambda x, y: tuple(p + q for p, q in zip(x, y, strict=True)),
        (axis,),
    )
    return out if len(arrays) > 1 else out[0]


def pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse CDF over the last axis of ``w`` ``[..., l]`` (>= 0) for ``target`` ``[...]``.

    Returns the first entry whose prefix sum exceeds the target, and the target
    less the prefix sum before it. A target at or above the total (which rounding
    may reach) picks the first entry that completes it, so the entry has positive
    weight. More than ``FAN`` entries are searched in chunks of ``FAN``: a chunk by
    the chunks' sums, then an entry of it. The prefix sums add left to right, as :func:`fixed_sum`,
    so every program forms the same bits.
    """
    size = w.shape[-1]
    if size > FAN:
        chunks = -(-size // FAN)
        padding = [(0, 0, 0)] * (w.ndim - 1) + [(0, chunks * FAN - size, 0)]
        shaped = lax.pad(w, np.zeros((), w.dtype), padding).reshape(*w.shape[:-1], chunks, FAN)
        c, rest = pick(prefix_sums(shaped)[..., -1], target)
        j, rest = pick(select(c, -2, shaped), rest)
        return add(mul(c, FAN), j), rest
    cum = prefix_sums(w)
    # The prefixes grow: the entry is the count of those not above the target and
    # below the total (which rounding may let the target reach), and the target
    # less the largest of them is the least of the differences.
    t = target[..., None]
    below = both(le(cum, t), lt(cum, cum[..., -1:]))
    count, rest = lax.reduce(
        (lax.convert_element_type(below, jnp.int32), where(below, sub(t, cum), t)),
        (jnp.int32(0), jnp.float32(jnp.inf)),
        lambda a, b: (a[0] + b[0], jnp.minimum(a[1], b[1])),
        (w.ndim - 1,),
    )
    return count, rest


def locate(
    sums: tuple[jax.Array, jax.Array, jax.Array],
    x: jax.Array,
    top: jax.Array,
    m: jax.Array,
    s: jax.Array,
    low: Pivot,
    u: jax.Array,
    layout: Layout,
) -> tuple[jax.Array, jax.Array]:
    """Inverse-CDF draws among the tokens ahead of ``low``, one per uniform.

    ``sums`` are the column sums held here ``[n, blocks, column]``, their chunk
    sums ``[n, blocks, chunks]`` and all block sums ``[n, BLOCKS]``
    (:func:`block_sums`) of those tokens' weights. ``x`` ``[n, local]`` are the
    float32 logits with row maxima ``top`` (see :func:`clean`),
    ``m``, ``s`` ``[n]`` the maximum and inverse temperature, ``low`` a pivot
    ``([n], [n])``, ``u`` ``[n, c]``. The target ``u * total`` picks a block, a
    chunk of its columns, a column, then a token of the column (weights
    recomputed from its logits); the shard holding the block answers. Returns the
    token ids (int32 ``[n, c]``) and their cleaned logits (float32 ``[n, c]``).
    """
    columns, chunks, blocks = sums
    n, held, width = columns.shape
    count = chunks.shape[-1]
    target = mul(u, fixed_sum(blocks)[:, None])
    b, rest = pick(blocks[:, None], target)
    here = sub(b, layout.offset() // layout.block)
    mine = both(ge(here, 0), lt(here, layout.blocks))
    row = _clip(here, 0, held - 1)[..., None]  # [n, c, 1]
    k, rest = pick(take(chunks.reshape(n, 1, -1), add(mul(row, count), _arange(count))), rest)
    col = add(k[..., None], count * _arange(SLICES))  # the chunk's columns (chunk_sums)
    vals = take(columns.reshape(n, 1, -1), add(mul(row, width), minimum(col, width - 1)))
    j, rest = pick(where(lt(col, width), vals, 0.0), rest)
    first = add(add(mul(b, layout.block), k), mul(j, count))  # the column's first token
    tokens = add(first[..., None], layout.column * _arange(SLICES))  # [n, c, SLICES]
    at = _clip(sub(tokens, layout.offset()), 0, x.shape[-1] - 1)
    zc = clean(take(x[:, None], at, axis=-1), top[:, None, None])
    inside = ahead(zc, tokens, low[0][:, None, None], low[1][:, None, None])
    w = weights(zc, m[:, None, None], s[:, None, None])
    slot, _ = pick(where(both(inside, lt(tokens, layout.vocab)), w, 0.0), rest)
    ids, zs = select(slot, -1, tokens, zc)
    if layout.axis is not None:
        ids = layout.across(lax.psum, where(mine, ids, 0))
        zs = layout.across(lax.psum, where(mine, zs, 0.0))
    return ids, zs


def _arange(size: int) -> np.ndarray:
    """``0, 1, ..., size - 1`` as int32 constants."""
    return np.arange(size, dtype=np.int32)


def _clip(a: jax.Array, low: int, high: int) -> jax.Array:
    """``jnp.clip(a, low, high)`` of an int32 array, as one ``lax.clamp``."""
    return lax.clamp(np.int32(low), a, np.int32(high))


def take(a: jax.Array, index: jax.Array, axis: int = -1) -> jax.Array:
    """``jnp.take_along_axis`` of indices known to lie in range (clamped, no masks)."""
    return jnp.take_along_axis(a, index, axis=axis, mode="clip")


def reject(
    keys: jax.Array,
    x: jax.Array,
    top: jax.Array,
    weigh: Any,
    kinds: int,
    held: tuple[jax.Array, ...],
    sums: tuple[jax.Array, jax.Array, jax.Array],
    m: jax.Array,
    s: jax.Array,
    cut: Pivot,
    limit: jax.Array,
    layout: Layout,
) -> jax.Array:
    """Rejection rounds for a top-p part: the first candidate whose mass ahead is below ``limit``.

    ``x`` ``[n, local]`` are the logits with row maxima ``top`` and ``m`` the
    cleaned maxima (see :func:`clean`). ``weigh(xv, index, *slices)`` gives the
    ``kinds`` kinds of weights of a slice of the row (``[n, blocks, column]``
    each, from its logits ``xv``, token ids ``index`` and the slices of the
    stored arrays ``held``): first the weights drawn from (scale ``s``, zero
    outside ``cut``), whose column, chunk and block sums are ``sums``
    (:func:`block_sums`), then, when ``kinds`` is 2, those the nucleus is measured
    with (else with the first). Each round draws its candidates
    (``CANDIDATES`` in the first, one fewer and the value half way between the
    best of them and the known part of the nucleus in a later one), then makes
    one pass, which only compares and adds, for every pivot at once: it gives the
    masses ahead of the pivots and the sums the next candidates are drawn from.
    Returns int32 ``[n]``.
    """
    n, c = x.shape[0], CANDIDATES
    keys = stored(keys)  # formed once, before the loop
    # The state, in few arrays (each is a kernel to compile): the value of ``low``
    # (the tokens from there on are ruled out), ``high`` (values from there on are
    # known to be in the nucleus) and the row maximum; the id of ``low`` and the
    # token (-1 until accepted); the sums the next candidates are drawn from. The
    # row maximum rides along so that XLA forms its flags in the round's kernels,
    # not in kernels of their own.
    floats = lanes(jnp.broadcast_to(cut[0], (n,)), m, top)
    ints = lanes(jnp.broadcast_to(cut[1], (n,)), jnp.full((n,), -1, jnp.int32))
    state0 = varying_like((jnp.int32(0), floats, ints, sums), x, keys, limit)

    def undecided(state: Any) -> jax.Array:
        return jnp.any(lt(state[2][:, 1], 0))

    def round_(state: Any) -> Any:
        r, f, i, sums = state
        low, high, top, ids = (f[:, 0], i[:, 0]), f[:, 1], f[:, 2], i[:, 1]
        m = clean_top(top)
        u = uniforms(keys, add(mul(r, c), _arange(c)))
        cand, zc = locate(sums, x, top, m, s, low, u, layout)  # [n, c]
        # The first round tests c candidates; a later one c - 1 and the middle value
        # (in the last lane), which bounds the rounds.
        later = gt(r, 0)
        earlier = lax.bitwise_not(later)  # the first round
        z_best, x_best, best = first_ranked(zc, cand, earlier)
        mid = add(mul(np.float32(0.5), z_best), mul(np.float32(0.5), high))
        in_last = both(later, np.arange(c) == c - 1)  # the lane of the middle value
        pv = where(in_last, mid[:, None], zc)
        pj = where(in_last, 0, cand)
        # The passes compare the logits as they are (see logit_ahead).
        apart = tuning().pivots_apart
        t4, pv4, pj4 = top[:, None, None, None], pv[:, :, None, None], pj[:, :, None, None]
        lo, hi = logit_bounds(t4, pv4)  # formed once a round, not once per token

        def masked(xv: jax.Array, *rest: jax.Array) -> tuple[jax.Array, ...]:
            *slices, index = rest
            kind = weigh(xv, index, *slices)
            if apart:  # [n, ...] per kind and pivot
                aheads = [
                    logit_ahead(xv, index, t4[:, 0], pv4[:, j], pj4[:, j], (lo[:, j], hi[:, j]))
                    for j in range(c)
                ]
                return tuple(where(a, v, 0.0) for v in kind for a in aheads)
            is_ahead = logit_ahead(xv[:, None], index, t4, pv4, pj4, (lo, hi))
            return tuple(where(is_ahead, v[:, None], 0.0) for v in kind)  # [n, c, ...]

        # One pass over the logits (and the stored weights) for every pivot.
        outputs = kinds * c if apart else kinds
        found = layout_reduce(
            (lax.add,) * outputs,
            (0.0,) * outputs,
            masked,
            layout,
            x,
            *held,
            lead=((),) * outputs if apart else ((c,),) * kinds,
        )
        if apart:
            found = tuple(jnp.stack(found[k * c : (k + 1) * c], 1) for k in range(kinds))
        columns = found[0]
        _, chunks, blocks = sums_of(columns, layout)
        blocks_nucleus = blocks if kinds == 1 else sums_of(found[1], layout)[2]
        # [n, c]: whether the mass ahead is below the bound
        inside = lt(fixed_sum(blocks_nucleus), limit[:, None])
        # The first accepted candidate, in the order they were drawn.
        chosen = ids
        for j in reversed(range(c)):
            accept = inside[:, j] if j < c - 1 else both(inside[:, j], earlier)
            chosen = where(accept, cand[:, j], chosen)
        ids = where(lt(ids, 0), chosen, ids)
        # Rejected rows: rule out from the best candidate on, or, when the middle value
        # is tested and out of the nucleus, from the middle value on.
        mid_in = both(later, inside[:, c - 1])
        mid_out = both(later, lax.bitwise_not(inside[:, c - 1]))
        low = (where(mid_out, mid, z_best), where(mid_out, 0, x_best))
        high = where(mid_in, mid, high)
        chosen_pivot = where(mid_out, c - 1, best)
        sums = (
            pick_column(chosen_pivot, columns),
            pick_column(chosen_pivot, chunks),
            pick_column(chosen_pivot, blocks),
        )
        f = lanes(low[0], high, top)
        i = lanes(low[1], ids)
        return add(r, 1), f, i, sums

    out = lax.while_loop(undecided, round_, state0)
    # Equal on every shard; the maximum only tells JAX so (the loop's carry varies).
    return layout.across(lax.pmax, out[2][:, 1])


def token_ids(a: jax.Array, layout: Layout) -> jax.Array:
    """The global token id of every entry of ``a`` ``[n, local]``."""
    return add(lax.broadcasted_iota(jnp.int32, a.shape, 1), layout.offset())


def pick_column(i: jax.Array, a: jax.Array) -> jax.Array:
    """Column ``i[r]`` of each row of ``a`` ``[n, k, ...]`` (few columns): elementwise selects."""
    last = a.shape[1] - 1
    out = lax.index_in_dim(a, last, axis=1, keepdims=False)
    for j in range(last):
        hit = lax.eq(i, np.int32(j)).reshape(i.shape + (1,) * (out.ndim - 1))
        out = where(hit, lax.index_in_dim(a, j, axis=1, keepdims=False), out)
    return out


def first_ranked(
    values: jax.Array, tokens: jax.Array, last: jax.Array | bool = True
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The candidate of ``[n, c]`` that ranks first (largest value, then lowest id).

    Returns its value, its token id and its position, each ``[n]``, from
    elementwise comparisons along the few candidates; the last candidate takes
    part only where ``last`` (a bool scalar) holds.
    """
    value, token = values[:, 0], tokens[:, 0]
    position = jnp.zeros(token.shape, jnp.int32)
    for j in range(1, values.shape[1]):
        better = ahead(values[:, j], tokens[:, j], value, token)
        if j == values.shape[1] - 1:
            better = both(better, last)
        value = where(better, values[:, j], value)
        token = where(better, tokens[:, j], token)
        position = where(better, j, position)
    return value, token, position
