"""Drawing tokens, and the exact distribution a strategy samples from.

:func:`probs` is the definition of :mod:`jaxsample.samplers._reference`.
:func:`sample` draws from it with one algorithm for every built-in strategy and
chain, whose cost does not depend on the distribution:

1. one pass for the row maximum; the exact cuts of top-k parts from two small
   ``lax.top_k`` stages (over maxima of 16-token groups, then inside the chosen
   groups);
2. one pass that forms the weights ``w`` of the tokens left by those cuts and
   their column and block sums (the fixed :class:`~._reference.Layout`: 16 blocks
   of consecutive tokens, 16 slices per block);
3. inverse-CDF draws: a uniform picks a block from the block sums, a column of
   it from its column sums, then a token of that column;
4. for a top-p part, rejection with a rising pivot (after FlashInfer's sort-free
   sampling): several candidates are drawn from the tokens still possible and the
   first whose mass ahead is below the nucleus bound is returned; if none is,
   the tokens from the best candidate on are ruled out, or, when a value half way
   up is already out of the nucleus, everything from that value on. One pass per
   round gives the masses ahead of every pivot and the column sums for the next
   round. Each rejected round rules out at least one token and at least half of
   the range of logits between the candidate and the known part of the nucleus,
   and the accepted token follows the definition exactly: every round proposes
   from a superset of the nucleus in proportion to the weights.

A strategy of another kind is drawn by the same inverse CDF over its log-weights.
Strategies with the same distribution draw the same token for the same key:
every draw starts with the same uniform, sums and search.

The same algorithm runs on a vocabulary split over the devices of a mesh axis
(``vocab_axis``): each device holds whole blocks, so it forms the same column
and block sums; the devices exchange the block sums, the maxima and the top-k
candidates, and the device holding a chosen block answers for it. The tokens
are those of the unsharded call, bit for bit.

References:
    Ye, Chen, Lai, Lin, Zheng, Shao, Hou, Jin, Zuo, Yin, Chen, Ceze. FlashInfer:
    Efficient and Customizable Attention Engine for LLM Inference Serving.
    arXiv:2501.01005 (2025); and the FlashInfer blog post "Sorting-Free GPU
    Kernels for LLM Sampling" (2025), whose dual-pivot rejection this follows.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample._checks import check_key as _check_key
from jaxsample._checks import check_strategy as _check_strategy
from jaxsample.samplers._random import row_keys, uniforms
from jaxsample.samplers._reference import (
    BLOCKS,
    SLICES,
    VOCAB_MULTIPLE,
    Layout,
    ahead,
    block_sums,
    clean,
    clean_top,
    first_max_index,
    fixed_sum,
    inverse_temperature,
    layout_reduce,
    nucleus_limit,
    per_row,
    row_top,
    sanitise,
    varying_like,
    weights,
    whole,
)
from jaxsample.samplers._strategies import GREEDY_TAU, Greedy, Strategy, TopK, TopP, prefix_parts

__all__ = ["probs", "sample", "valid_rows"]

#: Candidates drawn per rejection round.
CANDIDATES = 3
#: Entries per level of the inverse-CDF search.
FAN = 16
#: Tokens per group in the first top-k stage.
GROUP = 16


def check_logits(logits: jax.Array) -> jax.Array:
    """Validate the shape and dtype of ``logits``; the float32 cast happens under ``jit``."""
    x = logits if isinstance(logits, jax.Array) else jnp.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    if np.dtype(x.dtype).kind not in "fiu" and not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"logits must be real numbers, got dtype {x.dtype}")
    return x


def layout_of(local: int, vocab_axis: str | None, vocab_size: int | None) -> Layout:
    """The :class:`Layout` of a row whose ``local`` tokens are held here, checked.

    Raises:
        ValueError: for a ``vocab_size`` outside the row, a shard count that does not
            divide ``BLOCKS``, or a sharded width that is not the vocabulary padded
            to the next multiple of ``VOCAB_MULTIPLE``.
    """
    if vocab_size is not None and (not isinstance(vocab_size, int) or vocab_size < 1):
        raise ValueError(f"vocab_size must be a positive int, got {vocab_size!r}")
    if vocab_axis is None:
        if vocab_size is not None and vocab_size > local:
            raise ValueError(f"vocab_size={vocab_size} exceeds the {local} logits per row")
        return whole(local if vocab_size is None else vocab_size)
    try:
        shards = int(lax.axis_size(vocab_axis))
    except NameError as err:
        raise ValueError(
            f"vocab_axis={vocab_axis!r} is not a mesh axis here: call inside shard_map "
            "(or use jaxsample.sharding.sample)"
        ) from err
    width = local * shards
    if BLOCKS % shards:
        raise ValueError(
            f"the vocabulary may span at most {BLOCKS} shards dividing {BLOCKS}, "
            f"got {shards} shards on axis {vocab_axis!r}"
        )
    vocab = width if vocab_size is None else vocab_size
    if width % VOCAB_MULTIPLE or not width - VOCAB_MULTIPLE < vocab <= width:
        raise ValueError(
            f"sharded logits must be the vocabulary ({vocab} tokens) padded to the next "
            f"multiple of {VOCAB_MULTIPLE} ({-(-vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE}), "
            f"got {shards} shards of {local}; pad with -inf (jaxsample.sharding.pad_vocab) "
            "and pass vocab_size"
        )
    return Layout(vocab, local, vocab_axis, shards)


def _prepare(
    logits: jax.Array, vocab_axis: str | None, vocab_size: int | None
) -> tuple[jax.Array, Layout]:
    """Checked logits (cut to ``vocab_size`` when unsharded) and their layout."""
    x = check_logits(logits)
    layout = layout_of(x.shape[-1], vocab_axis, vocab_size)
    if vocab_axis is None and layout.vocab < x.shape[-1]:
        x = x[..., : layout.vocab]
    return x, layout


def _rows(x: jax.Array, layout: Layout) -> jax.Array:
    """Float32 ``[n, local]`` rows; absent tokens of a sharded row set to ``-inf``."""
    rows = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    if layout.axis is not None and layout.vocab < layout.width:
        index = lax.broadcasted_iota(jnp.int32, rows.shape, 1) + layout.offset()
        rows = jnp.where(index < layout.vocab, rows, -jnp.inf)
    return rows


def _whole_row(rows: jax.Array, layout: Layout) -> jax.Array:
    """The unsharded rows ``[n, vocab]`` (gathered from every shard when sharded)."""
    if layout.axis is None:
        return rows
    gathered: jax.Array = lax.all_gather(rows, layout.axis, axis=1, tiled=True)
    return gathered[:, : layout.vocab]


def valid_rows(
    logits: jax.Array, *, vocab_axis: str | None = None, vocab_size: int | None = None
) -> jax.Array:
    """Report the rows that :func:`sample` can draw from as given.

    A row is valid iff it holds no NaN and at least one logit that is not
    ``-inf``. Invalid rows are still sampled (see :func:`sample`); use this mask to
    detect and discard them.

    Args:
        logits: ``[..., V]`` real logits, any float dtype (a vocabulary shard with
            ``vocab_axis``, see :func:`sample`).
        vocab_axis: as in :func:`sample`.
        vocab_size: as in :func:`sample`.

    Returns:
        bool ``[...]``.

    Raises:
        ValueError: if ``logits`` is not ``[..., V]`` with ``V >= 1`` or not real, or
            for a bad sharding (see :func:`sample`).
    """
    x, layout = _prepare(logits, vocab_axis, vocab_size)
    valid: jax.Array = _valid_rows(x, layout)
    return valid


@functools.partial(jax.jit, static_argnames=("layout",))
def _valid_rows(x: jax.Array, layout: Layout) -> jax.Array:
    rows = _rows(x, layout)  # padding is -inf: neither NaN nor usable
    flags = jnp.stack([jnp.any(jnp.isnan(rows), -1), jnp.any(rows > -jnp.inf, -1)], -1)
    if layout.axis is not None:
        flags = layout.across(lax.pmax, flags.astype(jnp.int32)) > 0
    return (~flags[:, 0] & flags[:, 1]).reshape(x.shape[:-1])


def probs(
    logits: jax.Array,
    strategy: Strategy,
    *,
    vocab_axis: str | None = None,
    vocab_size: int | None = None,
) -> jax.Array:
    r"""The exact distribution that :func:`sample` draws from.

    :math:`\pi = \mathrm{softmax}(s(z))`, where :math:`s` is the strategy's
    log-weight map (for the built-in strategies, the definition in
    :mod:`jaxsample.samplers._reference`) applied to the sanitised float32 logits.
    Computed with a sort of each row, for clarity, not speed; with ``vocab_axis``
    the row is gathered from its shards first.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32), or a
            vocabulary shard (see :func:`sample`).
        strategy: a :class:`Strategy`; its parameters broadcast against ``[...]``.
        vocab_axis: as in :func:`sample`.
        vocab_size: as in :func:`sample`.

    Returns:
        float32 ``[..., V]`` (the shard's part with ``vocab_axis``; 0 at padding;
        ``[..., vocab_size]`` for unsharded logits cut by ``vocab_size``): rows sum
        to 1 (to rounding) and are exactly 0 where a token was removed. Rows with
        bad logits follow the rules of :func:`sample`.

    Raises:
        ValueError: for a bad logits shape or dtype, a non-strategy, or a bad sharding.
    """
    _check_strategy(strategy)
    x, layout = _prepare(logits, vocab_axis, vocab_size)
    out: jax.Array = _probs(x, strategy, layout)
    return out


@functools.partial(jax.jit, static_argnames=("layout",))
def _probs(x: jax.Array, strategy: Strategy, layout: Layout) -> jax.Array:
    rows = _whole_row(_rows(x, layout), layout)
    z, _ = sanitise(rows)
    q = jax.nn.softmax(strategy.log_weights(z.reshape(*x.shape[:-1], -1)), axis=-1)
    if layout.axis is None:
        return q
    q = jnp.pad(q, [(0, 0)] * (q.ndim - 1) + [(0, layout.width - layout.vocab)])
    return lax.dynamic_slice_in_dim(q, layout.offset(), layout.local, axis=-1)


def sample(
    key: jax.Array,
    logits: jax.Array,
    strategy: Strategy,
    *,
    vocab_axis: str | None = None,
    vocab_size: int | None = None,
) -> jax.Array:
    """Draw one token id per row of ``logits`` from ``probs(logits, strategy)``.

    The draw is exact: a token of probability 0 is never returned, and the
    frequencies follow :func:`probs`. The algorithm is in this module's docstring;
    its cost does not depend on the distribution (a top-p part adds a few passes
    over the row, about two on most batches).

    Randomness: a single ``key`` with a batch ``[...]`` of rows gives row ``r`` (in
    row-major order) the key ``jax.random.fold_in(key, r)``; an array of keys of
    shape ``[...]`` gives each row its own key; with logits ``[V]`` the key is used
    as is. A row's token depends only on its key, logits and parameters, never on
    the other rows; strategies with the same distribution (``TopP(1, tau)``,
    ``TopK(0, tau)``, ``TopK(V, tau)``, ``Temperature(tau)``; ``Greedy()``,
    ``TopK(1)``, ``Temperature(0)``) draw the same token for the same key.

    Bad logits never crash and always give an id in ``[0, V)``; other rows are
    unaffected:

    * NaN entries are removed (treated as ``-inf``) and the row is reported invalid
      by :func:`valid_rows`.
    * ``+inf`` entries: the row samples uniformly among its ``+inf`` entries.
    * A row with no usable logit (all ``-inf`` or NaN) samples uniformly over all
      ``V`` tokens and is reported invalid by :func:`valid_rows`.
    * Huge magnitudes are handled by subtracting each row's maximum first.

    Vocabulary sharding: inside ``shard_map``, ``logits`` may be this device's
    contiguous piece ``[..., W / n]`` of rows of ``W`` logits split over the ``n``
    devices of mesh axis ``vocab_axis`` (``n`` dividing ``BLOCKS`` = 16), where
    ``W`` is the vocabulary of ``vocab_size`` tokens padded to the next multiple of
    ``VOCAB_MULTIPLE`` = 256 (the padding is ignored, whatever it holds). The key
    must be the same on every shard; every shard returns the same global ids,
    bit for bit those of the unsharded call on the first ``vocab_size`` logits,
    and exchanges only per-row scalars and block sums (``16`` per row and pass)
    for the built-in strategies; other strategies gather the row.

    Args:
        key: a ``jax.random.key`` (or legacy uint32 ``PRNGKey``), or one per row with
            shape ``logits.shape[:-1]``.
        logits: ``[..., V]`` real logits, any float dtype (bf16, fp16, fp32 ...).
        strategy: a :class:`Strategy`; parameter arrays broadcast against ``[...]``.
        vocab_axis: the mesh axis the vocabulary is split over (inside
            ``shard_map``), or ``None``.
        vocab_size: the number of real tokens; the logits after them are padding
            (default: all of them).

    Returns:
        int32 ``[...]`` token ids in ``[0, vocab_size)``.

    Raises:
        ValueError: for a bad logits shape or dtype, a key of the wrong shape or type,
            a non-strategy, or a sharding that breaks the rules above.
    """
    _check_strategy(strategy)
    x, layout = _prepare(logits, vocab_axis, vocab_size)
    ids: jax.Array = _sample(_check_key(key, x.shape[:-1]), x, strategy, layout)
    return ids


@functools.partial(jax.jit, static_argnames=("layout", "general"))
def _sample(
    key: jax.Array, x: jax.Array, strategy: Strategy, layout: Layout, general: bool = False
) -> jax.Array:
    """:func:`sample` of checked inputs; ``general`` forces the log-weight route (tests)."""
    lead = x.shape[:-1]
    rows = _rows(x, layout)
    top = row_top(rows, layout.axis)
    parts = None if general else prefix_parts(strategy)
    if parts is not None and any(isinstance(part, Greedy) for part in parts):
        return first_max_index(rows, top, layout).reshape(lead)  # no randomness needed
    keys = row_keys(key, lead)
    if parts is None or sum(isinstance(part, TopP) for part in parts) > 1:
        # Another kind of strategy, or a nucleus of a nucleus: the inverse CDF
        # over the log-weights of the definition, on the whole row.
        rows, lay = _whole_row(rows, layout), whole(layout.vocab)
        lw = strategy.log_weights(clean(rows, top[:, None]).reshape(*lead, -1)).reshape(rows.shape)
        m = jnp.max(lw, axis=-1)
        one = jnp.ones(m.shape, jnp.float32)
        everything = (jnp.full(m.shape, -jnp.inf), jnp.full(m.shape, lay.vocab, jnp.int32))
        columns, blocks = block_sums(
            lambda v, _: weights(v, m[:, None, None], one[:, None, None]), lay, lw
        )
        u = uniforms(keys, jnp.zeros((1,), jnp.int32))
        ids = _locate(columns, blocks, lw, m, m, one, everything, u, lay)[0][:, 0]
        return layout.across(lax.pmax, ids).reshape(lead)  # equal on every shard
    return _draw_prefix(rows, top, parts, keys, lead, layout).reshape(lead)


def _top_k_cut(
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
        picked = clean(_take(x, jnp.minimum(token, vocab - 1), axis=-1), tc)
        values, slots = lax.top_k(jnp.where(token < vocab, picked, -jnp.inf), width)
        indices = _take(token, slots, axis=-1)
    indices = indices.astype(jnp.int32) + layout.offset()
    if layout.axis is not None:
        values = lax.all_gather(values, layout.axis, axis=1, tiled=True)
        indices = lax.all_gather(indices, layout.axis, axis=1, tiled=True)
        values, slots = lax.top_k(values, min(k_max, layout.vocab))
        indices = _take(indices, slots, axis=-1)
    return values, indices


Pivot = tuple[jax.Array, jax.Array]


def _scales(tau: Any) -> bool:
    """Whether a ``tau`` leaf may change the scale (not the constant 1, for which it is exact)."""
    return not (isinstance(tau, int | float) and not isinstance(tau, bool) and tau == 1.0)


def _earlier(a: Pivot, b: Pivot) -> Pivot:
    """The pivot of the two that ranks first (its prefix is the smaller)."""
    first = ahead(a[0], a[1], b[0], b[1])
    return jnp.where(first, a[0], b[0]), jnp.where(first, a[1], b[1])


def _prefix(w: jax.Array) -> jax.Array:
    """Inclusive prefix sums along the last axis, each added left to right (same bits anywhere)."""
    size, nd = w.shape[-1], w.ndim
    window = (1,) * (nd - 1) + (size,)
    out: jax.Array = lax.reduce_window(
        w, 0.0, lax.add, window, (1,) * nd, [(0, 0)] * (nd - 1) + [(size - 1, 0)]
    )
    return out


def _select(i: jax.Array, axis: int, *arrays: jax.Array) -> Any:
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


def _pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
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
        c, rest = _pick(_prefix(shaped)[..., -1], target)
        j, rest = _pick(_select(c, -2, shaped), rest)
        return c * FAN + j, rest
    cum = _prefix(w)
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


def _locate(
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
    b, rest = _pick(jnp.broadcast_to(blocks[:, None], (*u.shape, BLOCKS)), target)
    here = b - layout.offset() // layout.block
    mine = (here >= 0) & (here < layout.blocks)
    j, rest = _pick(_select(here, 2, columns[:, None]), rest)
    g = jnp.arange(SLICES, dtype=jnp.int32) * layout.column
    tokens = (b * layout.block + j)[..., None] + g  # [n, c, SLICES]
    at = jnp.clip(tokens - layout.offset(), 0, x.shape[-1] - 1)
    zc = clean(_take(x[:, None], at, axis=-1), top[:, None, None])
    inside = ahead(zc, tokens, low[0][:, None, None], low[1][:, None, None])
    wc = jnp.where(
        inside & (tokens < layout.vocab), weights(zc, m[:, None, None], s[:, None, None]), 0.0
    )
    row, _ = _pick(wc, rest)
    ids, zs = _select(row, -1, tokens, zc)
    if layout.axis is not None:
        ids = layout.across(lax.psum, jnp.where(mine, ids, 0))
        zs = layout.across(lax.psum, jnp.where(mine, zs, 0.0))
    return ids, zs


def _draw_prefix(
    x: jax.Array,
    top: jax.Array,
    parts: tuple[Strategy, ...],
    keys: jax.Array,
    lead: tuple[int, ...],
    layout: Layout,
) -> jax.Array:
    """Draw for built-in parts (at most one top-p) on float32 rows ``x`` with maxima ``top``."""
    n = x.shape[0]
    vocab = layout.vocab
    m = clean_top(top)
    t3 = top[:, None, None]
    s = jnp.ones((n,), jnp.float32)
    greedy = jnp.zeros((n,), bool)
    may_greedy = False
    everything: Pivot = (jnp.full((n,), -jnp.inf), jnp.full((n,), vocab, jnp.int32))
    cut = everything
    nucleus: tuple[jax.Array, jax.Array, Pivot] | None = None
    for part in parts:
        if _scales(part.tau):  # type: ignore[attr-defined]
            tau = per_row(part.tau, lead, jnp.float32)  # type: ignore[attr-defined]
            greedy = greedy | ~(tau > GREEDY_TAU)
            may_greedy = True
            s = s * inverse_temperature(tau)
        if isinstance(part, TopK):
            k = per_row(part.k, lead, jnp.int32)
            values, indices = _top_k_cut(
                x, top, vocab if part.k_max is None else part.k_max, layout
            )
            slot = jnp.clip(k, 1, values.shape[-1]) - 1
            kth, after = _select(slot, -1, values, indices)
            after = after + 1
            on = (k > 0) & (k < vocab)
            cut = _earlier(cut, (jnp.where(on, kth, -jnp.inf), jnp.where(on, after, vocab)))
        elif isinstance(part, TopP):
            nucleus = (per_row(part.p, lead, jnp.float32), s, cut)

    def weight_of(scale: jax.Array, pivot: Pivot) -> Any:
        def fn(v: jax.Array, index: jax.Array) -> tuple[jax.Array, jax.Array]:
            z = clean(v, t3)
            w = weights(z, m[:, None, None], scale[:, None, None])
            if pivot is not everything:  # static: a cut to apply
                p0, p1 = pivot[0][:, None, None], pivot[1][:, None, None]
                w = jnp.where(ahead(z, index, p0, p1), w, 0.0)
            return w, z

        return fn

    def sums(weight: Any, *arrays: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        """Column and block sums of ``weight``'s first output; the first maximum, if needed."""
        if not may_greedy:
            columns = layout_reduce(jnp.add, 0.0, lambda *a: weight(*a)[0], layout, *arrays)
            return (columns, layout.gather(fixed_sum(columns))), ids0

        def both(*a: jax.Array) -> tuple[jax.Array, jax.Array]:
            w, z = weight(*a)
            return w, jnp.where(z == m[:, None, None], a[-1], vocab)

        columns, lowest = layout_reduce((jnp.add, jnp.minimum), (0.0, vocab), both, layout, *arrays)
        first = layout.across(lax.pmin, jnp.min(lowest, axis=(-2, -1)))
        return (columns, layout.gather(fixed_sum(columns))), first

    ids0 = jnp.zeros((n,), jnp.int32)
    if nucleus is None:
        (columns, blocks), first = sums(weight_of(s, cut), x)
        u = uniforms(keys, jnp.zeros((1,), jnp.int32))
        ids = _locate(columns, blocks, x, top, m, s, cut, u, layout)[0][:, 0]
    else:
        p, s_p, before = nucleus
        # The cleaned logits and the weights, formed once in the layout's width.
        z = _aligned(clean(x, top[:, None]), layout)
        w = weights(z, m[:, None], s[:, None])
        if cut is not everything:
            w = jnp.where(ahead(z, _token_ids(z, layout), cut[0][:, None], cut[1][:, None]), w, 0.0)
        block, first = sums(lambda wv, zv, _: (wv, zv), w, z)
        if s_p is s and before is cut:
            total = fixed_sum(block[1])
        else:
            total = fixed_sum(sums(weight_of(s_p, before), x)[0][1])
        w_nucleus = None if s_p is s else weights(z, m[:, None], s_p[:, None])
        ids = _reject(
            keys, x, top, z, w, w_nucleus, block, m, s, cut, nucleus_limit(p, total), layout
        )
    return jnp.where(greedy, first, ids) if may_greedy else ids


