"""Drawing tokens and computing the exact distribution a strategy samples from."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._filters import (
    _top_positions,
    _top_window_grouped,
    argmax_from_chunks,
    chunk_max_and_mass,
    chunk_maxima,
    first_argmax,
    fold_slices,
    group_maxima,
    nucleus_size,
    per_row,
    prefix_sums,
)
from jaxsample.samplers._random import row_uniforms
from jaxsample.samplers._strategies import (
    GREEDY_TAU,
    Chain,
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    inverse_temperature,
)

__all__ = ["entropy", "probs", "sample", "valid_rows"]

def _check_logits(logits: jax.Array) -> jax.Array:
    """Validate the shape and dtype of ``logits``; the float32 cast happens under ``jit``."""
    x = logits if isinstance(logits, jax.Array) else jnp.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    kind = np.dtype(x.dtype).kind
    if kind not in "fiu" and not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"logits must be real numbers, got dtype {x.dtype}")
    return x


def valid_rows(logits: jax.Array) -> jax.Array:
    """Report the rows that :func:`sample` can draw from as given.

    A row is valid iff it holds no NaN and at least one logit that is not
    ``-inf``. Invalid rows are still sampled (see :func:`sample`); use this mask to
    detect and discard them.

    Args:
        logits: ``[..., V]`` real logits, any float dtype.

    Returns:
        bool ``[...]``.

    Raises:
        ValueError: if ``logits`` is not ``[..., V]`` with ``V >= 1`` or not real.
    """
    valid: jax.Array = _valid_rows(_check_logits(logits))
    return valid


@jax.jit
def _valid_rows(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return ~jnp.any(jnp.isnan(x), axis=-1) & jnp.any(x > -jnp.inf, axis=-1)


def _check_strategy(strategy: Strategy) -> None:
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a jaxsample strategy, got {strategy!r}")


def _sanitise(x: jax.Array) -> jax.Array:
    """Cast to float32 and remove NaN and ``+inf`` (the rules are in :func:`sample`).

    NaN becomes ``-inf``; a row holding ``+inf`` keeps only its ``+inf`` entries (as
    0); a row with no usable entry becomes all 0 (uniform). A finite row maximum
    means the row has no NaN (``max`` propagates NaN), no ``+inf`` and a finite
    entry. The row flags are computed under ``lax.cond`` only
    when some row is not clean; the rest is elementwise, so it fuses with what
    follows.
    """
    z = x.astype(jnp.float32)
    clean = jnp.all(jnp.isfinite(jnp.max(z, axis=-1)))
    flag_shape = (*z.shape[:-1], 1)

    def flags(_: None) -> tuple[jax.Array, jax.Array]:
        no_nan = jnp.where(jnp.isnan(z), -jnp.inf, z)
        return (
            jnp.any(jnp.isposinf(z), axis=-1, keepdims=True),
            jnp.any(no_nan > -jnp.inf, axis=-1, keepdims=True),
        )

    def clean_flags(_: None) -> tuple[jax.Array, jax.Array]:
        return jnp.zeros(flag_shape, bool), jnp.ones(flag_shape, bool)

    has_pos_inf, usable = lax.cond(clean, clean_flags, flags, None)
    z = jnp.where(jnp.isnan(z), -jnp.inf, z)
    z = jnp.where(has_pos_inf, jnp.where(jnp.isposinf(z), 0.0, -jnp.inf), z)
    return jnp.where(usable, z, jnp.float32(0.0))


def _log_weights(logits: jax.Array, strategy: Strategy) -> jax.Array:
    return strategy.log_weights(_sanitise(logits))


def _max_is_zero(strategy: Strategy) -> bool:
    """Whether the strategy's log-weights have row maximum exactly 0 (static).

    The built-in strategies subtract the row maximum before scaling and never
    remove the maximum, so ``exp(log_weights)`` needs no second max pass.
    """
    if isinstance(strategy, Chain):
        return bool(strategy.parts) and _max_is_zero(strategy.parts[-1])
    return type(strategy) in (Greedy, Temperature, TopK, TopP)


def probs(logits: jax.Array, strategy: Strategy) -> jax.Array:
    r"""The exact distribution that :func:`sample` draws from.

    :math:`\pi = \mathrm{softmax}(s(z))` where :math:`s` is the strategy's
    log-weight map applied to the sanitised float32 logits :math:`z`.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32).
        strategy: a :class:`Strategy`; its parameters broadcast against ``[...]``.

    Returns:
        float32 ``[..., V]``: each row sums to 1 (to float32 rounding) and is
        exactly 0 where the strategy removed a token. Rows with bad logits follow
        the rules of :func:`sample`.

    Raises:
        ValueError: for a bad logits shape or dtype, or a non-strategy.
    """
    _check_strategy(strategy)
    out: jax.Array = _probs(_check_logits(logits), strategy)
    return out


@jax.jit
def _probs(x: jax.Array, strategy: Strategy) -> jax.Array:
    lw = _log_weights(x.astype(jnp.float32), strategy)
    if not _max_is_zero(strategy):  # built-in strategies: the row maximum is 0 already
        lw = lw - jnp.max(lw, axis=-1, keepdims=True)
    w = jnp.exp(lw)
    return w / _sum_last(w)[..., None]


def _check_key(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """Validate ``key``: a typed key (legacy uint32 keys are wrapped), scalar or ``lead``."""
    k = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        if k.dtype != jnp.uint32 or k.shape[-1:] != (2,):
            raise ValueError(
                "key must be a jax.random.key (or a legacy uint32 PRNGKey), "
                f"got dtype {k.dtype} and shape {k.shape}"
            )
        k = jax.random.wrap_key_data(k)
    if k.shape not in ((), lead):
        raise ValueError(
            f"key must be a single key or one key per row with shape {lead}, got shape {k.shape}"
        )
    return k


def _row(a: jax.Array, ndim: int) -> jax.Array:
    """Reshape per-row values ``[n]`` or ``[n, 1]`` to broadcast against ``ndim`` axes."""
    return a.reshape(a.shape[0], *(1,) * (ndim - 1))


def _pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse CDF on one level: the entry of ``w`` ``[n, m]`` (>= 0) the mass ``target`` hits.

    Returns ``(j, cum)``: int32 ``[n]``, the first entry with positive weight whose
    prefix sum exceeds ``target`` ``[n]`` (the last positive entry when rounding
    leaves none), and the prefix sums ``[n, m]``. An entry of weight 0 is never
    returned unless the whole row is 0 (then 0).
    """
    m = w.shape[-1]
    cum = prefix_sums(w)
    iota = lax.broadcasted_iota(jnp.int32, w.shape, 1)
    positive = w > 0
    first = jnp.min(jnp.where(positive & (cum > target[:, None]), iota, m), axis=-1)
    last = jnp.max(jnp.where(positive, iota, 0), axis=-1)
    return jnp.where(first < m, first, last), cum


