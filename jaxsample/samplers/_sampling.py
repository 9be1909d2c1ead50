"""Drawing tokens, and the exact distribution a strategy samples from.

:func:`probs` is the definition of :mod:`jaxsample.samplers._reference`.
:func:`sample` draws from it with one algorithm for every built-in strategy and
chain, whose cost does not depend on the distribution:

1. one pass for the row maximum; the exact cuts of top-k parts from two small
   ``lax.top_k`` stages (over maxima of 16-token groups, then inside the chosen
   groups);
2. one pass that forms the weights ``w`` of the tokens left by those cuts and
   their column sums (a fixed layout of ``COLUMN``-token columns);
3. inverse-CDF draws: a uniform picks a column from the prefix sums of the column
   sums, then a token of that column;
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
every draw starts with the same uniform, column sums and search.

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
    ahead,
    clean,
    clean_top,
    column_sums,
    column_tokens,
    first_max_index,
    inverse_temperature,
    nucleus_limit,
    per_row,
    row_top,
    sanitise,
    tree_sum,
    weights,
)
from jaxsample.samplers._strategies import GREEDY_TAU, Greedy, Strategy, TopK, TopP, prefix_parts

__all__ = ["probs", "sample", "valid_rows"]

#: Candidates drawn per rejection round.
CANDIDATES = 3
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
    valid: jax.Array = _valid_rows(check_logits(logits))
    return valid


@jax.jit
def _valid_rows(x: jax.Array) -> jax.Array:
    x = x.astype(jnp.float32)
    return ~jnp.any(jnp.isnan(x), axis=-1) & jnp.any(x > -jnp.inf, axis=-1)


def probs(logits: jax.Array, strategy: Strategy) -> jax.Array:
    r"""The exact distribution that :func:`sample` draws from.

    :math:`\pi = \mathrm{softmax}(s(z))`, where :math:`s` is the strategy's
    log-weight map (for the built-in strategies, the definition in
    :mod:`jaxsample.samplers._reference`) applied to the sanitised float32 logits.
    Computed with a sort of each row, for clarity, not speed.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32).
        strategy: a :class:`Strategy`; its parameters broadcast against ``[...]``.

    Returns:
        float32 ``[..., V]``: rows sum to 1 (to rounding) and are exactly 0 where a
        token was removed. Rows with bad logits follow the rules of :func:`sample`.

    Raises:
        ValueError: for a bad logits shape or dtype, or a non-strategy.
    """
    _check_strategy(strategy)
    out: jax.Array = _probs(check_logits(logits), strategy)
    return out


@jax.jit
def _probs(x: jax.Array, strategy: Strategy) -> jax.Array:
    z, _ = sanitise(x.reshape(-1, x.shape[-1]))
    return jax.nn.softmax(strategy.log_weights(z.reshape(x.shape)), axis=-1)


def sample(key: jax.Array, logits: jax.Array, strategy: Strategy) -> jax.Array:
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
    x = check_logits(logits)
    ids: jax.Array = _sample(_check_key(key, x.shape[:-1]), x, strategy)
    return ids


@functools.partial(jax.jit, static_argnames=("general",))
def _sample(key: jax.Array, x: jax.Array, strategy: Strategy, general: bool = False) -> jax.Array:
    """:func:`sample` of checked inputs; ``general`` forces the log-weight route (tests)."""
    lead, vocab = x.shape[:-1], x.shape[-1]
    rows = x.reshape(-1, vocab).astype(jnp.float32)
    top = row_top(rows)
    parts = None if general else prefix_parts(strategy)
    if parts is not None and any(isinstance(part, Greedy) for part in parts):
        return first_max_index(rows, top).reshape(lead)  # no randomness needed
    keys = row_keys(key, lead)
    if parts is None or sum(isinstance(part, TopP) for part in parts) > 1:
        # Another kind of strategy, or a nucleus of a nucleus: the inverse CDF
        # over the log-weights of the definition.
        lw = strategy.log_weights(clean(rows, top[:, None]).reshape(x.shape)).reshape(rows.shape)
        m = jnp.max(lw, axis=-1)
        ones = jnp.ones(m.shape, jnp.float32)
        everything = (jnp.full(m.shape, -jnp.inf), jnp.full(m.shape, vocab, jnp.int32))
        sums = column_sums(lambda v, _: weights(v, m[:, None], ones[:, None]), lw)
        u = uniforms(keys, jnp.zeros((1,), jnp.int32))
        return _locate(sums, lw, m, m, ones, everything, u)[:, 0].reshape(lead)  # lw is clean
    return _draw_prefix(rows, top, parts, keys, lead).reshape(lead)


def _top_k_cut(x: jax.Array, top: jax.Array, k_max: int) -> tuple[jax.Array, jax.Array]:
    """The ``k_max`` first tokens of the ranking of ``clean(x, top)``: values and indices.

    ``x`` float32 ``[n, V]``, ``top`` its :func:`row_top`. Exact, ties by lowest
    index: the first stage keeps the ``k_max`` groups of ``GROUP`` consecutive
    tokens with the largest maxima (every token of the answer lies in one of them,
    and groups tied on their maximum are taken lowest first), the second ranks
    their members in token order. When every row is clean the group maxima are
    read from ``x`` itself, with no cleaned copy.
    """
    n, vocab = x.shape
    width = min(k_max, vocab)
    tc = top[:, None]
    if vocab <= 4 * GROUP * width:
        values, indices = lax.top_k(clean(x, tc), width)
        return values, indices.astype(jnp.int32)
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
    picked = clean(jnp.take_along_axis(x, jnp.minimum(token, vocab - 1), axis=-1), tc)
    values, slots = lax.top_k(jnp.where(token < vocab, picked, -jnp.inf), width)
    return values, jnp.take_along_axis(token, slots, axis=-1).astype(jnp.int32)


Pivot = tuple[jax.Array, jax.Array]


def _scales(tau: Any) -> bool:
    """Whether a ``tau`` leaf may change the scale (not the constant 1, for which it is exact)."""
    return not (isinstance(tau, int | float) and not isinstance(tau, bool) and tau == 1.0)


def _earlier(a: Pivot, b: Pivot) -> Pivot:
    """The pivot of the two that ranks first (its prefix is the smaller)."""
    first = ahead(a[0], a[1], b[0], b[1])
    return jnp.where(first, a[0], b[0]), jnp.where(first, a[1], b[1])


#: Entries per block of :func:`_prefix_sums`.
PREFIX_BLOCK = 64


def _prefix_sums(w: jax.Array) -> jax.Array:
    """Inclusive prefix sums along the last axis of float32 ``w`` ``[..., l]``.

    Two products with triangular matrices of ones (inside blocks of
    ``PREFIX_BLOCK``, then across blocks): a few operations that compile and run
    quickly on every backend, where a scan or a cumulative reduce-window does not.
    """
    size = w.shape[-1]
    width = min(size, PREFIX_BLOCK)
    blocks = -(-size // width)
    padded = jnp.pad(w, [(0, 0)] * (w.ndim - 1) + [(0, blocks * width - size)])
    parts = padded.reshape(*w.shape[:-1], blocks, width)
    hi = lax.Precision.HIGHEST
    inner = jnp.matmul(parts, jnp.triu(jnp.ones((width, width), w.dtype)), precision=hi)
    offsets = jnp.matmul(
        inner[..., -1], jnp.triu(jnp.ones((blocks, blocks), w.dtype), 1), precision=hi
    )
    out = (inner + offsets[..., None]).reshape(*w.shape[:-1], blocks * width)
    return out[..., :size]


def _pick(w: jax.Array, target: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Inverse CDF over the last axis of ``w`` ``[..., l]`` (>= 0) for ``target`` ``[...]``.

    Returns the first entry of positive weight whose prefix sum exceeds the target
    (the last positive entry where rounding leaves none), and the prefix sum
    before it.
    """
    cum = _prefix_sums(w)
    iota = lax.broadcasted_iota(jnp.int32, w.shape, w.ndim - 1)
    size = w.shape[-1]
    hit = jnp.min(jnp.where((w > 0) & (cum > target[..., None]), iota, size), axis=-1)
    last = jnp.max(jnp.where(w > 0, iota, 0), axis=-1)
    j = jnp.where(hit < size, hit, last)
    before = jnp.take_along_axis(cum - w, j[..., None], axis=-1)[..., 0]
    return j, before