def _reject(
    keys: jax.Array,
    x: jax.Array,
    top: jax.Array,
    z: jax.Array,
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

    ``x`` ``[n, local]`` are the logits with row maxima ``top``, ``z`` the cleaned
    logits and ``w`` the weights drawn from (scale ``s``, zero outside ``cut``),
    both padded to the layout's width; the nucleus is measured with the weights
    ``w_nucleus`` (``None``: ``w``); ``sums`` are the column and block sums of
    ``w``. A round's pass only compares and adds, for every pivot at once.
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
        cand, zc = _locate(
            sums[0], sums[1], x, top, m, s, low, uniforms(keys, counters), layout
        )  # [n, c]
        z_best, x_best, best = _first_ranked(zc, cand)
        mid = jnp.float32(0.5) * z_best + jnp.float32(0.5) * high
        pv = jnp.concatenate([zc, mid[:, None]], -1)[:, :, None, None]  # [n, c + 1, 1, 1] pivots
        pj = jnp.concatenate([cand, jnp.zeros((n, 1), jnp.int32)], -1)[:, :, None, None]

        def masked(zv: jax.Array, wv: jax.Array, index: jax.Array) -> jax.Array:
            return jnp.where(ahead(zv[:, None], index, pv, pj), wv[:, None], 0.0)  # [n, c + 1, ...]

        new_columns, new_blocks = block_sums(masked, layout, z, w)
        nucleus_blocks = (
            new_blocks if w_nucleus is None else block_sums(masked, layout, z, w_nucleus)[1]
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
        sums = (_select(pick, 1, new_columns), _select(pick, 1, new_blocks))
        return r + 1, done | took, ids, low, high, sums

    out: jax.Array = lax.while_loop(undecided, round_, state0)[2]
    # Equal on every shard; the maximum only tells JAX so (the loop's carry varies).
    return layout.across(lax.pmax, out)


def _take(a: jax.Array, index: jax.Array, axis: int = -1) -> jax.Array:
    """``jnp.take_along_axis`` of indices known to lie in range (clamped, no masks)."""
    return jnp.take_along_axis(a, index, axis=axis, mode="clip")


def _aligned(a: jax.Array, layout: Layout) -> jax.Array:
    """``a`` ``[n, local]`` padded with ``-inf`` to the blocks it holds (absent tokens)."""
    size = layout.blocks * layout.block
    if a.shape[-1] == size:
        return a
    return jnp.pad(a, [(0, 0), (0, size - a.shape[-1])], constant_values=-jnp.inf)


def _token_ids(a: jax.Array, layout: Layout) -> jax.Array:
    """The global token id of every entry of ``a`` ``[n, local]``."""
    return lax.broadcasted_iota(jnp.int32, a.shape, 1) + layout.offset()


def _first_ranked(values: jax.Array, tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
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
