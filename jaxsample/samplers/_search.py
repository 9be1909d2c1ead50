"""Exact draws by inverse CDF over the summation layout, and the top-k cut.

:func:`locate` draws a token from column and block sums (a block, then a column,
then a token; :func:`pick` searches one level); :func:`reject` runs the
rejection rounds of a top-p part; :func:`top_k_cut` finds the ``k`` first tokens
of the ranking without a sort of the row.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._random import uniforms
from jaxsample.samplers._reference import (
    BLOCKS,
    SLICES,
    Layout,
    ahead,
    block_sums,
    clean,
    fixed_sum,
    varying_like,
    weights,
)

__all__ = [
    "CANDIDATES",
    "FAN",
    "GROUP",
    "Pivot",
    "first_ranked",
    "locate",
    "pick",
    "prefix_sums",
    "reject",
    "select",
    "take",
    "token_ids",
    "top_k_cut",
]

#: Candidates drawn per rejection round.
CANDIDATES = 3


#: Entries per level of the inverse-CDF search.
FAN = 16
#: Tokens per group in the first top-k stage.
GROUP = 16


def top_k_cut(
    x: jax.Array, top: jax.Array, k_max: int, layout: Layout
) -> tuple[jax.Array, jax.Array]:
    """The ``k_max`` first tokens of the ranking of ``clean(x, top)``: values and global ids.

    ``x`` float32 ``[n, local]``, ``top`` its :func:`row_top`. Exact, ties by lowest
    index: the first stage keeps the ``k_max`` groups of ``GROUP`` consecutive
    tokens with the largest maxima (every token of the answer lies in one of them,
    and groups tied on their maximum are taken lowest first), the second ranks
    their members in token order. When every row is clean the group maxima are
    read from ``x`` itself, with no cleaned copy. A sharded row merges the shards'
    own cuts (gathered in shard order, so ties still go to the lowest id).
    """
    n, vocab = x.shape
    width = min(k_max, vocab)
    tc = top[:, None]
    if vocab <= 4 * GROUP * width:
        values, indices = lax.top_k(clean(x, tc), width)
    else:
        window = ((1, GROUP), (1, GROUP), ((0, 0), (0, -vocab % GROUP)))

        def group_max(v: jax.Array) -> jax.Array:
            out: jax.Array = lax.reduce_window(v, -jnp.inf, lax.max, *window) + jnp.float32(0.0)
            return out

        maxima = lax.cond(
            jnp.all(jnp.isfinite(top)) & ~jnp.any(jnp.isnan(jnp.max(x, axis=-1))),
            lambda: group_max(x),
            lambda: group_max(clean(x, tc)),
        )
        _, chosen = lax.top_k(maxima, width)
        chosen = jnp.sort(chosen, axis=-1)  # members in token order, so ties go to the lowest
        token = (chosen[:, :, None] * GROUP + jnp.arange(GROUP)).reshape(n, width * GROUP)
        picked = clean(take(x, jnp.minimum(token, vocab - 1), axis=-1), tc)
        values, slots = lax.top_k(jnp.where(token < vocab, picked, -jnp.inf), width)
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
    hit = lax.broadcasted_iota(jnp.int32, shape, axis) == i
    out = lax.reduce(
        tuple(jnp.where(hit, a, jnp.zeros((), a.dtype)) for a in arrays),
        tuple(jnp.zeros((), a.dtype) for a in arrays),
        lambda x, y: tuple(p + q for p, q in zip(x, y, strict=True)),
        (axis,),
    )
    return out if len(arrays) > 1 else out[0]


def pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse CDF over the last axis of ``w`` ``[..., l]`` (>= 0) for ``target`` ``[...]``.

    Returns the first entry whose prefix sum exceeds the target, and the target
    less the prefix sum before it. The target is first lowered below the total
    (which rounding may reach), so the entry has positive weight. More than
    ``FAN`` entries are searched in chunks of ``FAN``: a chunk by the chunks' sums,
    then an entry of it. The prefix sums add left to right, as :func:`fixed_sum`,
    so every program forms the same bits.
    """
    size = w.shape[-1]
    if size > FAN:
        chunks = -(-size // FAN)
        shaped = jnp.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, chunks * FAN - size)])
        shaped = shaped.reshape(*w.shape[:-1], chunks, FAN)
        c, rest = pick(prefix_sums(shaped)[..., -1], target)
        j, rest = pick(select(c, -2, shaped), rest)
        return c * FAN + j, rest
    cum = prefix_sums(w)
    t = jnp.minimum(target, jnp.nextafter(cum[..., -1], jnp.float32(0.0)))[..., None]
    # The prefixes grow: the entry is the count of those not above the target, and
    # the target less the largest of them is the least of the differences.
    below = cum <= t
    count, rest = lax.reduce(
        (below.astype(jnp.int32), jnp.where(below, target[..., None] - cum, target[..., None])),
        (jnp.int32(0), jnp.float32(jnp.inf)),
        lambda a, b: (a[0] + b[0], jnp.minimum(a[1], b[1])),
        (w.ndim - 1,),
    )
    return jnp.minimum(count, size - 1), rest


