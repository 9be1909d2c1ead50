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
computed here with a sort, for clarity; :func:`jaxsample.sample` draws from it
without one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxsample.samplers._layout import mass, varying_like, where
from jaxsample.samplers._strategies import GREEDY_TAU, Greedy, Strategy, TopK, TopP, prefix_parts

#: Masses ahead of a token within this fraction of the total above ``p`` still keep it.
TOP_P_SLACK = 1e-6


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


def first_argmax(z: jax.Array) -> jax.Array:
    """Index of the first maximum of each row of ``z`` ``[n, V]``: int32 ``[n]``."""
    return jnp.argmax(z, axis=-1).astype(jnp.int32)


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
    "TOP_P_SLACK",
    "ahead",
    "chain_log_weights",
    "clean",
    "clean_top",
    "first_argmax",
    "inverse_temperature",
    "nucleus_limit",
    "per_row",
    "prefix_log_weights",
    "prefix_state",
    "row_top",
    "sanitise",
    "weights",
]
