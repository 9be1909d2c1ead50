"""The fixed order in which the sampler core adds weights: the summation layout.

Every sum the exact draw depends on (a row's total, the mass ahead of a token,
the column, chunk and block sums of the inverse CDF) is added in the one order
of :class:`Layout`, so that the definition (:mod:`._reference`) and the fast
draw (:mod:`._sampling`, :mod:`._search`) form the same bits from the same
weights, on one device or on a vocabulary split over several. :func:`where` is
the select the core uses throughout.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "ACCELERATOR",
    "BLOCKS",
    "CPU",
    "SLICES",
    "VOCAB_MULTIPLE",
    "Layout",
    "Tuning",
    "add",
    "block_sums",
    "both",
    "chunk_sums",
    "either",
    "eq",
    "fixed_sum",
    "ge",
    "gt",
    "lanes",
    "layout_reduce",
    "le",
    "lt",
    "mass",
    "masses_ahead",
    "minimum",
    "mul",
    "ne",
    "sub",
    "sums_of",
    "tuned",
    "tuning",
    "varying_like",
    "where",
    "whole",
]

#: Blocks of the summation layout; also the most vocabulary shards a row may span.
BLOCKS = 16

#: Slices per block: a column of the layout adds one token of each slice.
SLICES = 16

#: The layout's width is the vocabulary rounded up to a multiple of this.
VOCAB_MULTIPLE = BLOCKS * SLICES


@dataclasses.dataclass(frozen=True)
class Tuning:
    """How the sampler core's programs are shaped for a platform: never what they compute.

    Every field changes only the program XLA receives (how many kernels, what is
    stored between them), not the order of any addition, so every tuning draws
    the same tokens bit for bit (tests force each one on the CPU).

    Attributes:
        unroll: slices folded per round of the summing loop of
            :func:`layout_reduce` (``SLICES``: straight-line code, one kernel).
        chunk_unroll: entries added per round of :func:`chunk_sums`' loop
            (``SLICES - 1``: no loop).
        store_weights: a draw over the row stores its weights once, in one
            elementwise pass, and its summing passes read them (beside the logits,
            for top-p's rounds): on a CPU an exponential inside the summing loop
            costs more than a read. Or it forms them again in each pass from the
            logits alone (on a GPU the read costs more).
        pivots_apart: a rejection pass forms the sums of each pivot as an output of
            its own (on a GPU one kernel then reads each token once for every
            pivot), or as one array with a pivot axis.
        nan_in_pass: the row maximum reads NaN as ``-inf`` in its one pass (free in
            a GPU's memory-bound pass), or notes a NaN beside the maximum (a
            variadic max/or reduction) and forms the maximum again only then (a
            select inside XLA's CPU max pass makes it 2-3x slower).
    """

    unroll: int
    chunk_unroll: int
    store_weights: bool
    pivots_apart: bool
    nan_in_pass: bool


#: The CPU's tuning: loops of small kernels (a long chain of adds fused with its
#: users compiles slowly on XLA's CPU backend), weights stored, the chunk sums'
#: fifteen adds written out (a loop of dynamic slices compiles more slowly).
CPU = Tuning(unroll=2, chunk_unroll=15, store_weights=True, pivots_apart=False, nan_in_pass=False)

#: GPUs (and other accelerators): every loop unrolled into one kernel (a loop's
#: rounds are kernels of a few microseconds each), weights formed where they are
#: read, no second pass for NaN.
ACCELERATOR = Tuning(
    unroll=16, chunk_unroll=15, store_weights=False, pivots_apart=True, nan_in_pass=True
)

_FORCED: contextvars.ContextVar[Tuning | None] = contextvars.ContextVar("tuning", default=None)


def tuning() -> Tuning:
    """The tuning in force: the one :func:`tuned` sets, else the default backend's.

    ``CPU`` when ``jax.default_backend()`` is ``"cpu"``, else ``ACCELERATOR``.
    """
    forced = _FORCED.get()
    if forced is not None:
        return forced
    return CPU if jax.default_backend() == "cpu" else ACCELERATOR


@contextlib.contextmanager
def tuned(t: Tuning) -> Iterator[None]:
    """Trace with tuning ``t`` inside the block (a program traced there keeps it)."""
    token = _FORCED.set(t)
    try:
        yield
    finally:
        _FORCED.reset(token)


def _full(t: Any, kind: Any, shape: tuple[int, ...]) -> jax.Array:
    """``t`` converted to dtype ``kind`` and broadcast to ``shape`` with lax ops."""
    a: jax.Array = lax.convert_element_type(t, kind)
    if a.shape == shape:
        return a
    return lax.broadcast_in_dim(a, shape, tuple(range(len(shape) - a.ndim, len(shape))))


def where(c: Any, a: Any, b: Any) -> jax.Array:
    """``jnp.where(c, a, b)`` traced as one ``lax.select``: no nested ``jit`` to trace and lower.

    ``a`` and ``b`` are arrays or scalars of one result type (``jnp.result_type``);
    all three broadcast as in NumPy. The sampler core calls it often, so its
    first compile is shorter.
    """
    dtype = jnp.result_type(a, b)
    shape = jnp.broadcast_shapes(jnp.shape(c), jnp.shape(a), jnp.shape(b))
    return lax.select(_full(c, jnp.bool_, shape), _full(a, dtype, shape), _full(b, dtype, shape))


def _binary(op: Any, doc: str) -> Callable[[Any, Any], jax.Array]:
    def binary(a: Any, b: Any) -> jax.Array:
        dtype = jnp.result_type(a, b)
        shape = jnp.broadcast_shapes(jnp.shape(a), jnp.shape(b))
        out: jax.Array = op(_full(a, dtype, shape), _full(b, dtype, shape))
        return out

    binary.__doc__ = doc
    return binary


# The arithmetic of the sampler core, as jnp's (NumPy's broadcasting, jnp's type
# promotion) but traced as one lax op each: a jnp operator on traced arrays is a
# nested jit, traced anew for every new shape, which made up about half of the
# tracing time of a sampler's first compile.
add = _binary(lax.add, "``a + b``.")
sub = _binary(lax.sub, "``a - b``.")
mul = _binary(lax.mul, "``a * b``.")
minimum = _binary(lax.min, "``jnp.minimum(a, b)``.")
lt = _binary(lax.lt, "``a < b``.")
le = _binary(lax.le, "``a <= b``.")
gt = _binary(lax.gt, "``a > b``.")
ge = _binary(lax.ge, "``a >= b``.")
eq = _binary(lax.eq, "``a == b``.")
ne = _binary(lax.ne, "``a != b``.")
both = _binary(lax.bitwise_and, "``a & b``.")
either = _binary(lax.bitwise_or, "``a | b``.")


def lanes(*parts: Any) -> jax.Array:
    """``jnp.stack(parts, -1)`` formed as one select per lane: ``[..., len(parts)]``.

    ``parts``: arrays (or scalars) of one dtype that broadcast together. XLA
    computes a stack part by part, each in a branch of its own, so work the parts
    share (a hash, a round's tests) is compiled once per part; as selects on the
    lane index it is compiled once. The values are the same.
    """
    lane = np.arange(len(parts))  # constants of the program, not kernels of their own
    out = jnp.expand_dims(parts[-1], -1)
    for j in reversed(range(len(parts) - 1)):
        out = where(lane == j, jnp.expand_dims(parts[j], -1), out)
    return out


@dataclasses.dataclass(frozen=True)
class Layout:
    """The fixed order in which the weights of a row are summed, and which part of it is here.

    The layout pads the vocabulary of ``vocab`` tokens to ``width``, the next
    multiple of ``VOCAB_MULTIPLE``, and cuts it into ``BLOCKS`` blocks of ``block``
    consecutive tokens; each block into ``SLICES`` slices of ``column`` tokens.
    Column ``j`` of block ``b`` holds the tokens ``b * block + g * column + j``
    (``g < SLICES``), added slice after slice. A block's ``column`` columns form
    ``c = ceil(column / SLICES)`` chunks, chunk ``k`` the columns ``k + c * m``
    (:func:`chunk_sums`); a block's sum adds its chunk sums in order, and the
    row's total the ``BLOCKS`` block sums (:func:`fixed_sum`). Tokens ``>= vocab``
    are absent (weight 0, never drawn).

    The arrays a program holds may be the whole row (``axis`` None: ``local``
    tokens, ``vocab <= local``) or one of ``shards`` equal contiguous pieces of the
    ``width`` tokens along the mesh axis ``axis`` (``local = width // shards``,
    ``shards`` dividing ``BLOCKS``). A shard then holds whole blocks, sums them
    exactly as the whole row would, and exchanges only block sums: the same
    inputs give the same bits on any number of shards.
    """

    vocab: int
    local: int
    axis: str | None = None
    shards: int = 1

    @property
    def width(self) -> int:
        """The padded width, a multiple of ``VOCAB_MULTIPLE``."""
        return -(-self.vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    @property
    def block(self) -> int:
        """Tokens per block."""
        return self.width // BLOCKS

    @property
    def column(self) -> int:
        """Columns per block (tokens per slice)."""
        return self.block // SLICES

    @property
    def blocks(self) -> int:
        """Blocks held here."""
        return BLOCKS // self.shards

    def offset(self) -> Any:
        """Id of the first token held here: an int32 scalar (NumPy's 0 for a whole row)."""
        if self.axis is None:
            return np.int32(0)  # a constant: nothing to trace
        index: jax.Array = lax.axis_index(self.axis)
        return index.astype(jnp.int32) * self.local

    def across(self, collective: Any, a: jax.Array) -> jax.Array:
        """``collective(a, axis)`` (``lax.psum``, ``lax.pmax`` ...) over the shards, or ``a``."""
        if self.axis is None:
            return a
        out: jax.Array = collective(a, self.axis)
        return out

    def gather(self, a: jax.Array) -> jax.Array:
        """Per-block values ``[..., blocks]`` of this program to those of all ``BLOCKS``."""
        if self.axis is None:
            return a
        out: jax.Array = lax.all_gather(a, self.axis, axis=a.ndim - 1, tiled=True)
        return out


def _varying(a: Any) -> set[Any]:
    """The mesh axes over which ``a`` varies (inside ``shard_map``; empty elsewhere)."""
    mat = getattr(jax.typeof(a), "mat", None)
    return set(mat.varying) if mat is not None else set()


def varying_like(tree: Any, *refs: Any) -> Any:
    """``tree`` with every leaf marked as varying over the mesh axes any of ``refs`` varies over.

    A loop's initial carry built from constants must have the type its body
    returns, which inside ``shard_map`` includes the axes the inputs vary over.
    """
    axes: set[Any] = set().union(*(_varying(r) for r in jax.tree.leaves(refs)))

    def cast(a: Any) -> Any:
        missing = tuple(sorted(axes - _varying(a), key=str))
        return lax.pcast(a, missing, to="varying") if missing else a

    return jax.tree.map(cast, tree) if axes else tree


def whole(vocab: int) -> Layout:
    """The layout of an unsharded row of ``vocab`` tokens."""
    return Layout(vocab, vocab)


def _add_along(a: jax.Array) -> jax.Array:
    """The entries of the last axis of ``a`` (a few) added left to right, with elementwise adds."""
    parts = lax.split(a, (1,) * a.shape[-1], a.ndim - 1)
    total = parts[0]
    for part in parts[1:]:
        total = lax.add(total, part)
    return total.reshape(a.shape[:-1])


def chunk_sums(a: jax.Array) -> jax.Array:
    """Sums of the ``c = ceil(size / SLICES)`` chunks of the last axis of ``a``, strided.

    Chunk ``k`` holds the entries ``k + c * m`` (``m < SLICES``; those past the
    axis read as 0). A loop adds them in the order of ``m``, one entry of every
    chunk per step: the order is fixed in every program (XLA neither reorders nor
    splits the adds), each step adds contiguous memory, and each step is a small
    kernel, where a chain of adds fused with its users compiles slowly. Returns
    ``[..., c]``.
    """
    size, last = a.shape[-1], a.ndim
    chunks = -(-size // SLICES)
    a = lax.pad(
        a, jnp.zeros((), a.dtype), [(0, 0, 0)] * (last - 1) + [(0, chunks * SLICES - size, 0)]
    )
    a = a.reshape(*a.shape[:-1], SLICES, chunks)

    def step(m: Any, total: jax.Array) -> jax.Array:
        return lax.add(total, lax.dynamic_index_in_dim(a, m, axis=last - 1, keepdims=False))

    first = lax.index_in_dim(a, 0, axis=last - 1, keepdims=False)
    out: jax.Array = lax.fori_loop(1, SLICES, step, first, unroll=tuning().chunk_unroll)
    return out


def fixed_sum(a: jax.Array) -> jax.Array:
    """Sum the last axis of ``a`` in one fixed order, with explicit adds.

    Up to ``SLICES`` entries are added left to right; more are summed in chunks
    (:func:`chunk_sums`), then the chunks' sums the same way.
    """
    return fixed_sum(chunk_sums(a)) if a.shape[-1] > SLICES else _add_along(a)


def layout_reduce(
    op: Any, init: Any, value: Any, layout: Layout, *arrays: jax.Array, lead: Any = ()
) -> Any:
    """Reduce ``value(*slices, index)`` over the slices of each column of ``layout``.

    ``arrays`` are the ``[n, local]`` arrays held here; ``value`` maps slices of
    them (``[n, blocks, column]``) and the token ids of the slice (int32 ``[blocks,
    column]``) elementwise to values ``[n, ..., blocks, column]``, combined with
    ``op`` (identity ``init``, also the value of absent tokens) one slice after
    the other, in a loop over the ``SLICES`` slices: the loop fixes the order of
    the operations in every program, and its result is stored before any user
    reads it. ``value`` may return a tuple, with a tuple of ops and of inits.
    Whole blocks are read in place; a partial last block (the arrays end before
    the layout's width) from a padded copy of that block only, its padding given
    ``init``. ``lead`` gives the axes ``...`` (a tuple of them per output of a
    tuple). Returns ``[n, ..., blocks, column]`` (or a tuple).
    """
    many = isinstance(op, tuple)
    ops, inits = (op, init) if many else ((op,), (init,))
    leads = (lead or ((),) * len(ops)) if many else (lead,)
    size, column = layout.block, layout.column
    full = min(arrays[0].shape[-1] // size, layout.blocks)
    # Whole blocks are read in place; a partial last block from a padded copy of it.
    spans = [(0, full)] if full else []
    if full < layout.blocks:
        spans.append((full, layout.blocks - full))

    def slice_(g: Any, first: int, count: int) -> tuple[jax.Array, ...]:
        parts = []
        for a in arrays:
            a = lax.slice_in_dim(a, first * size, min((first + count) * size, a.shape[-1]), axis=1)
            if a.shape[-1] < count * size:
                a = lax.pad(
                    a,
                    jnp.float32(0.0).astype(a.dtype),
                    [(0, 0, 0), (0, count * size - a.shape[-1], 0)],
                )
            a = a.reshape(a.shape[0], count, SLICES, column)
            parts.append(
                lax.dynamic_slice_in_dim(a, g, 1, axis=2).reshape(a.shape[0], count, column)
            )
        # Token ids of the slice: a constant of the program, plus the slice's offset.
        ids = (np.arange(count)[:, None] + first) * size + np.arange(column)[None]
        index = add(ids.astype(np.int32), add(mul(g, column), layout.offset()))
        out = value(*parts, index)
        outs = out if many else (out,)
        # Tokens past the vocabulary read as the identity (none in a whole span of an
        # unsharded row, which is static).
        if (first + count) * size > layout.vocab or layout.axis is not None:
            outs = tuple(
                where(lt(index, layout.vocab), o, i) for o, i in zip(outs, inits, strict=True)
            )
        return tuple(outs)

    def body(g: Any, totals: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        values = [slice_(g, *span) for span in spans]
        out: list[jax.Array] = []
        for k, f in enumerate(ops):
            out.extend(f(totals[len(spans) * k + i], v[k]) for i, v in enumerate(values))
        return tuple(out)

    n = arrays[0].shape[0]
    start = tuple(
        jnp.full((n, *extra, count, column), i, jnp.asarray(i).dtype)
        for i, extra in zip(inits, leads, strict=True)
        for _, count in spans
    )
    totals = lax.fori_loop(0, SLICES, body, varying_like(start, *arrays), unroll=tuning().unroll)
    outs = tuple(
        jnp.concatenate(totals[len(spans) * k : len(spans) * (k + 1)], -2)
        if len(spans) > 1
        else totals[len(spans) * k]
        for k in range(len(ops))
    )
    return outs if many else outs[0]


def block_sums(
    weight: Any, layout: Layout, *arrays: jax.Array, lead: tuple[int, ...] = ()
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Column, chunk and block sums of weights ``weight(*slices, index)`` >= 0.

    Returns the column sums held here ``[n, ..., blocks, column]``, their
    :func:`chunk_sums` ``[n, ..., blocks, chunks]`` and the sums of all ``BLOCKS``
    blocks ``[n, ..., BLOCKS]`` (gathered from every shard); ``lead`` are the axes ``...``.
    """
    return sums_of(layout_reduce(lax.add, 0.0, weight, layout, *arrays, lead=lead), layout)


def sums_of(columns: jax.Array, layout: Layout) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Column sums ``[n, ..., blocks, column]`` with their chunk sums and all block sums."""
    chunks = chunk_sums(columns)
    return columns, chunks, layout.gather(fixed_sum(chunks))


def mass(w: jax.Array, layout: Layout | None = None) -> jax.Array:
    """The row totals of ``w`` ``[n, V]``, added in the order of ``layout`` (default: whole)."""
    lay = whole(w.shape[-1]) if layout is None else layout
    return fixed_sum(block_sums(lambda v, _: v, lay, w)[2])


def _chunk_digits(k: jax.Array, size: int) -> list[jax.Array]:
    """Where entry ``k`` of ``size`` sits in :func:`fixed_sum`'s order: digits, outermost first.

    Up to ``SLICES`` entries are added left to right (one digit, ``k``); more are
    summed in :func:`chunk_sums` groups (entry ``k`` in group ``k % c``, at step
    ``k // c``), whose sums are then added the same way.
    """
    if size <= SLICES:
        return [k]
    groups = -(-size // SLICES)
    return [*_chunk_digits(k % groups, groups), k // groups]


def masses_ahead(w: jax.Array, ids: jax.Array, layout: Layout) -> jax.Array:
    """Sums of a few weights in the layout's order: the mass ahead of each, and the total.

    ``w`` ``[n, K]`` (>= 0) are the weights of ``K`` distinct tokens of each row,
    in ranking order, ``ids`` int32 ``[n, K]`` their global ids. Entry ``j < K``
    of the result is the sum of ``w[:, :j]``, entry ``K`` the sum of all of them,
    each bit for bit the sum :func:`mass` forms over a whole row that holds these
    weights and zeros elsewhere: the layout adds in a fixed nesting (a column's
    slices, a chunk's columns, a block's chunks, the row's blocks), and adding 0
    changes nothing, so the sum is that nesting over the nonzero weights alone.
    The tokens are put in the layout's order (each id read as its digits, block
    outermost, slice innermost, 4 bits each), then one loop over them keeps a
    running sum per level of the nesting and adds a level into the next whenever
    a digit at or above that level changes. Returns float32 ``[n, K + 1]``.
    """
    n, size = w.shape
    b = ids // layout.block
    r = ids - b * layout.block
    g = r // layout.column
    j = r - g * layout.column
    chunks = -(-layout.column // SLICES)
    digits = [b, *_chunk_digits(j % chunks, chunks), j // chunks, g]  # outermost first
    pos = jnp.zeros_like(ids)
    for d in digits:
        pos = pos * SLICES + d
    rank = lax.broadcasted_iota(jnp.int32, w.shape, 1)
    pos, w, rank = lax.sort((pos, w, rank), dimension=1, num_keys=1)
    pos_t, w_t, rank_t = pos.T, w.T, rank.T  # one token of every row per step
    lanes = jnp.arange(size + 1, dtype=jnp.int32)
    depth = len(digits)

    def step(e: Any, sums: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        now, before = pos_t[e], pos_t[jnp.maximum(e - 1, 0)]
        out = list(sums)
        for level in range(1, depth):  # close the inner levels whose group ends here
            shift = np.int32(4 * level)
            new = lax.shift_right_logical(now, shift) != lax.shift_right_logical(before, shift)
            new = new[:, None]
            out[level] = where(new, out[level] + out[level - 1], out[level])
            out[level - 1] = where(new, jnp.float32(0.0), out[level - 1])
        # Lane ``j`` holds the tokens ranked before ``j``; lane ``K`` every token.
        out[0] = out[0] + where(rank_t[e][:, None] < lanes, w_t[e][:, None], jnp.float32(0.0))
        return tuple(out)

    start = varying_like(tuple(jnp.zeros((n, size + 1), jnp.float32) for _ in range(depth)), w)
    sums = list(lax.fori_loop(0, size, step, start))
    for level in range(1, depth):
        sums[level] = sums[level] + sums[level - 1]
    out: jax.Array = sums[-1]
    return out
