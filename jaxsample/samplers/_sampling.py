"""Drawing tokens and computing the exact distribution a strategy samples from."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxsample.samplers._filters import first_argmax
from jaxsample.samplers._strategies import Chain, Greedy, Strategy, Temperature, TopK, TopP

__all__ = ["entropy", "probs", "sample", "valid_rows"]

# Tokens per block of the two-level inverse CDF.
_BLOCK = 128


def _check_logits(logits: jax.Array) -> jax.Array:
    x = jnp.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"logits must be real numbers, got dtype {x.dtype}")
    return x.astype(jnp.float32)


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
    lw = _log_weights(x, strategy)
    w = jnp.exp(lw - jnp.max(lw, axis=-1, keepdims=True))
    return w / jnp.sum(w, axis=-1, keepdims=True)


def _row_keys(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """One typed key per row: ``fold_in(key, row)`` for a single key, else ``key`` itself."""
    k = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        if k.dtype != jnp.uint32 or k.shape[-1:] != (2,):
            raise ValueError(
                "key must be a jax.random.key (or a legacy uint32 PRNGKey), "
                f"got dtype {k.dtype} and shape {k.shape}"
            )
        k = jax.random.wrap_key_data(k)
    n = math.prod(lead)
    if k.shape == ():
        if lead == ():
            return k.reshape(1)
        folded: jax.Array = _fold_rows(k, n)
        return folded
    if k.shape != lead:
        raise ValueError(
            f"key must be a single key or one key per row with shape {lead}, got shape {k.shape}"
        )
    return k.reshape(n)


@functools.partial(jax.jit, static_argnums=1)
def _fold_rows(key: jax.Array, n: int) -> jax.Array:
    """``fold_in(key, r)`` for ``r < n``, in one compiled call."""
    rows = jnp.arange(n, dtype=jnp.uint32)
    keys: jax.Array = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)
    return keys


def _inverse_cdf(keys: jax.Array, w: jax.Array) -> jax.Array:
    """Draw one index per row of non-negative weights ``w`` ``[n, V]`` with one uniform each.

    Two levels: the block sums' cumulative sum locates the block, a cumulative
    sum inside that block locates the token. A token of weight 0 is never drawn.
    """
    n, vocab = w.shape
    block = min(_BLOCK, vocab)
    n_blocks = -(-vocab // block)
    blocks = jnp.pad(w, ((0, 0), (0, n_blocks * block - vocab))).reshape(n, n_blocks, block)
    cum_blocks = jnp.cumsum(jnp.sum(blocks, axis=-1), axis=-1)  # (n, n_blocks)
    total = cum_blocks[:, -1]
    u = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(keys)
    # Strictly below the total, so that some block's cumulative sum exceeds it.
    target = jnp.minimum(u * total, jnp.nextafter(total, jnp.float32(0.0)))
    b = jnp.sum(cum_blocks <= target[:, None], axis=-1)  # first block whose sum exceeds target
    before = jnp.where(b > 0, jnp.take_along_axis(cum_blocks, (b - 1)[:, None], axis=-1)[:, 0], 0.0)
    inner = jnp.take_along_axis(blocks, b[:, None, None], axis=1)[:, 0, :]  # (n, block)
    j = jnp.sum(jnp.cumsum(inner, axis=-1) <= (target - before)[:, None], axis=-1)
    # Rounding between the two levels must not step past the block's last positive weight.
    last_positive = block - 1 - jnp.argmax(jnp.flip(inner > 0, axis=-1), axis=-1)
    return (b * block + jnp.minimum(j, last_positive)).astype(jnp.int32)


def sample(key: jax.Array, logits: jax.Array, strategy: Strategy) -> jax.Array:
    """Draw one token id per row of ``logits`` from ``probs(logits, strategy)``.

    The logits are cast to float32; the strategy maps them to log-weights; one
    uniform number per row selects a token by inverse-CDF sampling over
    ``exp(log-weights)``, so the draw follows :func:`probs` exactly and a token of
    probability 0 is never returned. :class:`Greedy` uses no randomness.

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
    keys = _row_keys(key, x.shape[:-1])
    ids: jax.Array = _sample(keys, x, strategy)
    return ids


def _draw_rows(keys: jax.Array, x: jax.Array, strategy: Strategy) -> jax.Array:
    """Draw one id per row of ``x`` ``[..., V]`` (``n`` rows, ``keys`` ``[n]``), ids ``[n]``."""
    lw = _log_weights(x, strategy).reshape(-1, x.shape[-1])
    # Built-in strategies: the row maximum of lw is 0, no second max pass.
    shift = 0.0 if _max_is_zero(strategy) else jnp.max(lw, axis=-1, keepdims=True)
    return _inverse_cdf(keys, jnp.exp(lw - shift))


@jax.jit
def _sample(keys: jax.Array, x: jax.Array, strategy: Strategy) -> jax.Array:
    if isinstance(strategy, Greedy):  # static: no randomness needed
        return first_argmax(_sanitise(x))
    return _draw_rows(keys, x, strategy).reshape(x.shape[:-1])


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
