"""Drawing tokens and computing the exact distribution a strategy samples from."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._filters import (
    argmax_from_chunks,
    chunk_maxima,
    chunk_reduce,
    first_argmax,
    nucleus_size,
    per_row,
    top_window,
)
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
    w = jnp.exp(lw - jnp.max(lw, axis=-1, keepdims=True))
    return w / jnp.sum(w, axis=-1, keepdims=True)


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


def _keys_for_rows(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """One key per row, ``[n]``: ``fold_in(key, row)`` for a single key, else ``key`` itself."""
    n = math.prod(lead)
    if key.shape == () and lead != ():
        rows = jnp.arange(n, dtype=jnp.uint32)
        folded: jax.Array = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)
        return folded
    return key.reshape(n)


def _row(a: jax.Array, ndim: int) -> jax.Array:
    """Reshape per-row values ``[n]`` or ``[n, 1]`` to broadcast against ``ndim`` axes."""
    return a.reshape(a.shape[0], *(1,) * (ndim - 1))


def _prefix_sums(w: jax.Array) -> jax.Array:
    """Inclusive prefix sums along the last axis of ``w`` ``[n, m]`` (float32).

    A parallel (tree) scan: cheaper than ``jnp.cumsum`` on XLA:CPU, but its
    rounding is not that of a running sum, so the result is not guaranteed
    monotone to the last bit: :func:`_pick` allows for that.
    """
    out: jax.Array = lax.associative_scan(jnp.add, w, axis=-1)
    return out


def _pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse CDF on one level: the entry of ``w`` ``[n, m]`` (>= 0) the mass ``target`` hits.

    Returns ``(j, cum)``: int32 ``[n]``, the first entry with positive weight whose
    prefix sum exceeds ``target`` ``[n]`` (the last positive entry when rounding
    leaves none), and the prefix sums ``[n, m]``. An entry of weight 0 is never
    returned unless the whole row is 0 (then 0).
    """
    m = w.shape[-1]
    cum = _prefix_sums(w)
    iota = lax.broadcasted_iota(jnp.int32, w.shape, 1)
    positive = w > 0
    first = jnp.min(jnp.where(positive & (cum > target[:, None]), iota, m), axis=-1)
    last = jnp.max(jnp.where(positive, iota, 0), axis=-1)
    return jnp.where(first < m, first, last), cum


def _target(u: jax.Array, total: jax.Array) -> jax.Array:
    """``u * total``, kept strictly below ``total`` (``u`` in [0, 1))."""
    return jnp.minimum(u * total, jnp.nextafter(total, jnp.float32(0.0)))


#: Tokens per block of the two-level inverse CDF.
_BLOCK = 256

Weight = Callable[[jax.Array], jax.Array]


def _inverse_cdf(x: jax.Array, weight: Weight, u: jax.Array) -> jax.Array:
    """Draw one index per row with one uniform each: inverse-CDF sampling, two levels.

    The weights are never stored: ``weight(values)`` (elementwise,
    >= 0, per-row parameters broadcast on the leading axis) is evaluated once over
    the row inside one reduction to the sums of consecutive blocks of ``_BLOCK``
    tokens, the uniform picks a block from their prefix sums, and the weights of
    that block are recomputed from its gathered values to pick the token. A token
    of weight 0 is never drawn.

    Args:
        x: float32 ``[n, V]`` values handed to ``weight``.
        weight: elementwise weight map.
        u: float32 ``[n]`` uniforms in [0, 1).

    Returns:
        int32 ``[n]``.
    """
    vocab = x.shape[-1]
    block = min(_BLOCK, vocab)
    sums = chunk_reduce(weight(x), block, 0.0, lax.add)
    total = jnp.sum(sums, axis=-1)
    target = _target(u, total)
    b, cum = _pick(sums, target)
    previous = jnp.take_along_axis(cum, jnp.maximum(b - 1, 0)[:, None], axis=-1)[:, 0]
    before = jnp.where(b > 0, previous, 0.0)
    members = b[:, None] * block + lax.broadcasted_iota(jnp.int32, (1, block), 1)
    inside = members < vocab
    values = jnp.take_along_axis(x, jnp.minimum(members, vocab - 1), axis=-1)
    w = jnp.where(inside, weight(values), 0.0)
    j, _ = _pick(w, target - before)
    return jnp.take_along_axis(members, j[:, None], axis=-1)[:, 0]


def _uniforms(keys: jax.Array) -> jax.Array:
    """One float32 uniform in [0, 1) per row key."""
    u: jax.Array = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)
    return u


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
    path. Both draw from the same distribution, and each row's path depends on that
    row alone.

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
    x: jax.Array, strategy: Strategy, u: jax.Array, lead: tuple[int, ...]
) -> tuple[jax.Array, jax.Array] | None:
    """Draw for the rows a fast path covers; ``None`` if no fast path exists for ``strategy``.

    The fast paths read the raw float32 logits ``x`` ``[n, V]`` of the rows whose
    maximum is finite (no NaN, no ``+inf``, some finite entry), where sanitising
    changes nothing, and draw from exactly the distribution of
    :func:`_general_draw`. They cover the built-in strategies and chains of them:

    * temperatures only: one pass for the row maximum ``m``, then one fused pass
      ``exp((z - m) * s)`` (``s`` the product of the inverse temperatures) into the
      inverse CDF's block sums;
    * with a truncation: the exact candidate window of the first truncating part
      (:func:`top_window`, ``k_max`` for top-k, ``window`` for top-p), each part then
      shortening the kept prefix of that window (a top-p first in line also needs
      one fused pass for the row's total mass), and the draw among the prefix; no
      other pass over the row.

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
            lambda: first_argmax(jnp.where(ok[:, None], x, 0.0)),
            lambda: jnp.zeros((n,), jnp.int32),
        )
        return jnp.where(greedy, first, drawn), ok

    maxima = chunk_maxima(x)
    m = jnp.max(maxima, axis=-1)
    ok = jnp.isfinite(m)
    safe_m = jnp.where(ok, m, 0.0)
    head = truncating[0]
    if isinstance(head, TopK):
        width = vocab if head.k_max is None else min(head.k_max, vocab)
    elif isinstance(head, TopP):
        width = min(head.window, vocab)
    else:  # Greedy
        width = 1
    values, indices = top_window(x, width, jnp.where(ok[:, None], maxima, 0.0))
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
            if part is head:
                total = jnp.sum(_tempered(safe_m, s)(x), axis=-1)
            else:
                total = jnp.sum(e, axis=-1)
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
    u = _uniforms(_keys_for_rows(key, lead))
    fast = _fast_draw(rows, strategy, u, lead)
    if fast is None:
        return _general_draw(rows, strategy, u).reshape(lead)
    ids, ok = fast
    out = lax.cond(
        jnp.all(ok),
        lambda: ids,
        lambda: jnp.where(ok, ids, _general_draw(rows, strategy, u)),
    )
    drawn: jax.Array = out.reshape(lead)
    return drawn


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
    if not base > 0 or base == 1:
        raise ValueError(f"base must be > 0 and != 1, got {base!r}")
    q = jnp.asarray(p, jnp.float32)
    positive = q > 0
    plogp = jnp.where(positive, q * jnp.log(jnp.where(positive, q, 1.0)), 0.0)
    h: jax.Array = -jnp.sum(plogp, axis=axis) / jnp.float32(math.log(base))
    return h