def _locate(
    sums: jax.Array,
    x: jax.Array,
    top: jax.Array,
    m: jax.Array,
    s: jax.Array,
    low: Pivot,
    u: jax.Array,
) -> jax.Array:
    """Inverse-CDF draws among the tokens ahead of ``low``, one per uniform.

    ``sums`` ``[n, C]`` are the column sums (:func:`column_sums`) of those tokens'
    weights, ``x`` ``[n, V]`` the raw float32 logits with row maxima ``top`` (see
    :func:`clean`), ``m``, ``s`` ``[n]`` the maximum and inverse temperature,
    ``low`` a pivot ``([n], [n])``, ``u`` ``[n, c]``. The target ``u * total``
    picks a column, then a token of that column (weights recomputed from its
    logits). Returns int32 ``[n, c]`` token ids.
    """
    n, vocab = x.shape
    total = tree_sum(sums, -1)
    target = u * total[:, None]
    col, before = _pick(jnp.broadcast_to(sums[:, None], (n, *u.shape[1:], sums.shape[-1])), target)
    tokens = column_tokens(col, vocab)  # [n, c, COLUMN]
    xc = jnp.take_along_axis(x[:, None], jnp.minimum(tokens, vocab - 1), axis=-1)
    zc = clean(xc, top[:, None, None])
    inside = ahead(zc, tokens, low[0][:, None, None], low[1][:, None, None]) & (tokens < vocab)
    wc = jnp.where(inside, weights(zc, m[:, None, None], s[:, None, None]), 0.0)
    row, _ = _pick(wc, target - before)
    return jnp.take_along_axis(tokens, row[..., None], axis=-1)[..., 0]


