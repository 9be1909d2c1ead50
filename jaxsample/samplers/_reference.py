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
  in one fixed order (:class:`~._layout.Layout`), so the fast
  sampler decides every token exactly as this definition does.
* ``Greedy()``, or a greedy temperature anywhere: only the first maximum.

The distribution is ``w`` on the kept prefix, renormalised. The definition is
computed here in the plainest exact way that needs no sort (XLA sorts a float
row slowly on a CPU): since the mass ahead grows along the ranking, the end of
a kept prefix is found by bisection (:func:`kept_prefix`), one pass over the
row per bit of a key. :func:`jaxsample.sample` draws from it with a few passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._layout import (
    block_sums,
    both,
    either,
    eq,
    fixed_sum,
    ge,
    gt,
    lt,
    mass,
    mul,
    ne,
    sub,
    tuning,
    varying_like,
    where,
    whole,
)
from jaxsample.samplers._strategies import GREEDY_TAU, Greedy, Strategy, TopK, TopP, prefix_parts

#: Masses ahead of a token within this fraction of the total above ``p`` still keep it.
TOP_P_SLACK = 1e-6


def per_row(value: Any, lead: tuple[int, ...], dtype: Any) -> jax.Array:
    """A parameter broadcast against the leading axes ``lead`` of the logits, as ``[n]``."""
    return jnp.broadcast_to(jnp.asarray(value, dtype), lead).reshape(-1)


def nan_safe(reduce: Any, x: jax.Array, flagged: Any) -> Any:
    """``reduce(x)`` of max reductions, with NaN read as ``-inf``.

    XLA's max reductions on CPU do not propagate NaN, and next to a NaN they may
    return less than the row's maximum, so ``flagged(x)`` gives ``reduce(x)``
    and whether some row holds a NaN, in one pass (see :func:`max_and_nan`);
    only when there is one is it formed again from ``x`` with NaN as ``-inf``.
    Under a tuning with ``nan_in_pass`` (:class:`~._layout.Tuning`) it is formed
    once, with NaN as ``-inf``.
    """

    def without_nan() -> Any:
        return reduce(where(_isnan(x), -jnp.inf, x))

    if tuning().nan_in_pass:
        return without_nan()
    plain, bad = flagged(x)
    return lax.cond(bad, without_nan, lambda: plain)


