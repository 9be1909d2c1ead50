"""Drawing tokens, and the exact distribution a strategy samples from.

:func:`probs` is the definition of :mod:`jaxsample.samplers._reference`.
:func:`sample` draws from it with one algorithm for every built-in strategy and
chain, whose cost does not depend on the distribution:

1. one pass over the row for its maximum and whether it holds a NaN (with a
   top-k part, or for a greedy draw, for the maxima of 16-token groups instead; a
   second pass only for rows with a NaN); a greedy draw then reads the 16 logits
   of the first group holding the maximum; the exact cuts of top-k parts from
   two small ``lax.top_k`` stages (over the group maxima, then inside the chosen
   groups);
2. one pass that forms the weights ``w`` of the tokens left by those cuts and
   their column, chunk and block sums (the fixed :class:`~._layout.Layout`:
   16 blocks of consecutive tokens, 16 slices per block, chunks of 16 columns
   a stride apart; on a CPU the weights are stored by an elementwise pass of
   their own and the summing pass reads them, :class:`~._layout.Tuning`);
3. inverse-CDF draws: a uniform picks a block from the block sums, a chunk of
   its columns, a column, then a token of that column; a strategy with a top-k
   part, and no top-p part or one after the cut, skips 2 to 4 and draws by
   inverse CDF among the candidates of its cut, which hold every kept token (a
   top-p part decides its nucleus on them, with their masses summed in the
   layout's order: :func:`candidate_nucleus`, when the cut's bound is at most
   ``NUCLEUS_CANDIDATES``; past it, by 4 over the row); a row whose cut is off (``k = 0``
   or ``k >= V``) takes the route over the row, in a pass made only when such a
   row is present, and compiled only when concrete parameters do not rule it
   out (:class:`Known`);
4. for a top-p part, rejection with a rising pivot (after FlashInfer's sort-free
   sampling): candidates are drawn from the tokens still possible (three in the
   first round, two in a later one) and the first whose mass ahead is below the
   nucleus bound is returned; if none is, the tokens from the best candidate on
   are ruled out, or, in a later round, when a value half way up is already out
   of the nucleus, everything from that value on. One pass per round gives the
   masses ahead of every pivot and the sums for the next round. Each rejected
   round rules out at least one token, each after the first also at least half
   of the range of logits between the candidate and the known part of the
   nucleus, and the accepted token follows the definition exactly: every round
   proposes from a superset of the nucleus in proportion to the weights.

A strategy of another kind is drawn by the same inverse CDF over its log-weights.
A row with a greedy temperature takes its first maximum instead, from a pass for
the group maxima made only when some row is greedy (and compiled only when a
temperature is traced or greedy). On a single CPU device, a batch whose float32 rows
exceed 16 MiB is drawn in equal blocks of rows, one after another
(:func:`row_block`): the same tokens, without the fresh memory pages a large
store of weights costs on every call.
Strategies whose distributions coincide for any logits (``TopP(1, tau)``,
``TopK(0, tau)``, ``TopK(V, tau)`` and ``Temperature(tau)``; ``Greedy()``,
``TopK(1)`` and ``Temperature(0)``) draw the same token for the same key: they
take the same route, with the same uniform, sums and search.

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

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample._checks import check_key as _check_key
from jaxsample._checks import check_strategy as _check_strategy
from jaxsample.samplers._layout import (
    BLOCKS,
    VOCAB_MULTIPLE,
    Layout,
    Tuning,
    block_sums,
    fixed_sum,
    layout_reduce,
    masses_ahead,
    sums_of,
    tuned,
    tuning,
    where,
    whole,
)
from jaxsample.samplers._random import row_keys, uniforms
from jaxsample.samplers._reference import (
    ahead,
    clean,
    clean_top,
    inverse_temperature,
    logit_ahead,
    logit_weights,
    nucleus_limit,
    per_row,
    row_top,
    sanitise,
    weights,
)
from jaxsample.samplers._search import (
    Pivot,
    first_max_index,
    grouped,
    locate,
    pick,
    prefix_sums,
    reject,
    row_scan,
    select,
    token_ids,
    top_k_cut,
)
from jaxsample.samplers._strategies import (
    GREEDY_TAU,
    Greedy,
    Strategy,
    TopK,
    TopP,
    _concrete,
    check_broadcast,
    prefix_parts,
)

__all__ = ["probs", "sample", "valid_rows"]


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
        rows = where(index < layout.vocab, rows, -jnp.inf)
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
    Computed for clarity, not speed (a top-k or top-p part finds the end of its
    kept prefix by bisection, about 50 passes over the row); with ``vocab_axis``
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
        bad logits follow the rules of :func:`sample`; no rows give an empty array.

    Raises:
        ValueError: for a bad logits shape or dtype, a non-strategy, a parameter that
            does not broadcast against ``[...]``, or a bad sharding.
    """
    _check_strategy(strategy)
    x, layout = _prepare(logits, vocab_axis, vocab_size)
    check_broadcast(strategy, x.shape[:-1])
    if not math.prod(x.shape[:-1]):  # no rows: nothing to compute
        return jnp.zeros(x.shape, jnp.float32)
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
    * A batch with no rows (a leading axis of size 0) gives an empty array.

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
            a non-strategy, a parameter that does not broadcast against ``[...]``, or
            a sharding that breaks the rules above.
    """
    return sample_known(key, logits, strategy, vocab_axis, vocab_size, None)


def sample_known(
    key: jax.Array,
    logits: jax.Array,
    strategy: Strategy,
    vocab_axis: str | None,
    vocab_size: int | None,
    known: Known | None,
) -> jax.Array:
    """:func:`sample`, with what the parameters rule out given (``None``: read from them).

    For callers that pass the strategy through a transformation that traces its
    leaves (``shard_map``) after reading its concrete values (:func:`known_from`).
    """
    _check_strategy(strategy)
    x, layout = _prepare(logits, vocab_axis, vocab_size)
    check_broadcast(strategy, x.shape[:-1])
    keys = _check_key(key, x.shape[:-1])
    if not math.prod(x.shape[:-1]):  # no rows: nothing to draw
        return jnp.zeros(x.shape[:-1], jnp.int32)
    facts = known_from(strategy, layout.vocab) if known is None else known
    ids: jax.Array = _sample(keys, x, strategy, layout, known=facts, tune=tuning())
    return ids


@dataclasses.dataclass(frozen=True)
class Known:
    """What concrete parameters tell about every row, so that dead routes are not compiled.

    ``cuts_on``: every top-k part cuts (a concrete ``k >= 1``, a bound ``k_max``
    below the vocabulary), so no row draws from the whole row for want of a cut.
    ``sampled``: no row is greedy (every temperature concrete and above
    ``GREEDY_TAU``, no :class:`Greedy` part), so no first maximum is needed.
    """

    cuts_on: bool = False
    sampled: bool = False


def known_from(strategy: Strategy, vocab: int) -> Known:
    """The :class:`Known` facts of ``strategy`` on rows of ``vocab`` tokens, from concrete values.

    Only values held on the host (Python numbers, NumPy arrays) are read: reading a
    ``jax.Array`` would wait for the device on every call. A traced parameter (a
    ``vmap`` over strategies, a strategy passed into ``jit``) or a device array
    tells nothing: the program then holds every route (the same tokens).
    """
    parts = prefix_parts(strategy)
    if parts is None:
        return Known()

    def all_above(value: Any, low: float) -> bool:
        if type(value) in (int, float):  # the common case, without NumPy
            return bool(value > low)
        a = None if isinstance(value, jax.Array) else _concrete(value)
        return a is not None and bool(a.size) and bool(np.all(a > low))

    tops = [part for part in parts if isinstance(part, TopK)]
    cuts_on = bool(tops) and all(
        all_above(part.k, 0) and _k_bound(part, vocab) < vocab for part in tops
    )
    sampled = all(
        not isinstance(part, Greedy) and all_above(part.tau, GREEDY_TAU)  # type: ignore[attr-defined]
        for part in parts
    )
    return Known(cuts_on, sampled)


#: Largest bound of a top-k part (its ``k_max``, else V) for which a top-p part after
#: it measures its nucleus on the cut's candidates (:func:`candidate_nucleus`, whose
#: cost grows as the square of the bound: at ``[32, 50257]`` on a 2-core CPU 2.8 ms for
#: 64, 4.6 ms for 128, 48 ms for 1024); past it, by rejection rounds over the row, the
#: cut applied to the weights.
NUCLEUS_CANDIDATES = 64

#: Bytes of float32 logits drawn in one piece on a CPU (see :func:`row_block`).
CPU_BLOCK_BYTES = 8 << 20


def _one_cpu() -> bool:
    """Whether programs run on a single CPU device (the case :func:`row_block` serves)."""
    return jax.default_backend() == "cpu" and jax.device_count() == 1


def row_block(n: int, width: int, layout: Layout) -> int:
    """The rows drawn at a time: ``n``, or fewer on a single CPU device for large rows.

    A top-p part stores its weights as ``[n, width]`` float32. Past 32 MB the C
    allocator hands XLA fresh pages on every call, and touching them costs more
    than the draw (at ``[256, 50257]`` on a 2-core CPU, 75 ms for top-p against
    36 ms in blocks). So on a single CPU device rows of more than ``2 *
    CPU_BLOCK_BYTES`` are drawn in equal blocks of at most ``CPU_BLOCK_BYTES`` (at
    least one row each), in a loop. Elsewhere (accelerators, several devices,
    where XLA may split the rows, a sharded vocabulary) the rows are drawn at
    once. A row's token does not depend on the other rows: the tokens are the
    same either way.
    """
    row = 4 * width
    if layout.axis is not None or n * row <= 2 * CPU_BLOCK_BYTES or not _one_cpu():
        return n
    blocks = -(-n // max(1, CPU_BLOCK_BYTES // row))
    return -(-n // blocks)


@functools.partial(jax.jit, static_argnames=("layout", "general", "block", "known", "tune"))
def _sample(
    key: jax.Array,
    x: jax.Array,
    strategy: Strategy,
    layout: Layout,
    general: bool = False,
    block: int | None = None,
    known: Known = Known(),
    tune: Tuning | None = None,
) -> jax.Array:
    """:func:`sample` of checked inputs.

    ``general`` forces the log-weight route and ``block`` the rows drawn at a time
    (tests; default :func:`row_block`); ``known``: see :func:`known_from`;
    ``tune``: the :class:`~._layout.Tuning` (default: the platform's, see
    :func:`~._layout.tuning`), part of the compiled program's key.
    """
    with tuned(tuning() if tune is None else tune):
        return _traced(key, x, strategy, layout, general, block, known)


def _traced(
    key: jax.Array,
    x: jax.Array,
    strategy: Strategy,
    layout: Layout,
    general: bool,
    block: int | None,
    known: Known,
) -> jax.Array:
    """The body of :func:`_sample`, traced with the tuning in force."""
    lead = x.shape[:-1]
    keys = row_keys(key, lead)
    parts = None if general else prefix_parts(strategy)
    if parts is None or (
        sum(isinstance(part, TopP) for part in parts) > 1
        and not any(isinstance(part, Greedy) for part in parts)
    ):
        # Another kind of strategy, or a nucleus of a nucleus: the inverse CDF
        # over the log-weights of the definition, on the whole row.
        rows = _rows(x, layout)
        top = row_top(rows, layout.axis)
        rows, lay = _whole_row(rows, layout), whole(layout.vocab)
        lw = strategy.log_weights(clean(rows, top[:, None]).reshape(*lead, -1)).reshape(rows.shape)
        m = jnp.max(lw, axis=-1)
        one = jnp.ones(m.shape, jnp.float32)
        everything = (jnp.full(m.shape, -jnp.inf), jnp.full(m.shape, lay.vocab, jnp.int32))
        sums = block_sums(lambda v, _: weights(v, m[:, None, None], one[:, None, None]), lay, lw)
        u = uniforms(keys, jnp.zeros((1,), jnp.int32))
        ids = locate(sums, lw, m, m, one, everything, u, lay)[0][:, 0]
        return layout.across(lax.pmax, ids).reshape(lead)  # equal on every shard
    n = keys.shape[0]
    flat = x.reshape(n, -1)
    size = row_block(n, flat.shape[-1], layout) if block is None else block
    if size >= n:
        return _draw_rows(_rows(flat, layout), keys, parts, lead, layout, known).reshape(lead)

    def per_row_or_one(a: Any) -> Any:
        # A parameter as one value for all rows, or one per row [n], cut with the rows.
        return a if jnp.ndim(a) == 0 else per_row(a, lead, jnp.asarray(a).dtype)

    per = [jax.tree.map(per_row_or_one, part) for part in parts]

    def body(i: jax.Array, ids: jax.Array) -> jax.Array:
        start = jnp.minimum(i * size, n - size)  # the last block may overlap the one before

        def cut(a: Any) -> Any:
            return a if jnp.ndim(a) == 0 else lax.dynamic_slice_in_dim(a, start, size)

        these = tuple(jax.tree.map(cut, part) for part in per)
        drawn = _draw_rows(_rows(cut(flat), layout), cut(keys), these, (size,), layout, known)
        return lax.dynamic_update_slice_in_dim(ids, drawn, start, 0)

    out: jax.Array = lax.fori_loop(0, -(-n // size), body, jnp.zeros((n,), jnp.int32))
    return out.reshape(lead)


def _draw_rows(
    rows: jax.Array,
    keys: jax.Array,
    parts: tuple[Strategy, ...],
    lead: tuple[int, ...],
    layout: Layout,
    known: Known = Known(),
) -> jax.Array:
    """Draw ``[n]`` tokens for built-in ``parts`` on float32 ``rows`` ``[n, local]``.

    ``keys`` ``[n]``, ``lead`` (the axes the parameters broadcast against) and
    ``known`` as in :func:`_draw_prefix`; a greedy part takes the first maximum.
    """
    greedy = any(isinstance(part, Greedy) for part in parts)
    groups = greedy or any(
        isinstance(part, TopK) and grouped(_k_bound(part, layout.vocab), rows.shape[-1])
        for part in parts
    )
    # The row maxima, and the group maxima when a top-k part ranks groups or the
    # draw is greedy.
    top, maxima = row_scan(rows, layout.axis, groups)
    if greedy:
        return first_max_index(rows, top, maxima, layout)  # no randomness needed
    return _draw_prefix(rows, top, maxima, parts, keys, lead, layout, known)


def _k_bound(part: TopK, vocab: int) -> int:
    """The static bound on a top-k part's ``k``: its ``k_max``, or the ``vocab`` size."""
    return vocab if part.k_max is None else part.k_max