def _draw_prefix(
    x: jax.Array,
    top: jax.Array,
    parts: tuple[Strategy, ...],
    keys: jax.Array,
    lead: tuple[int, ...],
) -> jax.Array:
    """Draw for built-in parts (at most one top-p) on float32 ``x`` ``[n, V]``, maxima ``top``."""
    n, vocab = x.shape
    m = clean_top(top)
    tc = top[:, None]
    s = jnp.ones((n,), jnp.float32)
    greedy = jnp.zeros((n,), bool)
    everything: Pivot = (jnp.full((n,), -jnp.inf), jnp.full((n,), vocab, jnp.int32))
    cut = everything
    nucleus: tuple[jax.Array, jax.Array, Pivot] | None = None
    for part in parts:
        if _scales(part.tau):  # type: ignore[attr-defined]
            tau = per_row(part.tau, lead, jnp.float32)  # type: ignore[attr-defined]
            greedy = greedy | ~(tau > GREEDY_TAU)
            s = s * inverse_temperature(tau)
        if isinstance(part, TopK):
            k = per_row(part.k, lead, jnp.int32)
            values, indices = _top_k_cut(x, top, vocab if part.k_max is None else part.k_max)
            slot = jnp.clip(k, 1, values.shape[-1])[:, None] - 1
            kth = jnp.take_along_axis(values, slot, -1)[:, 0]
            after = jnp.take_along_axis(indices, slot, -1)[:, 0] + 1
            on = (k > 0) & (k < vocab)
            cut = _earlier(cut, (jnp.where(on, kth, -jnp.inf), jnp.where(on, after, vocab)))
        elif isinstance(part, TopP):
            nucleus = (per_row(part.p, lead, jnp.float32), s, cut)

    def weight_of(scale: jax.Array, pivot: Pivot) -> Any:
        def fn(v: jax.Array, index: jax.Array) -> jax.Array:
            z = clean(v, tc)
            w = weights(z, m[:, None], scale[:, None])
            if pivot is everything:  # static: no cut to apply
                return w
            return jnp.where(ahead(z, index, pivot[0][:, None], pivot[1][:, None]), w, 0.0)

        return fn

    sums = column_sums(weight_of(s, cut), x)
    if nucleus is None:
        u = uniforms(keys, jnp.zeros((1,), jnp.int32))
        ids = _locate(sums, x, top, m, s, cut, u)[:, 0]
    else:
        p, s_p, before = nucleus
        if s_p is s and before is cut:
            total = tree_sum(sums, -1)
        else:
            total = tree_sum(column_sums(weight_of(s_p, before), x), -1)
        limit = nucleus_limit(p, total)
        ids = _reject(keys, x, top, None if s_p is s else s_p, sums, m, s, cut, limit)
    first = lax.cond(
        jnp.any(greedy),
        lambda: first_max_index(x, top),
        lambda: jnp.zeros((n,), jnp.int32),
    )
    return jnp.where(greedy, first, ids)


