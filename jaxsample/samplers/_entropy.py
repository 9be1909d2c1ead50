"""Entropy of a distribution, and of a tempered softmax without forming it."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxsample.samplers._reference import (
    clean,
    clean_top,
    inverse_temperature,
    row_top,
)
from jaxsample.samplers._sampling import check_logits
from jaxsample.samplers._strategies import GREEDY_TAU

__all__ = ["entropy", "entropy_sweep", "tempered_entropy"]


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
    h: jax.Array = -jnp.sum(plogp, axis=axis) / jnp.float32(math.log(base))
    return h


def _check_base(base: float) -> None:
    if not base > 0 or base == 1:
        raise ValueError(f"base must be > 0 and != 1, got {base!r}")


def tempered_entropy(logits: jax.Array, tau: Any, base: float = 2.0) -> jax.Array:
    r"""``entropy(probs(logits, Temperature(tau)), base)`` without forming the distribution.

    With :math:`\ell_i = (z_i - \max_j z_j) / \tau` over the sanitised logits,
    :math:`w_i = e^{\ell_i}`, :math:`S = \sum_i w_i` and :math:`T = \sum_i w_i \ell_i`,
    the entropy is :math:`H = (\log S - T / S) / \log b` (since
    :math:`\log q_i = \ell_i - \log S`). Both sums are reductions that XLA fuses with
    the exponentials, so a sweep vmapped over many temperatures
    keeps no ``[n_tau, V]`` intermediate. Greedy temperatures (``tau <=
    GREEDY_TAU``, traced NaN) give exactly 0; ``tau = inf`` gives the entropy of the
    uniform distribution over the finite logits. Bad rows follow :func:`sample`'s
    rules. Differentiable in ``tau``.

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
    x = check_logits(logits)
    t = jnp.broadcast_to(jnp.asarray(tau, jnp.float32), x.shape[:-1])
    out: jax.Array = _tempered_entropy(x, t, base)
    return out


@functools.partial(jax.jit, static_argnames=("base",))
def _tempered_entropy(x: jax.Array, t: jax.Array, base: float) -> jax.Array:
    rows = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    top = row_top(rows)
    m = clean_top(top)[:, None]
    s = inverse_temperature(t).reshape(-1, 1)  # 1 where greedy, 0 at tau = inf
    z = clean(rows, top[:, None])
    finite = z > -jnp.inf
    lw = (jnp.where(finite, z, m) - m) * s  # the select keeps the tau-gradient finite
    w = jnp.where(finite, jnp.exp(lw), 0.0)
    # One reduction of both terms, so the weights are formed inside it, never stored.
    total, weighted = jnp.moveaxis(jnp.sum(jnp.stack([w, w * lw], -2), axis=-1), -1, 0)
    h = (jnp.log(total) - weighted / total) / jnp.float32(math.log(base))
    return jnp.where(t.reshape(-1) > GREEDY_TAU, h, jnp.float32(0.0)).reshape(t.shape)


@jax.jit
def entropy_sweep(logits: jax.Array, taus: jax.Array) -> jax.Array:
    """Entropy in bits of ``probs(logits, Temperature(tau))`` for every ``tau`` of ``taus``.

    One call vmapped over ``taus`` ``[T]``; each entropy is :func:`tempered_entropy`
    (two fused sums over the row), so no ``[T, V]`` distribution is ever
    stored. Agrees with ``entropy(probs(logits, Temperature(tau)))`` to float32
    rounding.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32).
        taus: ``[T]`` temperatures (greedy ones give 0, ``inf`` the uniform's entropy).

    Returns:
        float32 ``[T, ...]``.

    Raises:
        ValueError: for a bad logits shape or dtype.
    """
    return jax.vmap(lambda t: tempered_entropy(logits, t))(jnp.asarray(taus, jnp.float32))