def max_and_nan(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The maxima along the last axis of ``a`` and whether each of them met a NaN.

    One variadic reduction of ``(a, isnan(a))`` (max, or): on XLA's CPU backend
    it reads ``a`` once and runs faster than its plain max reduction. A maximum
    is exact where no NaN was met; where one was, it is formed again
    (:func:`nan_safe`). Returns float32 and bool arrays of ``a``'s shape less the
    last axis.
    """

    def combine(a: tuple[jax.Array, jax.Array], b: tuple[jax.Array, jax.Array]) -> Any:
        return lax.max(a[0], b[0]), lax.bitwise_or(a[1], b[1])

    init = (jnp.float32(-jnp.inf), jnp.bool_(False))
    top, nan = lax.reduce((a, _isnan(a)), init, combine, (a.ndim - 1,))
    return top, nan


def _isnan(x: jax.Array) -> jax.Array:
    """``jnp.isnan(x)`` of float ``x``, as the one comparison it is (``x != x``)."""
    return lax.ne(x, x)


def row_top(x: jax.Array, axis: str | None = None) -> jax.Array:
    """The maximum of each row of float32 ``x`` ``[n, V]`` ignoring NaN: ``[n]``.

    One pass for the maximum and a NaN flag (:func:`nan_safe`); one more, without
    NaN, only when some row holds a NaN. Both are plain reductions, which XLA
    partitions over a sharded vocabulary without gathering the rows. With a mesh
    ``axis``, ``x`` is a shard of the row and the maximum is over all.
    """

    def flagged(v: jax.Array) -> tuple[jax.Array, jax.Array]:
        top, nan = max_and_nan(v)
        return top, jnp.any(nan)

    top: jax.Array = nan_safe(lambda v: jnp.max(v, axis=-1), x, flagged)
    if axis is not None:
        top = lax.pmax(top, axis)  # type: ignore[no-untyped-call]
    return top


def clean(x: jax.Array, top: jax.Array) -> jax.Array:
    """The bad-input rules, elementwise, given the rows' :func:`row_top` (broadcast).

    NaN becomes ``-inf``; a row holding ``+inf`` keeps only its ``+inf`` entries (as
    0); a row with no usable entry becomes all 0 (uniform); ``-0.0`` becomes 0.
    """
    z = where(_isnan(x), -jnp.inf, x)
    z = where(eq(top, jnp.inf), where(eq(z, jnp.inf), 0.0, -jnp.inf), z)
    # (A select, not ``+ 0.0``, makes -0.0 into 0: XLA folds ``x + 0.0`` to ``x``.)
    out: jax.Array = where(either(eq(top, -jnp.inf), eq(z, 0.0)), jnp.float32(0.0), z)
    return out


def clean_top(top: jax.Array) -> jax.Array:
    """The row maximum after :func:`clean` (finite): ``top``, or 0 for an ``inf`` or empty row."""
    out: jax.Array = where(both(lax.is_finite(top), ne(top, 0.0)), top, jnp.float32(0.0))
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
    return where(gt(z, -jnp.inf), lax.exp(mul(sub(z, m), s)), jnp.float32(0.0))


def logit_weights(x: jax.Array, top: jax.Array, s: jax.Array) -> jax.Array:
    """``weights(clean(x, top), clean_top(top), s)`` bit for bit, from the raw logits.

    ``x`` float32 ``[n, ...]``, ``top`` its :func:`row_top` and ``s`` the inverse
    temperatures, both broadcast against ``x``. The bad-input rules become
    per-row choices (a row holding ``+inf`` weighs its ``+inf`` entries 1, an
    empty row weighs every entry 1, NaN weighs 0), so each token costs one
    comparison and two selects around its exponential, not :func:`clean`'s seven.
    """
    finite = lax.is_finite(top)
    # Tokens with weight: above -inf, above the largest float in a row holding +inf.
    low = where(eq(top, jnp.inf), jnp.float32(np.finfo(np.float32).max), -jnp.inf)
    arg = where(finite, mul(sub(x, clean_top(top)), s), 0.0)
    return where(either(gt(x, low), eq(top, -jnp.inf)), lax.exp(arg), jnp.float32(0.0))


def logit_bounds(top: jax.Array, value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The pivot value :func:`logit_ahead` compares raw logits with, and its :func:`above`.

    In a row holding ``+inf`` the cleaned value 0 of its ``+inf`` entries reads as
    ``+inf``. Formed once per pivot, so a pass over the row reads two bounds per
    pivot and makes one comparison per token.
    """
    v = where(both(eq(top, jnp.inf), eq(value, 0.0)), jnp.inf, value)
    return v, above(v)


def logit_ahead(
    x: jax.Array,
    index: jax.Array,
    top: jax.Array,
    value: jax.Array,
    pivot: jax.Array,
    bounds: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array:
    """:func:`ahead` of the cleaned logits, compared on the raw ``x``, for tokens with weight.

    Where a token has weight the raw logits rank as the cleaned ones once an
    empty row (``top`` is ``-inf``) reads as zeros and the pivot as
    :func:`logit_bounds` gives it (``bounds``, when formed already). Tokens
    without weight may read either way. All arguments broadcast.
    """
    v, up = logit_bounds(top, value) if bounds is None else bounds
    return ge(where(eq(top, -jnp.inf), 0.0, x), where(lt(index, pivot), v, up))


#: The least positive normal float32: what follows 0 where denormals compare as 0.
_TINY = float(np.finfo(np.float32).tiny)


def above(value: jax.Array) -> jax.Array:
    """The least float ``b`` with ``z >= b`` exactly when ``z > value`` (float32, elementwise).

    The next float up, where it compares above ``value``; where it does not (XLA
    on a CPU compares denormals as 0, so next to 0 the next float up is the least
    normal one) the least normal float; NaN above ``+inf`` and NaN (nothing is ``>=`` it).
    The test runs in the program that compares, so it follows that platform's
    rule for denormals.
    """
    up = lax.nextafter(value, lax.full_like(value, jnp.inf))
    return where(gt(up, value), up, where(lt(value, jnp.inf), jnp.float32(_TINY), jnp.nan))


def ahead(z: jax.Array, index: jax.Array, value: jax.Array, pivot: jax.Array) -> jax.Array:
    """Whether each token ``(z, index)`` ranks strictly ahead of the pivot ``(value, pivot)``.

    Ahead means a larger logit, or the same logit and a lower index; the tokens a
    kept prefix ending at token ``x`` holds are those ahead of ``(z_x, x + 1)``.
    Formed as one comparison with a bound chosen by the index: ``z >= value``
    below ``pivot``, ``z >= above(value)`` from it on (``z > value``); NaN is
    ahead of nothing.
    """
    return ge(z, where(lt(index, pivot), value, above(value)))


def first_argmax(z: jax.Array) -> jax.Array:
    """Index of the first maximum of each row of ``z`` ``[n, V]``: int32 ``[n]``."""
    return jnp.argmax(z, axis=-1).astype(jnp.int32)


def _token_index(z: jax.Array) -> jax.Array:
    return lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)


def descending_key(z: jax.Array) -> jax.Array:
    """uint32 keys that rank float32 ``z`` (no NaN, no -0.0) descending: the ranking's order.

    The bits of a float, with the sign bit flipped for a positive value and every
    bit for a negative one, order as the values; the complement reverses them.
    """
    b = lax.bitcast_convert_type(z, jnp.uint32)
    ascending = where(lax.shift_right_logical(b, np.uint32(31)) == 1, ~b, b | np.uint32(1 << 31))
    return ~ascending


def kept_prefix(key: jax.Array, w: jax.Array, bound: jax.Array) -> jax.Array:
    """The tokens whose weight ahead in the ranking by ``key`` is below ``bound``: bool ``[n, V]``.

    The ranking orders the tokens of a row by uint32 ``key`` ascending, ties by
    lowest index; the weight ahead of a token is the sum of ``w`` (>= 0, ``[n,
    V]``) over the tokens ranked before it, added in the order of :func:`mass`.
    It grows along the ranking, so the kept tokens are a prefix of it, found
    without a sort: bit by bit from the top, the largest key ``U`` whose lower
    keys weigh less than ``bound`` (32 passes over the row: every token keyed
    below ``U`` is kept, none above), then the largest id ``I`` with the tokens
    ahead of ``(U, I)`` below ``bound`` (``ceil(log2(V + 1))`` passes: the tokens
    keyed ``U`` are kept up to ``I``). ``bound`` ``[n]``; one that no weight is
    below (``<= 0``, NaN) keeps nothing.
    """
    n, vocab = key.shape
    layout = whole(vocab)

    def inside(u: jax.Array, i: jax.Array) -> jax.Array:
        def weight(k: jax.Array, q: jax.Array, index: jax.Array) -> jax.Array:
            u3, i3 = u[:, None, None], i[:, None, None]
            return where((k < u3) | ((k == u3) & (index < i3)), q, 0.0)

        return fixed_sum(block_sums(weight, layout, key, w)[2]) < bound

    def largest(bits: int, start: jax.Array, test: Any) -> jax.Array:
        """The largest value below ``2 ** bits`` passing the monotone ``test``, bit by bit."""

        def step(j: jax.Array, v: jax.Array) -> jax.Array:
            one = jnp.ones((), v.dtype)
            grown = v | lax.shift_left(one, jnp.asarray(bits - 1 - j, v.dtype))
            return where(test(grown), grown, v)

        found: jax.Array = lax.fori_loop(0, bits, step, varying_like(start, key, w, bound))
        return found

    index_bits = max(1, math.ceil(math.log2(vocab + 1)))
    u = largest(32, jnp.zeros((n,), jnp.uint32), lambda v: inside(v, jnp.zeros((n,), jnp.int32)))
    last = largest(index_bits, jnp.zeros((n,), jnp.int32), lambda v: inside(u, v))
    index = _token_index(key)
    return (key < u[:, None]) | ((key == u[:, None]) & (index <= last[:, None]))


def nucleus_limit(p: jax.Array, total: jax.Array) -> jax.Array:
    """The bound on the mass ahead for top-p: ``(p + TOP_P_SLACK) * T``; 0.5 for ``p <= 0``.

    Every token but the first has the first token's weight (1) ahead of it, so
    0.5 keeps only the first.
    """
    return where(p > 0, (p + jnp.float32(TOP_P_SLACK)) * total, jnp.float32(0.5))


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
            ones = jnp.ones(z.shape, jnp.float32)
            ranked = kept_prefix(descending_key(z), ones, k.astype(jnp.float32))
            keep = keep & (ranked | ~((k > 0) & (k < vocab))[:, None])
        elif isinstance(part, TopP):
            w = where(keep, weights(z, m, s[:, None]), 0.0)
            p = per_row(part.p, lead, jnp.float32)
            keep = keep & kept_prefix(descending_key(z), w, nucleus_limit(p, mass(w)))
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
    "TOP_P_SLACK",
    "ahead",
    "chain_log_weights",
    "clean",
    "clean_top",
    "first_argmax",
    "inverse_temperature",
    "logit_ahead",
    "logit_weights",
    "nucleus_limit",
    "per_row",
    "prefix_log_weights",
    "prefix_state",
    "row_top",
    "sanitise",
    "weights",
]