def _earlier(a: Pivot, b: Pivot) -> Pivot:
    """The pivot of the two that ranks first (its prefix is the smaller)."""
    first = ahead(a[0], a[1], b[0], b[1])
    return where(first, a[0], b[0]), where(first, a[1], b[1])


def _param(value: Any, lead: tuple[int, ...], dtype: Any) -> jax.Array:
    """A parameter as ``[1]`` when it is one value for every row, else one per row ``[n]``."""
    a = jnp.asarray(value, dtype)
    return a.reshape(1) if a.ndim == 0 else per_row(a, lead, dtype)


def _draw_prefix(
    x: jax.Array,
    top: jax.Array,
    maxima: jax.Array | None,
    parts: tuple[Strategy, ...],
    keys: jax.Array,
    lead: tuple[int, ...],
    layout: Layout,
    known: Known = Known(),
) -> jax.Array:
    """Draw for built-in parts (at most one top-p) on float32 rows ``x`` (see :func:`row_scan`).

    A top-k cut keeps only its candidates, so the draw reads them, not the row,
    and a top-p part after a cut of bound at most ``NUCLEUS_CANDIDATES`` measures
    its nucleus on them too (:func:`candidate_nucleus`). Rows whose cut is off
    (``k = 0`` or ``k >= V``) take the whole-row route, and greedy rows their
    first maximum, each compiled only when such a row may be present (see
    :class:`Known`) and run only when one is.
    """
    vocab = layout.vocab
    m = clean_top(top)
    # Values shared by every row stay [1] (constants of the program); others are [n].
    s = jnp.ones((1,), jnp.float32)
    greedy = jnp.zeros((1,), bool)
    everything: Pivot = (jnp.full((1,), -jnp.inf), jnp.full((1,), vocab, jnp.int32))
    cut = everything
    # The nucleus: p, the scale, the cut before it and the candidates known then.
    nucleus: tuple[jax.Array, jax.Array, Pivot, Any] | None = None
    # The candidates of the top-k part with the smallest bound: its bound, values,
    # ids and whether its cut is on.
    candidates: tuple[int, jax.Array, jax.Array, jax.Array] | None = None
    for part in parts:
        tau = _param(part.tau, lead, jnp.float32)  # type: ignore[attr-defined]
        greedy = greedy | ~(tau > GREEDY_TAU)
        s = s * inverse_temperature(tau)
        if isinstance(part, TopK):
            k = _param(part.k, lead, jnp.int32)
            bound = _k_bound(part, vocab)
            values, indices = top_k_cut(x, top, maxima, bound, layout)
            slot = jnp.clip(k, 1, values.shape[-1]) - 1
            kth, after = select(slot, -1, values, indices)
            after = after + 1
            on = jnp.ones((1,), bool) if known.cuts_on else (k > 0) & (k < vocab)
            cut = _earlier(cut, (where(on, kth, -jnp.inf), where(on, after, vocab)))
            if candidates is None or bound < candidates[0]:
                candidates = (bound, values, indices, on)
        elif isinstance(part, TopP):
            nucleus = (_param(part.p, lead, jnp.float32), s, cut, candidates)

    def weight_of(scale: jax.Array, pivot: Pivot) -> Any:
        """The weights (scale ``scale``, zero outside ``pivot``) of logits ``[n, ...]``."""

        def fn(v: jax.Array, index: jax.Array) -> jax.Array:
            def lift(a: jax.Array) -> jax.Array:  # per-row values against ``v``
                return a.reshape(a.shape + (1,) * (v.ndim - 1))

            w = logit_weights(v, lift(top), lift(scale))
            if pivot is not everything:  # static: a cut to apply
                ahead = logit_ahead(v, index, lift(top), lift(pivot[0]), lift(pivot[1]))
                w = where(ahead, w, 0.0)
            return w

        return fn

    u = uniforms(keys, jnp.zeros((1,), jnp.int32))

    def whole_row() -> jax.Array:
        """The inverse-CDF draw over the row (no top-p part)."""
        if tuning().store_weights:  # formed in one pass, then summed as they are
            w = weight_of(s, cut)(x, token_ids(x, layout))
            sums = block_sums(lambda w, _: w, layout, w)
        else:
            sums = block_sums(weight_of(s, cut), layout, x)
        out: jax.Array = locate(sums, x, top, m, s, cut, u, layout)[0][:, 0]
        return out

    def rejection() -> jax.Array:
        """The rejection rounds of the top-p part over the row."""
        assert nucleus is not None
        p, s_p, before, _ = nucleus
        index = token_ids(x, layout)

        # With the top-p part last (every later part scales) the nucleus is measured
        # with the weights drawn from; else with weights of its own, at its scale and
        # before any later cut, summed in the same passes.
        kinds = ((s, cut),) if s_p is s else ((s, cut), (s_p, before))
        first: Any  # the weights of the pass before the rounds, from the arrays ``read``
        if tuning().store_weights:
            # Stored once; each round's pass reads them beside the logits.
            held = tuple(weight_of(*kind)(x, index) for kind in kinds)

            def weigh(v: jax.Array, index: jax.Array, *slices: jax.Array) -> tuple[jax.Array, ...]:
                return slices

            first, read = _held, held
        else:
            # Formed again from the logits wherever they are read.
            held = ()

            def weigh(v: jax.Array, index: jax.Array, *slices: jax.Array) -> tuple[jax.Array, ...]:
                return tuple(weight_of(*kind)(v, index) for kind in kinds)

            first, read = weigh, (x,)
        found = layout_reduce((lax.add,) * len(kinds), (0.0,) * len(kinds), first, layout, *read)
        sums = sums_of(found[0], layout)
        total = fixed_sum((sums if len(kinds) == 1 else sums_of(found[1], layout))[2])
        out: jax.Array = reject(
            keys, x, top, weigh, len(kinds), held, sums, m, s, cut, nucleus_limit(p, total), layout
        )
        return out

    row_route = whole_row if nucleus is None else rejection
    # The candidates that hold every kept token (for a nucleus, those known before it).
    held_by = candidates if nucleus is None else nucleus[3]
    if nucleus is not None and held_by is not None and held_by[0] > NUCLEUS_CANDIDATES:
        held_by = None  # too many candidates: measured over the row, past the cut
    if held_by is None:
        ids = row_route()
    else:
        _, values, indices, on = held_by
        final = cut
        if nucleus is not None:
            p, s_p, before, _ = nucleus
            final = _earlier(cut, candidate_nucleus(values, indices, m, s_p, before, p, layout))
        drawn = _draw_candidates(values, indices, m, s, final, u[:, 0])
        if not known.cuts_on:
            # Rows whose cut is off draw from the whole row, in a pass made only when
            # such a row is present.
            zeros = functools.partial(jnp.zeros_like, top, jnp.int32)
            drawn = where(on, drawn, lax.cond(jnp.any(~on), row_route, zeros))
        # Equal on every shard; the maximum only tells JAX so (the candidates were
        # gathered).
        ids = layout.across(lax.pmax, drawn)
    if known.sampled:
        return ids
    # Greedy rows take the first maximum, from a pass made only when a row is greedy.
    return where(greedy, _greedy_first(greedy, x, top, layout), ids)