def locate(
    columns: jax.Array,
    blocks: jax.Array,
    x: jax.Array,
    top: jax.Array,
    m: jax.Array,
    s: jax.Array,
    low: Pivot,
    u: jax.Array,
    layout: Layout,
) -> tuple[jax.Array, jax.Array]:
    """Inverse-CDF draws among the tokens ahead of ``low``, one per uniform.

    ``columns`` ``[n, blocks, column]`` and ``blocks`` ``[n, BLOCKS]`` are the column
    sums held here and all block sums (:func:`block_sums`) of those tokens'
    weights, ``x`` ``[n, local]`` the float32 logits with row maxima ``top`` (see
    :func:`clean`), ``m``, ``s`` ``[n]`` the maximum and inverse temperature,
    ``low`` a pivot ``([n], [n])``, ``u`` ``[n, c]``. The target ``u * total`` picks
    a block, then a column of it, then a token of the column (weights recomputed
    from its logits); the shard holding the block answers. Returns the token ids
    (int32 ``[n, c]``) and their cleaned logits (float32 ``[n, c]``).
    """
    target = u * fixed_sum(blocks)[:, None]
    b, rest = pick(jnp.broadcast_to(blocks[:, None], (*u.shape, BLOCKS)), target)
    here = b - layout.offset() // layout.block
    mine = (here >= 0) & (here < layout.blocks)
    j, rest = pick(select(here, 2, columns[:, None]), rest)
    g = jnp.arange(SLICES, dtype=jnp.int32) * layout.column
    tokens = (b * layout.block + j)[..., None] + g  # [n, c, SLICES]
    at = jnp.clip(tokens - layout.offset(), 0, x.shape[-1] - 1)
    zc = clean(take(x[:, None], at, axis=-1), top[:, None, None])
    inside = ahead(zc, tokens, low[0][:, None, None], low[1][:, None, None])
    wc = jnp.where(
        inside & (tokens < layout.vocab), weights(zc, m[:, None, None], s[:, None, None]), 0.0
    )
    row, _ = pick(wc, rest)
    ids, zs = select(row, -1, tokens, zc)
    if layout.axis is not None:
        ids = layout.across(lax.psum, jnp.where(mine, ids, 0))
        zs = layout.across(lax.psum, jnp.where(mine, zs, 0.0))
    return ids, zs


def take(a: jax.Array, index: jax.Array, axis: int = -1) -> jax.Array:
    """``jnp.take_along_axis`` of indices known to lie in range (clamped, no masks)."""
    return jnp.take_along_axis(a, index, axis=axis, mode="clip")