def _target(u: jax.Array, total: jax.Array) -> jax.Array:
    """``u * total``, kept strictly below ``total`` (``u`` in [0, 1))."""
    return jnp.minimum(u * total, jnp.nextafter(total, jnp.float32(0.0)))


#: Tokens per column of the interleaved layout used by the weight passes.
_FOLD = 16
#: Columns per block of the inverse CDF's first level.
_BLOCK_COLUMNS = 16

Weight = Callable[[jax.Array], jax.Array]


def _columns(vocab: int) -> int:
    """Columns ``q`` of the interleaved layout: ``_FOLD * q >= vocab``, whole blocks of columns."""
    return _BLOCK_COLUMNS * -(-vocab // (_FOLD * _BLOCK_COLUMNS))


def _column_sums(x: jax.Array, weight: Weight) -> jax.Array:
    """Sums of ``weight(x)`` over interleaved columns: ``out[:, c] = sum_j weight(x)[:, c + j q]``.

    ``x`` is float32 ``[n, V]``, ``q = _columns(V)`` and ``j < _FOLD``; positions past
    ``V`` read ``-inf``, so ``weight`` must map ``-inf`` to 0. The sum is written as
    ``_FOLD`` adds of ``weight`` over contiguous slices (:func:`fold_slices`), so
    ``weight`` runs vectorised inside the pass. Returns float32 ``[n, q]``.
    """
    return fold_slices(x, _columns(x.shape[-1]), _FOLD, -jnp.inf, jnp.add, weight)


def _row_sums(a: jax.Array) -> jax.Array:
    """Sums over the last axis of ``a`` ``[..., m]`` as a contraction with ones.

    A dot does not absorb the producer of ``a`` (a reduction would, and then run
    the producer unvectorised on XLA:CPU), so ``a`` is computed once, vectorised.
    """
    ones = jnp.ones(a.shape[-1], a.dtype)
    return jnp.einsum("...m,m->...", a, ones, precision=lax.Precision.HIGHEST)


def _sum_last(a: jax.Array) -> jax.Array:
    """Sums over the last axis of float32 ``a`` ``[..., m]``, vectorised on XLA:CPU.

    For long rows, ``_FOLD`` adds of contiguous slices (:func:`fold_slices`, which
    takes in the producer of ``a``, e.g. an ``exp``) then :func:`_row_sums`; a
    plain reduction runs such producers unvectorised, and under ``vmap`` (a
    temperature sweep) stores more intermediates. Returns ``[...]``.
    """
    m = a.shape[-1]
    if m < _FOLD * _FOLD:
        out: jax.Array = jnp.sum(a, axis=-1)
        return out
    return _row_sums(fold_slices(a, -(-m // _FOLD), _FOLD, 0.0, jnp.add))


def _total(x: jax.Array, weight: Weight) -> jax.Array:
    """Row sums of ``weight(x)`` for ``x`` ``[n, V]``: float32 ``[n]``, in one vectorised pass.

    ``weight`` must map ``-inf`` to 0 (see :func:`_column_sums`). A ``weight`` that
    maps a slice ``[n, q]`` to ``[n, k, q]`` gives ``k`` sums per row, ``[n, k]``.
    """
    return _row_sums(_column_sums(x, weight))


def _inverse_cdf(x: jax.Array, weight: Weight, u: jax.Array) -> jax.Array:
    """Draw one index per row with one uniform each: inverse-CDF sampling, three levels.

    The weights are never stored. Token ``t = c + j q`` sits in column ``c``
    (:func:`_column_sums`, ``q`` columns of ``_FOLD`` tokens) and columns form
    blocks of ``_BLOCK_COLUMNS`` consecutive columns. ``weight`` is evaluated once
    over the row inside the pass that forms the column sums; the uniform picks a
    block from the prefix sums of the block sums, then a column of that block from
    its column sums, then a token of that column from the weights of its
    ``_FOLD`` tokens, recomputed from their gathered values. Any fixed order of the
    tokens gives the same distribution; a token of weight 0 is never drawn.

    Args:
        x: float32 ``[n, V]`` values handed to ``weight``.
        weight: elementwise weight map, >= 0 and 0 at ``-inf``, per-row parameters
            broadcast on the leading axis.
        u: float32 ``[n]`` uniforms in [0, 1).

    Returns:
        int32 ``[n]``.
    """
    n, vocab = x.shape
    q = _columns(vocab)
    columns = _column_sums(x, weight)
    blocks = _row_sums(columns.reshape(n, q // _BLOCK_COLUMNS, _BLOCK_COLUMNS))
    target = _target(u, jnp.sum(blocks, axis=-1))

    def descend(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The entry of ``w`` ``[n, m]`` the target hits, and the target left inside it."""
        j, cum = _pick(w, target)
        previous = jnp.take_along_axis(cum, jnp.maximum(j - 1, 0)[:, None], axis=-1)[:, 0]
        return j, target - jnp.where(j > 0, previous, 0.0)

    b, target = descend(blocks, target)
    cols = b[:, None] * _BLOCK_COLUMNS + lax.broadcasted_iota(jnp.int32, (1, _BLOCK_COLUMNS), 1)
    i, target = descend(jnp.take_along_axis(columns, cols, axis=-1), target)
    c = jnp.take_along_axis(cols, i[:, None], axis=-1)
    members = c + q * lax.broadcasted_iota(jnp.int32, (1, _FOLD), 1)
    inside = members < vocab
    values = jnp.take_along_axis(x, jnp.minimum(members, vocab - 1), axis=-1)
    j, _ = _pick(jnp.where(inside, weight(values), 0.0), target)
    return jnp.take_along_axis(members, j[:, None], axis=-1)[:, 0]


def sample(key: jax.Array, logits: jax.Array, strategy: Strategy) -> jax.Array:
    """Draw one token id per row of ``logits`` from ``probs(logits, strategy)``.

    The logits are cast to float32; the strategy maps them to log-weights; one
    uniform number per row selects a token by inverse-CDF sampling over
    ``exp(log-weights)``, so the draw follows :func:`probs` exactly and a token of
    probability 0 is never returned. :class:`Greedy` uses no randomness.

    Cost: rows with a finite maximum take a fast path for :class:`Greedy`,
    :class:`Temperature`, :class:`TopK` and :class:`TopP` (one pass for the maximum
    and, where needed, one fused ``exp`` pass; top-k and top-p draw among an exact
    candidate window); other rows and other strategies are drawn on the general
    path, a few rows at a time. Both draw from the same distribution, and each
    row's path depends on that row alone.

    Randomness: a single ``key`` with a batch ``[...]`` of rows gives row ``r`` (in
    row-major order) the key ``jax.random.fold_in(key, r)``; an array of keys of
    shape ``[...]`` gives each row its own key; with logits ``[V]`` the key is used
    as is. A row's token therefore depends only on its key, its logits and its
    parameters, never on the other rows of the batch.

    Bad logits never crash and always give an id in ``[0, V)``; other rows are
    unaffected:

    * NaN entries are removed (treated as ``-inf``) and the row is reported invalid
      by :func:`valid_rows`.
    * ``+inf`` entries: the row samples uniformly among its ``+inf`` entries (the
      limit of large logits).
    * A row with no usable logit (all ``-inf`` or NaN) samples uniformly over all
      ``V`` tokens and is reported invalid by :func:`valid_rows`.
    * Huge magnitudes are handled by subtracting each row's maximum first.

    Args:
        key: a ``jax.random.key`` (or legacy uint32 ``PRNGKey``), or one per row with
            shape ``logits.shape[:-1]``.
        logits: ``[..., V]`` real logits, any float dtype (bf16, fp16, fp32 ...).
        strategy: a :class:`Strategy`; parameter arrays broadcast against ``[...]``.

    Returns:
        int32 ``[...]`` token ids in ``[0, V)``.

    Raises:
        ValueError: for a bad logits shape or dtype, a key of the wrong shape or type,
            or a non-strategy.
    """
    _check_strategy(strategy)
    x = _check_logits(logits)
    ids: jax.Array = _sample(_check_key(key, x.shape[:-1]), x, strategy)
    return ids


def _general_draw(x: jax.Array, strategy: Strategy, u: jax.Array) -> jax.Array:
    """Draw for any strategy and any row: sanitise, log-weights, inverse CDF. ``x`` ``[n, V]``."""
    lw = _log_weights(x, strategy)
    # Built-in strategies: the row maximum of lw is 0, no second max pass.
    shift = jnp.zeros((x.shape[0], 1)) if _max_is_zero(strategy) else jnp.max(lw, -1, keepdims=True)
    return _inverse_cdf(lw, lambda v: jnp.exp(v - _row(shift, v.ndim)), u)


def _tempered(m: jax.Array, s: jax.Array) -> Weight:
    """The weight map ``exp((z - m) * s)`` with per-row ``m`` and ``s > 0`` (0 at ``-inf``).

    No select: XLA:CPU then fuses the map into the reduction that consumes it.
    """

    def weight(v: jax.Array) -> jax.Array:
        return jnp.exp((v - _row(m, v.ndim)) * _row(s, v.ndim))

    return weight


def _window_draw(indices: jax.Array, weights: jax.Array, u: jax.Array) -> jax.Array:
    """Inverse CDF over a candidate window: ``weights`` ``[n, W]`` of the tokens ``indices``."""
    cum = jnp.sum(weights, axis=-1)
    j, _ = _pick(weights, _target(u, cum))
    return jnp.take_along_axis(indices, j[:, None], axis=-1)[:, 0]


def _prefix_parts(strategy: Strategy) -> tuple[Strategy, ...] | None:
    """The parts of a strategy built only from the built-in strategies, else ``None``.

    Each built-in part keeps a prefix of one and the same token order (logit
    descending, index ascending), since temperature scaling preserves it: this is
    what lets the fast path evaluate a whole chain on one candidate window.
    """
    if type(strategy) in (Greedy, Temperature, TopK, TopP):
        return (strategy,)
    if type(strategy) is Chain:
        parts: list[Strategy] = []
        for part in strategy.parts:
            sub = _prefix_parts(part)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    return None


def _fast_draw(
    x: jax.Array,
    strategy: Strategy,
    u: jax.Array,
    lead: tuple[int, ...],
    *,
    nested: bool | None = None,
) -> tuple[jax.Array, jax.Array] | None:
    """Draw for the rows a fast path covers; ``None`` if no fast path exists for ``strategy``.

    The fast paths read the raw float32 logits ``x`` ``[n, V]`` of the rows whose
    maximum is finite (no NaN, no ``+inf``, some finite entry), where sanitising
    changes nothing, and draw from exactly the distribution of
    :func:`_general_draw`. They cover the built-in strategies and chains of them:

    * temperatures only: one pass for the row maximum ``m``, then one fused pass
      ``exp((z - m) * s)`` (``s`` the product of the inverse temperatures) into the
      inverse CDF's column sums (:func:`_inverse_cdf`);
    * with a truncation: one pass for the maxima of groups of 16 tokens, the
      exact candidate window of the first truncating part (``k_max`` for top-k,
      ``window`` for top-p), each part then shortening the kept prefix of that
      window, and the draw among the prefix. A top-p first in line also needs the
      row's total mass. By platform (``lax.platform_dependent``, or ``nested``
      when given): on a CPU, interleaved group maxima, the merged window of
      :func:`_top_window_grouped` and a second fused pass for the mass
      (:func:`_total`); elsewhere, consecutive chunks, whose maxima and mass come
      from one pass (:func:`chunk_max_and_mass`), and :func:`_top_positions`. No
      other pass over the row.

    ``nested``: ``None`` chooses by platform; ``True`` or ``False`` forces the
    non-CPU or the CPU selection (for tests).

    Returns:
        ``(ids, ok)``: int32 and bool ``[n]``; rows with ``ok`` false (bad logits, an
        infinite temperature, a disabled first truncation, a nucleus wider than the
        window) must be redrawn by :func:`_general_draw`.
    """
    parts = _prefix_parts(strategy)
    if parts is None:
        return None
    n, vocab = x.shape
    truncating = [p for p in parts if not isinstance(p, Temperature)]
    s = jnp.ones((n,), jnp.float32)
    greedy = jnp.zeros((n,), bool)

    def temper(tau: Any) -> None:
        nonlocal s, greedy
        t = per_row(tau, lead, jnp.float32)
        greedy = greedy | ~(t > GREEDY_TAU)
        s = s * inverse_temperature(t)

    if not truncating:
        for part in parts:
            temper(part.tau)  # type: ignore[attr-defined]
        m = jnp.max(x, axis=-1)
        ok = jnp.isfinite(m) & (s > 0) & jnp.isfinite(s)  # tau = inf: general path
        safe_m = jnp.where(ok, m, 0.0)
        drawn = _inverse_cdf(x, _tempered(safe_m, s), u)
        first = lax.cond(
            jnp.any(greedy),
            lambda: first_argmax(x),  # a bad row gets some id; it is redrawn
            lambda: jnp.zeros((n,), jnp.int32),
        )
        return jnp.where(greedy, first, drawn), ok

    head = truncating[0]
    if isinstance(head, TopK):
        width = vocab if head.k_max is None else min(head.k_max, vocab)
    elif isinstance(head, TopP):
        width = min(head.window, vocab)
    else:  # Greedy
        width = 1
    # A top-p head cuts by the row's total mass, at the scale in force at the head.
    head_scale: jax.Array | None = None
    if isinstance(head, TopP):
        head_scale = jnp.ones((n,), jnp.float32)
        for part in parts:  # temperatures, then the head
            tau = per_row(part.tau, lead, jnp.float32)  # type: ignore[attr-defined]
            head_scale = head_scale * inverse_temperature(tau)
            if part is head:
                break

    def on_cpu(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        gm = group_maxima(z)
        values, indices = _top_window_grouped(z, width, gm)
        mass = jnp.zeros((n,), jnp.float32)
        if head_scale is not None:
            top = jnp.max(values, axis=-1)
            mass = _total(z, _tempered(jnp.where(jnp.isfinite(top), top, 0.0), head_scale))
        # Read off outputs that XLA cannot fuse back into the pass that forms the
        # maxima (a reduction would, and run it unvectorised).
        return values, indices, _row_sums(gm), mass

    def elsewhere(z: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        if head_scale is None:
            cm, mass = chunk_maxima(z), jnp.zeros((n,), jnp.float32)
        else:
            cm, mass = chunk_max_and_mass(z, head_scale)
        values, indices = _top_positions(z, width, cm)
        return values, indices, jnp.sum(cm, axis=-1), mass

    # The window of a bad row is meaningless but harmless; the row is redrawn.
    if nested is None:
        selected = lax.platform_dependent(x, cpu=on_cpu, default=elsewhere)
    else:
        selected = (elsewhere if nested else on_cpu)(x)
    values, indices, spread, head_mass = selected
    # The row maximum is the window's first value. A NaN or +inf anywhere makes the
    # sum of the chunk maxima NaN or +inf (-inf entries alone leave it finite or
    # -inf).
    m = jnp.max(values, axis=-1)
    ok = jnp.isfinite(m) & ~jnp.isnan(spread) & (spread < jnp.inf)
    safe_m = jnp.where(ok, m, 0.0)
    slot = lax.broadcasted_iota(jnp.int32, values.shape, 1)
    kept = jnp.full((n, 1), width, jnp.int32)  # length of the kept prefix of the window
    for part in parts:
        if isinstance(part, Greedy):
            greedy = jnp.ones((n,), bool)
            continue
        temper(part.tau)  # type: ignore[attr-defined]
        if isinstance(part, TopK):
            k = per_row(part.k, lead, jnp.int32)
            active = (k > 0) & (k < vocab)
            cut = jnp.minimum(kept, jnp.clip(k, 1, width)[:, None])
            kept = jnp.where(active[:, None], cut, kept)
        elif isinstance(part, TopP):
            p = per_row(part.p, lead, jnp.float32)
            active = p < 1.0
            e = jnp.where(slot < kept, _tempered(safe_m, s)(values), 0.0)
            # The head's nucleus is cut by the row's total mass, a later part's by
            # the mass its predecessors kept.
            total = head_mass if part is head else jnp.sum(e, axis=-1)
            count, covered = nucleus_size(e / total[:, None], p)
            if part is head:
                ok = ok & (covered | greedy)
            kept = jnp.where(active[:, None], jnp.minimum(kept, count), kept)
        else:
            continue
        if part is head:
            ok = ok & (active | greedy)
    ok = ok & (s > 0) & jnp.isfinite(s)
    kept = jnp.where(greedy[:, None], 1, kept)
    weights = jnp.where(slot < kept, _tempered(safe_m, s)(values), 0.0)
    return _window_draw(indices, weights, u), ok


@jax.jit
def _sample(key: jax.Array, x: jax.Array, strategy: Strategy) -> jax.Array:
    x = x.astype(jnp.float32)
    lead, vocab = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, vocab)
    if isinstance(strategy, Greedy):  # static: no randomness needed
        maxima = chunk_maxima(rows)
        clean = jnp.all(jnp.isfinite(maxima))
        ids = lax.cond(
            clean,
            lambda: argmax_from_chunks(rows, maxima),
            lambda: first_argmax(_sanitise(rows)),
        )
        greedy_ids: jax.Array = ids.reshape(lead)
        return greedy_ids
    u = row_uniforms(key, lead)
    fast = _fast_draw(rows, strategy, u, lead)
    if fast is None:
        return _general_draw(rows, strategy, u).reshape(lead)
    ids, ok = fast
    drawn: jax.Array = _redraw(rows, strategy, u, lead, ids, ok).reshape(lead)
    return drawn


#: Rows redrawn together by one step of :func:`_redraw`: at least this many, and
#: more for short rows, up to about ``_REDRAW_ENTRIES`` logits per step.
_REDRAW_ROWS = 8
_REDRAW_ENTRIES = 1 << 18


def _redraw(
    x: jax.Array,
    strategy: Strategy,
    u: jax.Array,
    lead: tuple[int, ...],
    ids: jax.Array,
    ok: jax.Array,
) -> jax.Array:
    """Redraw the rows of ``x`` ``[n, V]`` with ``ok`` false on the general path.

    A loop over the failing rows (none in the common case), a block at a time
    (``_REDRAW_ROWS`` rows, more when rows are short: about ``_REDRAW_ENTRIES``
    logits), rather than the general path over the whole batch: the loop body needs
    working memory for a few rows, while a batched general branch, even when not
    taken, makes every call allocate its working memory (tens of MB at
    ``[32, 50257]``, which on a CPU costs about a row read per call). Each row's
    draw depends on that row alone, as before. ``strategy`` must hold only
    built-in parts, whose parameters broadcast against ``lead``.
    """
    n, vocab = x.shape
    block = min(max(_REDRAW_ROWS, _REDRAW_ENTRIES // vocab), n)
    params = jax.tree.map(lambda leaf: per_row(leaf, lead, jnp.asarray(leaf).dtype), strategy)
    order = jnp.arange(n, dtype=jnp.int32)

    def body(state: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        out, todo = state
        # The first `block` failing rows (rows past them, or not failing, fill up
        # the block and are left unchanged).
        score, rows = lax.top_k(jnp.where(todo, n - order, 0), block)
        take = score > 0
        one = jax.tree.map(lambda a: a[rows], params)
        tokens = _general_draw(x[rows], one, u[rows])
        out = out.at[rows].set(jnp.where(take, tokens, out[rows]))
        return out, todo.at[rows].set(todo[rows] & ~take)

    out, _ = lax.while_loop(lambda state: jnp.any(state[1]), body, (ids, ~ok))
    return out


def entropy(p: jax.Array, base: float = 2.0, axis: int = -1) -> jax.Array:
    r"""Shannon entropy :math:`H(p) = -\sum_i p_i \log_b p_i`, with :math:`0 \log 0 = 0`.

    Differentiable, also where some :math:`p_i = 0` (their terms contribute
    nothing to the gradient).

    Args:
        p: probabilities ``[..., V]`` (any float dtype; computed in float32). Rows
            are not renormalised.
        base: logarithm base; 2 gives bits (the default), ``math.e`` nats.
        axis: the axis that holds the distribution.

    Returns:
        float32 ``[...]``.

    Raises:
        ValueError: if ``base`` is not a positive number other than 1.
    """
    _check_base(base)
    q = jnp.asarray(p, jnp.float32)
    positive = q > 0
    plogp = jnp.where(positive, q * jnp.log(jnp.where(positive, q, 1.0)), 0.0)
    h: jax.Array = -_sum_last(jnp.moveaxis(plogp, axis, -1)) / jnp.float32(math.log(base))
    return h


def _check_base(base: float) -> None:
    if not base > 0 or base == 1:
        raise ValueError(f"base must be > 0 and != 1, got {base!r}")


def tempered_entropy(logits: jax.Array, tau: Any, base: float = 2.0) -> jax.Array:
    r"""``entropy(probs(logits, Temperature(tau)), base)`` without forming the distribution.

    With :math:`\ell_i = (z_i - \max_j z_j) / \tau` over the sanitised logits,
    :math:`w_i = e^{\ell_i}`, :math:`S = \sum_i w_i` and :math:`T = \sum_i w_i \ell_i`,
    the entropy is :math:`H = (\log S - T / S) / \log b` (since
    :math:`\log q_i = \ell_i - \log S`). Both sums come from one pass over the row
    in which the weights are formed slice by slice and never stored, so a sweep
    vmapped over many temperatures keeps no ``[n_tau, V]`` intermediate. Greedy
    temperatures (``tau <= GREEDY_TAU``, traced NaN) give exactly 0; ``tau = inf``
    gives the entropy of the uniform distribution over the finite logits. Bad rows
    follow :func:`sample`'s rules. Differentiable in ``tau``.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32).
        tau: temperature, a scalar or an array broadcast against ``[...]``.
        base: logarithm base; 2 gives bits (the default).

    Returns:
        float32 ``[...]``.

    Raises:
        ValueError: for a bad logits shape or dtype, or a bad ``base``.
    """
    _check_base(base)
    x = _check_logits(logits)
    t = jnp.asarray(tau, jnp.float32)
    out: jax.Array = _tempered_entropy(x, jnp.broadcast_to(t, x.shape[:-1]), base)
    return out


def _entropy_sums(z: jax.Array, m: jax.Array, s: jax.Array, *, folded: bool) -> jax.Array:
    """``[..., 2]``: the sums of ``w = exp((z - m) s)`` and of ``w (z - m) s`` per row.

    ``z`` ``[..., V]`` sanitised, ``m`` ``[..., 1]`` its row maxima, ``s`` ``[..., 1]``
    (0 allowed); ``-inf`` entries weigh 0. ``folded``: both sums in one vectorised
    pass that forms the weights slice by slice (XLA:CPU, which runs a plain
    reduction of such a producer unvectorised); else two plain reductions, which
    XLA:GPU fuses with the weights.
    """

    def weights(v: jax.Array) -> tuple[jax.Array, jax.Array]:
        # The select before the scaling keeps the tau-gradient finite.
        finite = v > -jnp.inf
        lw = (jnp.where(finite, v, m) - m) * s
        w = jnp.where(finite, jnp.exp(lw), 0.0)
        return w, w * lw

    if folded:
        return _total(z, lambda v: jnp.stack(weights(v), -2))
    w, wl = weights(z)
    return jnp.stack([jnp.sum(w, axis=-1), jnp.sum(wl, axis=-1)], axis=-1)


@functools.partial(jax.jit, static_argnames=("base", "folded"))
def _tempered_entropy(
    x: jax.Array, t: jax.Array, base: float, folded: bool | None = None
) -> jax.Array:
    """:func:`tempered_entropy` of checked inputs; ``folded`` forces a branch (tests)."""
    z = _sanitise(x.astype(jnp.float32))
    m = jnp.max(z, axis=-1, keepdims=True)  # finite once sanitised
    s = inverse_temperature(t)[..., None]  # 1 where greedy, 0 at tau = inf
    if folded is None:
        total = lax.platform_dependent(
            z,
            cpu=lambda v: _entropy_sums(v, m, s, folded=True),
            default=lambda v: _entropy_sums(v, m, s, folded=False),
        )
    else:
        total = _entropy_sums(z, m, s, folded=folded)
    h = (jnp.log(total[..., 0]) - total[..., 1] / total[..., 0]) / jnp.float32(math.log(base))
    return jnp.where(t > GREEDY_TAU, h, jnp.float32(0.0))
