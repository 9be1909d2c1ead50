"""Entropy of a distribution, and of a tempered softmax without forming it."""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxsample.samplers._layout import fixed_sum, layout_reduce, whole
from jaxsample.samplers._reference import clean, clean_top, inverse_temperature, row_top
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
    # 0 - sum rather than -sum: a certain outcome has entropy +0.0, not -0.0.
    h: jax.Array = (0.0 - jnp.sum(plogp, axis=axis)) / jnp.float32(math.log(base))
    return h


def _check_base(base: float) -> None:
    if not base > 0 or base == 1:
        raise ValueError(f"base must be > 0 and != 1, got {base!r}")


def tempered_entropy(logits: jax.Array, tau: Any, base: float = 2.0) -> jax.Array:
    r"""``entropy(probs(logits, Temperature(tau)), base)`` without forming the distribution.

    With :math:`\ell_i = (z_i - \max_j z_j) / \tau` over the sanitised logits,
    :math:`w_i = e^{\ell_i}`, :math:`S = \sum_i w_i` and :math:`T = \sum_i w_i \ell_i`,
    the entropy is :math:`H = (\log S - T / S) / \log b` (since
    :math:`\log q_i = \ell_i - \log S`). Both sums are folded over the row with the
    exponentials (:func:`~._layout.layout_reduce`), so a sweep over many
    temperatures keeps no ``[n_tau, V]`` intermediate. Greedy temperatures (``tau <=
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


def _offsets(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows ``[n, V]`` as ``d = z - max z`` (0 where ``z = -inf``) and the finite mask (float)."""
    rows = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
    top = row_top(rows)
    z = clean(rows, top[:, None])
    finite = z > -jnp.inf
    return jnp.where(finite, z - clean_top(top)[:, None], 0.0), finite.astype(jnp.float32)


def _entropy_of(d: jax.Array, f: jax.Array, t: jax.Array, base: float) -> jax.Array:
    """Entropies ``[n]`` of rows given by :func:`_offsets` at temperatures ``t`` ``[n]``.

    The two sums are folded over the slices of the summation layout: elementwise
    adds into ``[n, blocks, column]`` columns, which vectorise where a reduction
    over the row would not.
    """
    s = inverse_temperature(t)  # 1 where greedy, 0 at tau = inf

    def terms(dv: jax.Array, fv: jax.Array, _: jax.Array) -> tuple[jax.Array, jax.Array]:
        w = jnp.exp(dv * s[:, None, None]) * fv
        return w, w * dv

    columns = layout_reduce((jnp.add, jnp.add), (0.0, 0.0), terms, whole(d.shape[-1]), d, f)
    total, weighted = (fixed_sum(fixed_sum(c)) for c in columns)
    h = (jnp.log(total) - s * weighted / total) / jnp.float32(math.log(base))
    return jnp.where(t > GREEDY_TAU, h, jnp.float32(0.0))


@functools.partial(jax.jit, static_argnames=("base",))
def _tempered_entropy(x: jax.Array, t: jax.Array, base: float) -> jax.Array:
    d, f = _offsets(x)
    return _entropy_of(d, f, t.reshape(-1), base).reshape(t.shape)


#: Temperatures per round of :func:`entropy_sweep`.
SWEEP_BATCH = 64


@jax.jit
def entropy_sweep(logits: jax.Array, taus: jax.Array) -> jax.Array:
    """Entropy in bits of ``probs(logits, Temperature(tau))`` for every ``tau`` of ``taus``.

    One call; each entropy is :func:`tempered_entropy` (two sums folded over the
    row), for ``SWEEP_BATCH`` temperatures at a time, so no ``[T, V]``
    distribution is ever stored and the partial sums stay in cache. Agrees with
    ``entropy(probs(logits, Temperature(tau)))`` to float32 rounding.

    Args:
        logits: ``[..., V]`` logits of any real dtype (computed in float32).
        taus: ``[T]`` temperatures (greedy ones give 0, ``inf`` the uniform's entropy).

    Returns:
        float32 ``[T, ...]``.

    Raises:
        ValueError: for a bad logits shape or dtype.
    """
    x = check_logits(logits)
    taus = jnp.asarray(taus, jnp.float32)
    if not math.prod(x.shape[:-1]):  # no rows
        return jnp.zeros((taus.shape[0], *x.shape[:-1]), jnp.float32)
    d, f = _offsets(x)
    n = d.shape[0]

    def one(tau: jax.Array) -> jax.Array:
        return _entropy_of(d, f, jnp.broadcast_to(tau, (n,)), 2.0).reshape(x.shape[:-1])

    out: jax.Array = lax.map(one, taus, batch_size=min(SWEEP_BATCH, max(1, taus.shape[0])))
    return out