def reject(
    keys: jax.Array,
    x: jax.Array,
    top: jax.Array,
    w: jax.Array,
    w_nucleus: jax.Array | None,
    sums: tuple[jax.Array, jax.Array],
    m: jax.Array,
    s: jax.Array,
    cut: Pivot,
    limit: jax.Array,
    layout: Layout,
) -> jax.Array:
    """Rejection rounds for a top-p part: the first candidate whose mass ahead is below ``limit``.

    ``x`` ``[n, local]`` are the logits with row maxima ``top`` (cleaned inside each
    pass, see :func:`clean`) and ``w`` the weights drawn from (scale ``s``, zero
    outside ``cut``); the nucleus is measured with the weights ``w_nucleus``
    (``None``: ``w``); ``sums`` are the column and block sums of ``w``. A round's
    pass only cleans, compares and adds, for every pivot at once.
    Returns int32 ``[n]``.
    """
    n = x.shape[0]
    state0 = (jnp.int32(0), jnp.zeros((n,), bool), jnp.zeros((n,), jnp.int32), cut, m, sums)
    state0 = varying_like(state0, x, keys, limit, state0)

    def undecided(state: Any) -> jax.Array:
        return ~jnp.all(state[1])

    def round_(state: Any) -> Any:
        r, done, ids, low, high, sums = state
        counters = r * CANDIDATES + jnp.arange(CANDIDATES, dtype=jnp.int32)
        cand, zc = locate(
            sums[0], sums[1], x, top, m, s, low, uniforms(keys, counters), layout
        )  # [n, c]
        z_best, x_best, best = first_ranked(zc, cand)
        mid = jnp.float32(0.5) * z_best + jnp.float32(0.5) * high
        # The pivots [n, c + 1, 1, 1]: the candidates, then the middle value (id 0).
        slot = lax.broadcasted_iota(jnp.int32, (n, CANDIDATES + 1, 1, 1), 1)
        pv = jnp.where(
            slot < CANDIDATES,
            jnp.pad(zc, [(0, 0), (0, 1)])[:, :, None, None],
            mid[:, None, None, None],
        )
        pj = jnp.pad(cand, [(0, 0), (0, 1)])[:, :, None, None]

        def masked(xv: jax.Array, wv: jax.Array, index: jax.Array) -> jax.Array:
            zv = clean(xv, top[:, None, None])[:, None]
            return jnp.where(ahead(zv, index, pv, pj), wv[:, None], 0.0)  # [n, c + 1, ...]

        new_columns, new_blocks = block_sums(masked, layout, x, w)
        nucleus_blocks = (
            new_blocks if w_nucleus is None else block_sums(masked, layout, x, w_nucleus)[1]
        )
        ahead_mass = fixed_sum(nucleus_blocks)
        accept = ahead_mass[:, :CANDIDATES] < limit[:, None]
        # The first accepted candidate: the least position among them (C: none).
        first, chosen = lax.reduce(
            (jnp.where(accept, lax.broadcasted_iota(jnp.int32, cand.shape, 1), CANDIDATES), cand),
            (jnp.int32(CANDIDATES), jnp.int32(0)),
            lambda a, b: (
                jnp.minimum(a[0], b[0]),
                jnp.where(a[0] <= b[0], a[1], b[1]),
            ),
            (1,),
        )
        took = (first < CANDIDATES) & ~done
        ids = jnp.where(took, chosen, ids)
        # Rejected rows: rule out from the best candidate on, or from the middle value on.
        mid_in = ahead_mass[:, CANDIDATES] < limit
        low = (jnp.where(mid_in, z_best, mid), jnp.where(mid_in, x_best, 0))
        high = jnp.where(mid_in, mid, high)
        pick = jnp.where(mid_in, best, CANDIDATES)
        sums = (select(pick, 1, new_columns), select(pick, 1, new_blocks))
        return r + 1, done | took, ids, low, high, sums

    out: jax.Array = lax.while_loop(undecided, round_, state0)[2]
    # Equal on every shard; the maximum only tells JAX so (the loop's carry varies).
    return layout.across(lax.pmax, out)


def token_ids(a: jax.Array, layout: Layout) -> jax.Array:
    """The global token id of every entry of ``a`` ``[n, local]``."""
    return lax.broadcasted_iota(jnp.int32, a.shape, 1) + layout.offset()


def first_ranked(values: jax.Array, tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The candidate of ``[n, c]`` that ranks first (largest value, then lowest id).

    Returns its value, its token id and its position, each ``[n]``, from one
    reduction.
    """

    def better(a: Any, b: Any) -> Any:
        first = ahead(a[0], a[1], b[0], b[1])
        return tuple(jnp.where(first, p, q) for p, q in zip(a, b, strict=True))

    out: tuple[jax.Array, jax.Array, jax.Array] = lax.reduce(
        (values, tokens, lax.broadcasted_iota(jnp.int32, values.shape, 1)),
        (jnp.float32(-jnp.inf), jnp.int32(np.iinfo(np.int32).max), jnp.int32(0)),
        better,
        (1,),
    )
    return out