def _reject(
    keys: jax.Array,
    x: jax.Array,
    top: jax.Array,
    s_nucleus: jax.Array | None,
    sums: jax.Array,
    m: jax.Array,
    s: jax.Array,
    cut: Pivot,
    limit: jax.Array,
) -> jax.Array:
    """Rejection rounds for a top-p part: the first candidate whose mass ahead is below ``limit``.

    ``x`` ``[n, V]`` are the raw logits with row maxima ``top``; the draw uses the
    weights at scale ``s`` and the nucleus is measured at scale ``s_nucleus``
    (``None`` when the same), both zero outside ``cut``; ``sums`` are the column
    sums of the weights drawn from. The weights are recomputed in every pass
    rather than stored (a fresh ``[n, V]`` buffer per call costs more on a CPU
    than the exponentials). Returns int32 ``[n]``.
    """
    n, _ = x.shape
    state0 = (jnp.int32(0), jnp.zeros((n,), bool), jnp.zeros((n,), jnp.int32), cut, m, sums)
    tc = top[:, None, None]

    def undecided(state: Any) -> jax.Array:
        return ~jnp.all(state[1])

    def round_(state: Any) -> Any:
        r, done, ids, low, high, sums = state
        counters = r * CANDIDATES + jnp.arange(CANDIDATES, dtype=jnp.int32)
        cand = _locate(sums, x, top, m, s, low, uniforms(keys, counters))  # [n, c]
        zc = clean(jnp.take_along_axis(x, cand, axis=-1), top[:, None])
        best = _first_ranked(zc, cand)
        z_best = jnp.take_along_axis(zc, best[:, None], -1)[:, 0]
        x_best = jnp.take_along_axis(cand, best[:, None], -1)[:, 0]
        mid = jnp.float32(0.5) * z_best + jnp.float32(0.5) * high
        pv = jnp.concatenate([zc, mid[:, None]], -1)[:, :, None]  # [n, c + 1, 1] pivots
        pj = jnp.concatenate([cand, jnp.zeros((n, 1), jnp.int32)], -1)[:, :, None]

        def masked(scale: jax.Array) -> Any:
            def fn(v: jax.Array, index: jax.Array) -> jax.Array:
                z = clean(v[:, None], tc)
                w = weights(z, m[:, None, None], scale[:, None, None])
                return jnp.where(ahead(z, index[None], pv, pj), w, 0.0)  # [n, c + 1, l]

            return fn

        new_sums = column_sums(masked(s), x)
        nucleus_sums = new_sums if s_nucleus is None else column_sums(masked(s_nucleus), x)
        ahead_mass = tree_sum(nucleus_sums, -1)
        accept = ahead_mass[:, :CANDIDATES] < limit[:, None]
        first = jnp.argmax(accept, axis=-1)
        took = jnp.any(accept, axis=-1) & ~done
        ids = jnp.where(took, jnp.take_along_axis(cand, first[:, None], -1)[:, 0], ids)
        # Rejected rows: rule out from the best candidate on, or from the middle value on.
        mid_in = ahead_mass[:, CANDIDATES] < limit
        low = (jnp.where(mid_in, z_best, mid), jnp.where(mid_in, x_best, 0))
        high = jnp.where(mid_in, mid, high)
        pick = jnp.where(mid_in, best, CANDIDATES)
        sums = jnp.take_along_axis(new_sums, pick[:, None, None], axis=1)[:, 0]
        return r + 1, done | took, ids, low, high, sums

    out: jax.Array = lax.while_loop(undecided, round_, state0)[2]
    return out


def _first_ranked(values: jax.Array, tokens: jax.Array) -> jax.Array:
    """The position in ``[n, c]`` of the token that ranks first (largest value, then lowest id)."""
    top = jnp.max(values, axis=-1, keepdims=True)
    return jnp.argmin(jnp.where(values == top, tokens, np.iinfo(np.int32).max), axis=-1)