def candidate_nucleus(
    values: jax.Array,
    ids: jax.Array,
    m: jax.Array,
    s: jax.Array,
    before: Pivot,
    p: jax.Array,
    layout: Layout,
) -> Pivot:
    """The top-p cut of a row whose kept tokens all lie among its top-k candidates.

    ``values``, ``ids`` ``[n, K]`` are the first ``K`` tokens of the ranking (from
    :func:`top_k_cut`), ``before`` the cut in force before the top-p part, which
    keeps only candidates; ``m``, ``s`` the cleaned row maxima and the top-p
    part's inverse temperature, ``p`` its nucleus. The weights ahead of ``before``
    are those of the definition, and their masses ahead and total are summed in
    the layout's order (:func:`~._layout.masses_ahead`), so a candidate is kept
    exactly when the definition keeps it. Returns the pivot after the last kept
    candidate (the kept ones form a prefix; the first is always kept).
    """
    w = _candidate_weights(values, ids, m, s, before)
    mass_ahead = masses_ahead(w, ids, layout)
    kept = mass_ahead[:, :-1] < nucleus_limit(p, mass_ahead[:, -1])[:, None]
    last = jnp.maximum(jnp.sum(kept, -1, dtype=jnp.int32) - 1, 0)
    value, index = select(last, -1, values, ids)
    return value, index + 1


