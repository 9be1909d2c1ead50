"""Sampling strategies: frozen dataclasses registered as JAX pytrees.

A strategy maps float32 logits ``z`` of shape ``[..., V]`` to *log-weights* of the
same shape: finite where a token may be drawn, ``-inf`` where it was removed. The
distribution a strategy samples from is ``softmax`` of its log-weights (see
:func:`jaxsample.probs`). Numeric parameters (``tau``, ``k``, ``p``) are pytree
leaves, so they may be traced, vmapped and changed without recompiling; structural
choices (``k_max``, ``window``) are static fields.

Every strategy keeps at least one token of every row, so a composition can never
leave a row empty.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxsample.samplers._filters import (
    first_argmax,
    greedy_log_weights,
    top_k_log_weights,
    top_p_log_weights,
)

__all__ = [
    "GREEDY_TAU",
    "Chain",
    "Greedy",
    "Strategy",
    "Temperature",
    "TopK",
    "TopP",
    "chain",
]

#: Temperatures at or below this value (and NaN or negative traced values) are greedy.
GREEDY_TAU = 1e-6


def _concrete(value: Any) -> np.ndarray[Any, Any] | None:
    """Return ``value`` as a NumPy array when it is a concrete number, else ``None``.

    Tracers (inside ``jit``/``vmap``) and the placeholder objects JAX puts in
    pytrees while transforming them are not validated.
    """
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool | int | float | np.ndarray | np.generic | jax.Array):
        try:
            return np.asarray(value)
        except (TypeError, jax.errors.ConcretizationTypeError):
            return None
    return None


def _check_tau(name: str, tau: Any) -> None:
    arr = _concrete(tau)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be a real number, got {tau!r}")
    bad = np.isnan(arr) | (arr < 0)
    if np.any(bad):
        raise ValueError(
            f"{name} must be in [0, inf] (0 means greedy), got {arr[bad].ravel()[0]!r}"
        )


class Strategy:
    """Base class of every sampling strategy.

    Subclasses implement :meth:`log_weights`. Calling a strategy as
    ``strategy(logits, key)`` is the seeds' call form and is exactly
    ``jaxsample.sample(key, logits, strategy)``.
    """

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Map sanitised float32 logits ``[..., V]`` to log-weights ``[..., V]``.

        ``z`` holds no NaN and no ``+inf`` and every row has at least one finite
        entry (see :func:`jaxsample.sample`). The result keeps that property.
        """
        raise NotImplementedError

    def __call__(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        """Draw token ids; an alias of ``jaxsample.sample(key, logits, self)``."""
        from jaxsample.samplers._sampling import sample

        return sample(key, logits, self)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Greedy(Strategy):
    """Always pick the most likely token: ``argmax(z)``, lowest index on ties.

    Deterministic: the key is not used. Equal to ``TopK(1)`` and to
    ``Temperature(0)`` on every input.
    """

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Return 0 at the first maximum of each row and ``-inf`` elsewhere."""
        return greedy_log_weights(z)


def inverse_temperature(tau: jax.Array) -> jax.Array:
    """``1 / tau`` as float32, and 1 where ``tau`` is greedy (see :data:`GREEDY_TAU`)."""
    t = jnp.asarray(tau, jnp.float32)
    return jnp.where(t > GREEDY_TAU, 1.0 / jnp.where(t > GREEDY_TAU, t, 1.0), jnp.float32(1.0))


def _scale(z: jax.Array, tau: Any) -> jax.Array:
    """Temperature-scale sanitised logits: ``(z - max z) * (1 / tau)``; greedy for small tau."""
    t = jnp.asarray(tau, jnp.float32)[..., None]
    greedy = ~(t > GREEDY_TAU)  # also true for NaN and negative traced values
    m = jnp.max(z, axis=-1, keepdims=True)
    scaled = jnp.where(jnp.isneginf(z), -jnp.inf, (z - m) * inverse_temperature(t))
    # The argmax pass is skipped (lax.cond) when no row is greedy; the selection
    # itself stays elementwise so that it fuses with the scaling.
    lead = jnp.broadcast_shapes(z.shape[:-1], greedy.shape[:-1])
    first_max = lax.cond(
        jnp.any(greedy),
        lambda: jnp.broadcast_to(first_argmax(z)[..., None], (*lead, 1)),
        lambda: jnp.zeros((*lead, 1), jnp.int32),
    ).astype(jnp.int32)
    iota = lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
    one_hot = jnp.where(iota == first_max, jnp.float32(0.0), -jnp.inf)
    return jnp.where(greedy, one_hot, scaled)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Temperature(Strategy):
    r"""Temperature sampling: draw from :math:`q = \mathrm{softmax}(z / \tau)`.

    The logits are divided by ``tau`` *before* the softmax; this is not the
    renormalised power :math:`\mathrm{softmax}(z)^{1/\tau}`, which is a different
    distribution. Limits: ``tau -> 0`` tends to the argmax (uniform over tied
    maxima); ``tau = 1`` is the model's distribution; ``tau -> inf`` tends to
    uniform over the tokens with finite logits. The entropy of ``q`` is
    non-decreasing in ``tau`` with :math:`dH/d\tau = \mathrm{Var}_q[z] / \tau^3`
    (nats).

    Args:
        tau: temperature, a scalar or an array broadcast against the leading axes
            of the logits (one value per row). ``tau <= 1e-6`` (``GREEDY_TAU``),
            including exactly 0, is greedy (lowest index on ties), selected with
            ``jnp.where`` so a vmapped sweep may contain 0. ``tau = inf`` is uniform
            over the finite logits.

    Raises:
        ValueError: at construction, for a concrete ``tau`` that is negative or NaN.
            Traced values cannot raise: a negative or NaN traced ``tau`` is greedy.
    """

    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_tau("tau", self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Return ``(z - max z) / tau`` (``-inf`` stays ``-inf``), or greedy."""
        return _scale(z, self.tau)


def _check_k(k: Any) -> np.ndarray[Any, Any] | None:
    arr = _concrete(k)
    if arr is None:
        return None
    if not (np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_):
        raise ValueError(f"k must be an integer >= 0 (0 disables top-k), got {k!r}")
    if np.any(arr < 0):
        raise ValueError(
            f"k must be an integer >= 0 (0 disables top-k), got {arr[arr < 0].ravel()[0]!r}"
        )
    return arr


def _k_bucket(kmax: int) -> int:
    """Smallest power of two >= ``kmax``, at least 64: one compilation for many k."""
    return max(64, 1 << max(0, math.ceil(math.log2(max(kmax, 1)))))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TopK(Strategy):
    """Top-k sampling: temperature first, then keep the ``k`` most likely tokens.

    Exactly ``k`` tokens are kept; ties at the k-th value are broken by the lowest
    token index, so ``TopK(1)`` equals :class:`Greedy` on every input. (Some
    libraries keep every token tied with the k-th; the two differ only on exact
    ties.) ``k = 0`` or ``k >= V`` disables the truncation. Temperature and top-k
    commute, so the order only matters for the documentation.

    Args:
        k: number of tokens kept; an integer scalar or integer array broadcast
            against the leading axes of the logits.
        tau: temperature applied first (see :class:`Temperature`).
        k_max: static bound on ``k`` used to size ``lax.top_k`` (no full sort).
            By default the smallest power of two, at least 64, that is >= every
            concrete ``k``; so changing ``k`` within that bound does not recompile.
            When ``k`` is traced at construction and ``k_max`` is not given, the
            bound is the vocabulary size (exact, slower). A traced ``k`` above
            ``k_max`` (and below ``V``) keeps ``k_max`` tokens: give ``k_max``
            explicitly when building strategies from traced values.

    Raises:
        ValueError: at construction, for a concrete ``k`` that is negative or not of
            an integer type, a concrete ``k`` above an explicit ``k_max``, a bad
            ``k_max``, or a bad concrete ``tau``. Traced negative ``k`` disables.
    """

    k: Any
    tau: Any = 1.0
    k_max: int | None = dataclasses.field(default=None, metadata={"static": True})

    def __post_init__(self) -> None:
        arr = _check_k(self.k)
        _check_tau("tau", self.tau)
        if self.k_max is not None:
            if not isinstance(self.k_max, int) or isinstance(self.k_max, bool) or self.k_max < 1:
                raise ValueError(f"k_max must be a Python int >= 1, got {self.k_max!r}")
            if arr is not None and arr.size and int(arr.max()) > self.k_max:
                raise ValueError(f"k must be <= k_max={self.k_max}, got {int(arr.max())}")
        elif arr is not None:
            object.__setattr__(self, "k_max", _k_bucket(int(arr.max()) if arr.size else 1))

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Set every token outside the top ``k`` to ``-inf``, then temperature-scale.

        The two commute; ranking the logits before scaling avoids the ties that
        the rounding of ``(z - max z) / tau`` can create, so ``TopK(1)`` always
        keeps the first maximum of the logits, as :class:`Greedy` does.
        """
        return _scale(top_k_log_weights(z, self.k, self.k_max), self.tau)


def _check_p(p: Any) -> None:
    arr = _concrete(p)
    if arr is None:
        return
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"p must be a real number in (0, 1], got {p!r}")
    bad = ~((arr > 0) & (arr <= 1))
    if np.any(bad):
        raise ValueError(f"p must be in (0, 1] (1 disables top-p), got {arr[bad].ravel()[0]!r}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TopP(Strategy):
    r"""Nucleus (top-p) sampling: temperature first, then keep the nucleus.

    With the tokens in descending probability order (ties by lowest index), a
    token is kept iff the probability mass strictly ahead of it is below ``p``:
    the smallest prefix whose mass reaches ``p`` is kept, including the token that
    crosses ``p``. At least one token is always kept. ``p = 1`` returns the
    unfiltered distribution exactly. Masses are computed in float32 and a mass
    ahead within ``1e-6`` of ``p`` counts as reaching it, so exact boundaries
    (e.g. probabilities ``[0.3, 0.1, 0.1, 0.5]`` with ``p = 0.8`` keep exactly
    ``{0.5, 0.3}``) are decided as in exact arithmetic despite rounding.

    Temperature is applied before the truncation (the order of the Hugging Face
    and vLLM samplers); temperature and top-p do not commute.

    The nucleus is found without a sort when it lies within the ``window`` most
    likely tokens: those are selected exactly, on a long row in two ``lax.top_k``
    stages (over the maxima of 16-token chunks, then over the chosen chunks), and
    :func:`jaxsample.sample` then draws among them without another pass over the
    row. A row whose nucleus is larger is answered exactly by a bisection on the
    boundary value, decided per row.

    Args:
        p: nucleus mass in (0, 1], scalar or array broadcast against the leading
            axes of the logits.
        tau: temperature applied first (see :class:`Temperature`).
        window: static size of the candidate window (default 128); raise it when
            nuclei are often wider, to keep them off the slower exact fallback.

    Raises:
        ValueError: at construction, for a concrete ``p`` outside (0, 1] or NaN, a
            bad concrete ``tau``, or ``window < 1``. Traced values cannot raise:
            ``p >= 1`` keeps everything, ``p <= 0`` or NaN keeps only the top token.

    References:
        Holtzman, Buys, Du, Forbes, Choi. The Curious Case of Neural Text
        Degeneration. ICLR 2020 (arXiv:1904.09751, 2019).
    """

    p: Any
    tau: Any = 1.0
    window: int = dataclasses.field(default=128, metadata={"static": True})

    def __post_init__(self) -> None:
        _check_p(self.p)
        _check_tau("tau", self.tau)
        if not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a Python int >= 1, got {self.window!r}")

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Temperature-scale, then set every token outside the nucleus to ``-inf``.

        The nucleus is measured with the scaled weights; tokens are ranked by the
        logits before scaling (the same order, without the ties that rounding can
        create).
        """
        return top_p_log_weights(_scale(z, self.tau), self.p, self.window, order=z)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Chain(Strategy):
    """A composition of strategies applied in the order written.

    Each part receives the previous part's log-weights as logits, so
    ``chain(Temperature(0.7), TopK(50), TopP(0.9))`` scales, then keeps the top
    50, then takes the nucleus of what is left. An empty chain changes nothing.
    Build it with :func:`chain`.
    """

    parts: tuple[Strategy, ...] = ()
    def __post_init__(self) -> None:
        for part in self.parts:
            if not isinstance(part, Strategy):
                raise ValueError(f"chain parts must be strategies, got {part!r}")

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Apply every part in order."""
        for part in self.parts:
            z = part.log_weights(z)
        return z


def chain(*strategies: Strategy) -> Chain:
    """Compose strategies, applied in the order written (nested chains are flattened).

    Args:
        *strategies: strategies to apply one after the other.

    Returns:
        A :class:`Chain`; a pytree whose leaves are the parts' parameters.

    Raises:
        ValueError: if an argument is not a strategy.
    """
    parts: list[Strategy] = []
    for s in strategies:
        if isinstance(s, Chain):
            parts.extend(s.parts)
        elif isinstance(s, Strategy):
            parts.append(s)
        else:
            raise ValueError(f"chain arguments must be strategies, got {s!r}")
    return Chain(tuple(parts))

