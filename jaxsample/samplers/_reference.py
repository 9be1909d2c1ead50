"""The semantics of the built-in strategies, written once: which tokens are kept, with what weight.

Read this module first. Every built-in strategy, and every chain of them, turns
a row of logits into a *prefix state*:

* ``z``: the sanitised float32 logits (NaN removed, ``+inf`` rows and empty rows
  resolved, ``-0.0`` made ``+0.0``; see :func:`sanitise`) and ``m``, their row
  maximum;
* the **ranking**: tokens in descending order of ``z``, ties by lowest index.
  Temperature never changes it, so every truncation keeps a *prefix* of it;
* ``s``: the inverse temperature, the product of ``1 / tau`` over the parts, so
  the weight of token ``i`` is ``w_i = exp((z_i - m) * s)`` (:func:`weights`);
* the kept prefix, ``keep``.

The parts act in the order written:

* ``Temperature(tau)`` multiplies ``s`` by ``1 / tau``; ``tau <= GREEDY_TAU`` makes
  the row greedy.
* ``TopK(k, tau)``: temperature, then keep the tokens of rank ``< k`` (rank 0 is the
  first maximum). ``k = 0`` or ``k >= V`` keeps all.
* ``TopP(p, tau)``: temperature, then keep token ``x`` iff the mass strictly
  ahead of it in the ranking, ``A(x)``, is below ``(p + TOP_P_SLACK) * T``, where
  ``T`` is the mass of the tokens kept so far, both at the current scale (``p <=
  0``: only the first token). ``A`` and ``T`` are the sums of :func:`mass`, added
  in one fixed order (:class:`Layout`), so the fast
  sampler decides every token exactly as this definition does.
* ``Greedy()``, or a greedy temperature anywhere: only the first maximum.

The distribution is ``w`` on the kept prefix, renormalised. The definition is
computed here with a sort, for clarity; :func:`jaxsample.sample` draws from it
without one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._strategies import GREEDY_TAU, Greedy, Strategy, TopK, TopP, prefix_parts

#: Masses ahead of a token within this fraction of the total above ``p`` still keep it.
TOP_P_SLACK = 1e-6
#: Blocks of the summation layout; also the most vocabulary shards a row may span.
BLOCKS = 16
#: Slices per block: a column of the layout adds one token of each slice.
SLICES = 16
#: The layout's width is the vocabulary rounded up to a multiple of this.
VOCAB_MULTIPLE = BLOCKS * SLICES
#: Slices folded per round of the summing loop (the others are rounds).
UNROLL = 2


def where(c: Any, a: Any, b: Any) -> jax.Array:
    """``jnp.where(c, a, b)`` traced as one ``lax.select``: no nested ``jit`` to trace and lower.

    ``a`` and ``b`` are arrays or scalars of one result type (``jnp.result_type``);
    all three broadcast as in NumPy. The sampler core calls it often, so its
    first compile is shorter.
    """
    dtype = jnp.result_type(a, b)
    shape = jnp.broadcast_shapes(jnp.shape(c), jnp.shape(a), jnp.shape(b))

    def full(t: Any, kind: Any) -> jax.Array:
        a: jax.Array = lax.convert_element_type(t, kind)
        if a.shape == shape:
            return a
        return lax.broadcast_in_dim(a, shape, tuple(range(len(shape) - a.ndim, len(shape))))

    return lax.select(full(c, jnp.bool_), full(a, dtype), full(b, dtype))


def per_row(value: Any, lead: tuple[int, ...], dtype: Any) -> jax.Array:
    """A parameter broadcast against the leading axes ``lead`` of the logits, as ``[n]``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype), lead).reshape(-1)


def row_top(x: jax.Array, axis: str | None = None) -> jax.Array:
    """The maximum of each row of float32 ``x`` ``[n, V]`` ignoring NaN: ``[n]``.

    One pass over ``x``; a second, without NaN, only when some row holds a NaN.
    With a mesh ``axis``, ``x`` is a shard of the row and the maximum is over all.
    """
    top = jnp.max(x, axis=-1)
    out: jax.Array = lax.cond(
        jnp.any(jnp.isnan(top)),
        lambda: jnp.max(where(jnp.isnan(x), -jnp.inf, x), axis=-1),
        lambda: top,
    )
    if axis is None:
        return out
    whole_top: jax.Array = lax.pmax(out, axis)  # type: ignore[no-untyped-call]
    return whole_top