def _held(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """Slices of stored arrays as they are (the last argument, the token ids, dropped)."""
    return arrays[:-1]


def _draw_candidates(
    values: jax.Array, ids: jax.Array, m: jax.Array, s: jax.Array, cut: Pivot, u: jax.Array
) -> jax.Array:
    """Inverse-CDF draw among top-k candidates: int32 ``[n]``.

    ``values`` and ``ids`` ``[n, K]`` are the first ``K`` tokens of the ranking
    (cleaned logits and global ids, from :func:`top_k_cut`), which hold every
    token ahead of the pivot ``cut``; ``m``, ``s`` the cleaned row maxima and
    inverse temperatures, ``u`` ``[n]`` uniforms. The candidates ahead of ``cut``
    weigh as in the definition, the others 0; the target ``u * total`` (added left
    to right) picks the first candidate whose prefix sum exceeds it.
    """
    w = _candidate_weights(values, ids, m, s, cut)
    slot, _ = pick(w, u * prefix_sums(w)[:, -1])
    out: jax.Array = select(slot, -1, ids)
    return out


def _candidate_weights(
    values: jax.Array, ids: jax.Array, m: jax.Array, s: jax.Array, pivot: Pivot
) -> jax.Array:
    """The definition's weights of candidates ``[n, K]`` ahead of ``pivot``, 0 for the others."""
    inside = ahead(values, ids, pivot[0][:, None], pivot[1][:, None])
    out: jax.Array = where(inside, weights(values, m[:, None], s[:, None]), 0.0)
    return out


def _greedy_first(greedy: jax.Array, x: jax.Array, top: jax.Array, layout: Layout) -> jax.Array:
    """:func:`first_max_index` of the rows, formed only when a row of ``greedy`` is greedy.

    Under ``vmap`` the pass is made without the condition (a batched condition
    would batch the logits too, though they are often shared by the batch).
    """

    @jax.custom_batching.custom_vmap
    def first(greedy: jax.Array, x: jax.Array, top: jax.Array) -> jax.Array:
        out: jax.Array = lax.cond(
            jnp.any(greedy),
            lambda: first_max_index(x, top, None, layout),
            # Zeros typed like ``top``: under shard_map both branches then vary over
            # the same mesh axes, as lax.cond requires.
            lambda: jnp.zeros_like(top, jnp.int32),
        )
        return out

    @first.def_vmap
    def _(size: int, batched: list[bool], greedy: jax.Array, x: jax.Array, top: jax.Array) -> Any:
        if not (batched[1] or batched[2]):  # the rows are shared by the batch
            return first_max_index(x, top, None, layout), False
        xb = x if batched[1] else jnp.broadcast_to(x, (size, *x.shape))
        tb = top if batched[2] else jnp.broadcast_to(top, (size, *top.shape))
        out = first_max_index(xb.reshape(-1, xb.shape[-1]), tb.reshape(-1), None, layout)
        return out.reshape(size, -1), True

    out: jax.Array = first(greedy, x, top)
    return out