def clean(x: jax.Array, top: jax.Array) -> jax.Array:
    """The bad-input rules, elementwise, given the rows' :func:`row_top` (broadcast).

    NaN becomes ``-inf``; a row holding ``+inf`` keeps only its ``+inf`` entries (as
    0); a row with no usable entry becomes all 0 (uniform); ``-0.0`` becomes 0.
    """
    z = where(jnp.isnan(x), -jnp.inf, x)
    z = where(top == jnp.inf, where(z == jnp.inf, 0.0, -jnp.inf), z)
    # (A select, not ``+ 0.0``, makes -0.0 into 0: XLA folds ``x + 0.0`` to ``x``.)
    out: jax.Array = where((top == -jnp.inf) | (z == 0.0), jnp.float32(0.0), z)
    return out


def clean_top(top: jax.Array) -> jax.Array:
    """The row maximum after :func:`clean` (finite): ``top``, or 0 for an ``inf`` or empty row."""
    out: jax.Array = where(jnp.isfinite(top) & (top != 0.0), top, jnp.float32(0.0))
    return out


def sanitise(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Float32 logits ``[n, V]`` with the bad-input rules applied, and their row maxima ``[n]``."""
    x = x.astype(jnp.float32)
    top = row_top(x)
    return clean(x, top[:, None]), clean_top(top)


def inverse_temperature(tau: jax.Array) -> jax.Array:
    """``1 / tau`` as float32, and 1 where ``tau`` is greedy (``tau <= GREEDY_TAU``, NaN)."""
    t = jnp.asarray(tau, jnp.float32)
    return where(t > GREEDY_TAU, 1.0 / where(t > GREEDY_TAU, t, 1.0), jnp.float32(1.0))


def weights(z: jax.Array, m: jax.Array, s: jax.Array) -> jax.Array:
    """``exp((z - m) * s)``, 0 at ``-inf`` (``s = 0`` is ``tau = inf``); ``m``, ``s`` broadcast."""
    return where(z > -jnp.inf, jnp.exp((z - m) * s), jnp.float32(0.0))


def ahead(z: jax.Array, index: jax.Array, value: jax.Array, pivot: jax.Array) -> jax.Array:
    """Whether each token ``(z, index)`` ranks strictly ahead of the pivot ``(value, pivot)``.

    Ahead means a larger logit, or the same logit and a lower index; the tokens a
    kept prefix ending at token ``x`` holds are those ahead of ``(z_x, x + 1)``.
    """
    return (z > value) | ((z == value) & (index < pivot))


@dataclasses.dataclass(frozen=True)
class Layout:
    """The fixed order in which the weights of a row are summed, and which part of it is here.

    The layout pads the vocabulary of ``vocab`` tokens to ``width``, the next
    multiple of ``VOCAB_MULTIPLE``, and cuts it into ``BLOCKS`` blocks of ``block``
    consecutive tokens; each block into ``SLICES`` slices of ``column`` tokens.
    Column ``j`` of block ``b`` holds the tokens ``b * block + g * column + j``
    (``g < SLICES``), added slice after slice; a block's sum adds its columns
    in chunks (:func:`fixed_sum`), and the row's total adds the ``BLOCKS`` block
    sums in order. Tokens ``>= vocab`` are absent (weight 0, never drawn).

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

    def offset(self) -> jax.Array:
        """Id of the first token held here (int32 scalar)."""
        if self.axis is None:
            return jnp.zeros((), jnp.int32)
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
    """The entries of the last axis of ``a`` added left to right, with elementwise adds."""
    parts = lax.split(a, (1,) * a.shape[-1], a.ndim - 1)
    total = parts[0]
    for part in parts[1:]:
        total = lax.add(total, part)
    return total.reshape(a.shape[:-1])


def chunk_sums(a: jax.Array) -> jax.Array:
    """Sums of the chunks of ``SLICES`` consecutive entries of the last axis of ``a``.

    The last chunk is padded with 0; each sum adds its entries left to right with
    explicit elementwise adds, which XLA neither reorders nor splits, so the same
    inputs give the same bits in every program. Returns ``[..., ceil(size / SLICES)]``.
    """
    size = a.shape[-1]
    chunks = -(-size // SLICES)
    a = lax.pad(
        a, jnp.zeros((), a.dtype), [(0, 0, 0)] * (a.ndim - 1) + [(0, chunks * SLICES - size, 0)]
    )
    return _add_along(a.reshape(*a.shape[:-1], chunks, SLICES))


def fixed_sum(a: jax.Array) -> jax.Array:
    """Sum the last axis of ``a`` in one fixed order: explicit adds, left to right.

    More than ``SLICES`` entries are summed in chunks (:func:`chunk_sums`), then
    the chunks' sums the same way; a chain of adds is one fused loop.
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
            a = a[:, first * size : (first + count) * size]
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
        index = jnp.asarray(ids.astype(np.int32)) + (g * column + layout.offset())
        out = value(*parts, index)
        outs = out if many else (out,)
        # Tokens past the vocabulary read as the identity (none in a whole span of an
        # unsharded row, which is static).
        if (first + count) * size > layout.vocab or layout.axis is not None:
            outs = tuple(
                where(index < layout.vocab, o, i) for o, i in zip(outs, inits, strict=True)
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
    totals = lax.fori_loop(0, SLICES, body, varying_like(start, *arrays), unroll=UNROLL)
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
    return sums_of(layout_reduce(jnp.add, 0.0, weight, layout, *arrays, lead=lead), layout)


def sums_of(columns: jax.Array, layout: Layout) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Column sums ``[n, ..., blocks, column]`` with their chunk sums and all block sums."""
    chunks = chunk_sums(columns)
    return columns, chunks, layout.gather(fixed_sum(chunks))


def mass(w: jax.Array, layout: Layout | None = None) -> jax.Array:
    """The total of weights ``[n, V]`` (>= 0), added in the order of ``layout`` (default: whole)."""
    lay = whole(w.shape[-1]) if layout is None else layout
    return fixed_sum(block_sums(lambda v, _: v, lay, w)[2])


def first_argmax(z: jax.Array) -> jax.Array:
    """Index of the first maximum of each row of ``z`` ``[n, V]``: int32 ``[n]``."""
    return jnp.argmax(z, axis=-1).astype(jnp.int32)


def first_max_index(x: jax.Array, top: jax.Array, layout: Layout | None = None) -> jax.Array:
    """:func:`first_argmax` of ``clean(x, top)`` from one vectorised pass: int32 ``[n]``.

    ``x`` float32 ``[n, local]`` and its :func:`row_top` ``[n]``: the lowest index
    whose cleaned logit equals the cleaned row maximum (over every shard of
    ``layout``).
    """
    lay = whole(x.shape[-1]) if layout is None else layout
    m = clean_top(top)[:, None, None]

    def hit(v: jax.Array, index: jax.Array) -> jax.Array:
        return where(clean(v, top[:, None, None]) == m, index, lay.vocab)

    first = jnp.min(layout_reduce(jnp.minimum, lay.vocab, hit, lay, x), axis=(-2, -1))
    return lay.across(lax.pmin, first)


def _token_index(z: jax.Array) -> jax.Array:
    return lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)


def _ranks(z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(order, rank)`` of the ranking: ``order[r]`` is the token of rank ``r``."""
    order = jnp.argsort(-z, axis=-1, stable=True).astype(jnp.int32)
    rows = lax.broadcasted_iota(jnp.int32, z.shape, 0)
    rank = jnp.zeros_like(order).at[rows, order].set(_token_index(z))
    return order, rank


def nucleus_limit(p: jax.Array, total: jax.Array) -> jax.Array:
    """The bound on the mass ahead for top-p: ``(p + TOP_P_SLACK) * T``; 0.5 for ``p <= 0``.

    Every token but the first has the first token's weight (1) ahead of it, so
    0.5 keeps only the first.
    """
    return where(p > 0, (p + jnp.float32(TOP_P_SLACK)) * total, jnp.float32(0.5))


def _nucleus(z: jax.Array, w: jax.Array, limit: jax.Array) -> jax.Array:
    """The kept prefix of top-p: tokens whose mass ahead (:func:`mass` of ``w``) is below ``limit``.

    The mass ahead grows along the ranking, so the last kept rank is found by a
    binary search over it. Returns bool ``[n, V]``.
    """
    n, vocab = z.shape
    order, _ = _ranks(z)
    index = _token_index(z)

    def kept(r: jax.Array) -> jax.Array:
        x = jnp.take_along_axis(order, r[:, None], axis=-1)
        zx = jnp.take_along_axis(z, x, axis=-1)
        return mass(where(ahead(z, index, zx, x), w, 0.0)) < limit

    def step(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        lo, hi = bounds  # rank lo is kept, rank hi (or V) is not
        mid = (lo + hi) // 2
        ok = kept(jnp.minimum(mid, vocab - 1))
        return where(ok, mid, lo), where(ok, hi, mid)

    start = varying_like(
        (jnp.zeros((n,), jnp.int32), jnp.full((n,), vocab, jnp.int32)), z, w, limit
    )
    last, _ = lax.fori_loop(0, max(1, math.ceil(math.log2(vocab + 1))), step, start)
    x = jnp.take_along_axis(order, last[:, None], axis=-1)
    return ahead(z, index, jnp.take_along_axis(z, x, axis=-1), x + 1)


def prefix_state(
    z: jax.Array, parts: Sequence[Strategy], lead: tuple[int, ...]
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Apply built-in ``parts`` to sanitised ``z`` ``[n, V]``: ``(s, keep, greedy)``.

    ``lead`` are the leading axes the parameters broadcast against (``n`` rows).

    ``s`` float32 ``[n]`` the final inverse temperature, ``keep`` bool ``[n, V]`` the
    kept prefix (before the greedy rule), ``greedy`` bool ``[n]``.
    """
    n, vocab = z.shape
    m = jnp.max(z, axis=-1, keepdims=True)  # as sanitise computes it
    s = jnp.ones((n,), jnp.float32)
    greedy = jnp.zeros((n,), bool)
    keep = jnp.ones(z.shape, bool)
    for part in parts:
        if isinstance(part, Greedy):
            greedy = jnp.ones((n,), bool)
            continue
        tau = per_row(part.tau, lead, jnp.float32)  # type: ignore[attr-defined]
        greedy = greedy | ~(tau > GREEDY_TAU)
        s = s * inverse_temperature(tau)
        if isinstance(part, TopK):
            k = per_row(part.k, lead, jnp.int32)
            if part.k_max is not None:
                k = jnp.minimum(k, part.k_max)
            _, rank = _ranks(z)
            keep = keep & ((rank < k[:, None]) | ~((k > 0) & (k < vocab))[:, None])
        elif isinstance(part, TopP):
            w = where(keep, weights(z, m, s[:, None]), 0.0)
            p = per_row(part.p, lead, jnp.float32)
            keep = keep & _nucleus(z, w, nucleus_limit(p, mass(w)))
    return s, keep, greedy


def prefix_log_weights(z: jax.Array, parts: Sequence[Strategy]) -> jax.Array:
    """Log-weights ``[..., V]`` of a run of built-in parts on sanitised logits ``z``."""
    rows = z.reshape(-1, z.shape[-1])
    s, keep, greedy = prefix_state(rows, parts, z.shape[:-1])
    first = _token_index(rows) == first_argmax(rows)[:, None]
    keep = where(greedy[:, None], first, keep)
    m = jnp.max(rows, axis=-1, keepdims=True)
    scaled = where(rows > -jnp.inf, (rows - m) * s[:, None], -jnp.inf)
    return where(keep, scaled, -jnp.inf).reshape(z.shape)


def chain_log_weights(z: jax.Array, parts: Sequence[Strategy], shift: bool = True) -> jax.Array:
    """Log-weights of a chain: each maximal run of built-in parts as one prefix state.

    A part of another type receives the previous log-weights as its logits (with
    the row maximum subtracted when ``shift``, which changes no distribution; a
    part whose rule reads the sign of a logit needs them unshifted).
    """
    run: list[Strategy] = []
    for part in (*parts, None):
        sub = None if part is None else prefix_parts(part)
        if sub is not None:
            run.extend(sub)
            continue
        if run:
            z = prefix_log_weights(z, run)
            run = []
        if part is not None:
            z = part.log_weights(z - jnp.max(z, axis=-1, keepdims=True) if shift else z)
    return z


__all__ = [
    "BLOCKS",
    "SLICES",
    "TOP_P_SLACK",
    "VOCAB_MULTIPLE",
    "Layout",
    "ahead",
    "block_sums",
    "chain_log_weights",
    "chunk_sums",
    "clean",
    "clean_top",
    "first_argmax",
    "first_max_index",
    "fixed_sum",
    "inverse_temperature",
    "layout_reduce",
    "mass",
    "nucleus_limit",
    "per_row",
    "prefix_log_weights",
    "prefix_state",
    "row_top",
    "sanitise",
    "sums_of",
    "varying_like",
    "weights",
    "where",
    "whole",
]
