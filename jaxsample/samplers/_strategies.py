"""Sampling strategies: frozen dataclasses registered as JAX pytrees.

A strategy describes which tokens of a row of logits may be drawn and with what
weight. Numeric parameters (``tau``, ``k``, ``p``) are pytree leaves, so they may
be traced, vmapped and changed without recompiling; structural choices
(``k_max``) are static. Concrete parameters are validated when a user builds a
strategy; rebuilding one from its leaves (``jax.tree.map``, ``vmap``,
``jit``) never validates, so leaves may be placeholders, axis specs or tracers.

The semantics of every built-in strategy is written once, in
:mod:`jaxsample.samplers._reference`; :func:`jaxsample.probs` is exactly that
definition, and :func:`jaxsample.sample` draws from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, TypeVar

import jax
import numpy as np

__all__ = ["GREEDY_TAU", "Chain", "Greedy", "Strategy", "Temperature", "TopK", "TopP", "chain"]

#: Temperatures at or below this value (and NaN or negative traced values) are greedy.
GREEDY_TAU = 1e-6

S = TypeVar("S", bound="Strategy")


def _pytree(cls: type[S]) -> type[S]:
    """Register a frozen dataclass as a pytree whose unflattening skips validation.

    Fields marked ``metadata={"static": True}`` are auxiliary data; the others
    are leaves. Unflattening writes the fields directly (as equinox does), so
    validation in ``__post_init__`` runs only when a user calls the constructor.
    """
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    data = tuple(f.name for f in fields if not f.metadata.get("static"))
    meta = tuple(f.name for f in fields if f.metadata.get("static"))

    def flatten(s: S) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        return tuple(getattr(s, n) for n in data), tuple(getattr(s, n) for n in meta)

    def unflatten(aux: tuple[Any, ...], leaves: Any) -> S:
        obj = object.__new__(cls)
        for name, value in (*zip(data, leaves, strict=True), *zip(meta, aux, strict=True)):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_node(cls, flatten, unflatten)
    return cls


def _concrete(value: Any) -> np.ndarray[Any, Any] | None:
    """``value`` as a NumPy array when it is a concrete number, else ``None`` (tracers)."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, bool | int | float | np.ndarray | np.generic | jax.Array):
        try:
            return np.asarray(value)
        except (TypeError, jax.errors.ConcretizationTypeError):
            return None
    return None


def _number(arr: np.ndarray[Any, Any]) -> str:
    """The first entry of ``arr`` written as a person would (``0.0``, not ``np.float64(0.0)``)."""
    return repr(arr.ravel()[0].item())


def _check_real(name: str, value: Any, ok: Any, rule: str) -> np.ndarray[Any, Any] | None:
    """Raise ``ValueError`` unless every entry of a concrete ``value`` satisfies ``ok``."""
    arr = _concrete(value)
    if arr is None:
        return None
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real number {rule}, got {value!r}")
    bad = ~ok(arr)
    if np.any(bad):
        raise ValueError(f"{name} must be {rule}, got {_number(arr[bad])}")
    return arr


def _check_tau(tau: Any) -> None:
    _check_real("tau", tau, lambda a: a >= 0, "in [0, inf] (0 means greedy)")


class Strategy:
    """Base class of every sampling strategy.

    A subclass defines :meth:`log_weights`, the map from sanitised float32 logits
    ``z`` ``[..., V]`` to log-weights (``-inf`` where a token is removed); the
    distribution is their softmax. The built-in strategies are exactly the parts
    a :class:`Chain` of them applies (see :mod:`jaxsample.samplers._reference`).
    Calling ``strategy(logits, key)`` is ``jaxsample.sample(key, logits, strategy)``.
    """

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Map sanitised float32 logits ``[..., V]`` to log-weights ``[..., V]``.

        ``z`` holds no NaN and no ``+inf`` and every row has a finite entry; the
        result must keep at least one finite entry per row.
        """
        from jaxsample.samplers._reference import prefix_log_weights

        return prefix_log_weights(z, (self,))

    def __call__(self, logits: jax.Array, key: jax.Array) -> jax.Array:
        """Draw token ids; an alias of ``jaxsample.sample(key, logits, self)``."""
        from jaxsample.samplers._sampling import sample

        return sample(key, logits, self)


@_pytree
@dataclasses.dataclass(frozen=True)
class Greedy(Strategy):
    """Always the most likely token: ``argmax(z)``, lowest index on ties.

    Deterministic: the key is not used. Draws exactly as ``TopK(1)`` and
    ``Temperature(0)`` do, on every input.
    """


@_pytree
@dataclasses.dataclass(frozen=True)
class Temperature(Strategy):
    r"""Temperature sampling: draw from :math:`q = \mathrm{softmax}(z / \tau)`.

    The logits are divided by ``tau`` *before* the softmax; this is not the
    renormalised power :math:`\mathrm{softmax}(z)^{1/\tau}`, a different
    distribution. ``tau -> 0`` tends to the argmax, ``tau = 1`` is the model's
    distribution, ``tau -> inf`` tends to uniform over the finite logits. The
    entropy of ``q`` is non-decreasing in ``tau``, :math:`dH/d\tau =
    \mathrm{Var}_q[z] / \tau^3` (nats).

    Args:
        tau: temperature, a scalar or an array broadcast against the leading axes
            of the logits (one value per row). ``tau <= GREEDY_TAU`` (1e-6),
            exactly 0 included, is greedy (lowest index on ties), chosen per row
            with ``jnp.where``, so a vmapped sweep may contain 0. ``tau = inf`` is
            uniform over the finite logits.

    Raises:
        ValueError: at construction, for a concrete ``tau`` that is negative, NaN
            or not a real number. Traced negative or NaN values are greedy.
    """

    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_tau(self.tau)


def _k_bucket(kmax: int) -> int:
    """Smallest power of two >= ``kmax``, at least 64: one compilation for many k."""
    return max(64, 1 << max(0, math.ceil(math.log2(max(kmax, 1)))))


@_pytree
@dataclasses.dataclass(frozen=True)
class TopK(Strategy):
    """Top-k sampling: temperature, then keep the ``k`` most likely tokens.

    Exactly ``k`` tokens are kept; ties at the k-th value are broken by the lowest
    token index, so ``TopK(1)`` draws as :class:`Greedy` on every input. (Some
    libraries keep every token tied with the k-th; the two differ only on exact
    ties.) ``k = 0`` or ``k >= V`` disables the truncation, and the strategy then
    draws exactly as ``Temperature(tau)`` with the same key. Temperature and top-k
    commute.

    Args:
        k: number of tokens kept; an integer scalar or integer array broadcast
            against the leading axes of the logits.
        tau: temperature applied first (see :class:`Temperature`).
        k_max: static bound on ``k`` that sizes the exact ``lax.top_k`` selection.
            By default the smallest power of two, at least 64, that is >= every
            concrete ``k``, so a new ``k`` within that bound does not recompile.
            When ``k`` is traced at construction and ``k_max`` is not given, the
            bound is the vocabulary size (exact, slower). A traced ``k`` above
            ``k_max`` (and below ``V``) keeps ``k_max`` tokens. The draws do not
            depend on the bound, its cost does: on a CPU, XLA's top-k selection
            grows steeply with it (``TopK(50, k_max=50)`` drew in 1.64 ms against
            1.90 ms with the default 64 at ``[32, 50257]`` on a 2-core host), so
            a fixed ``k`` is fastest with ``k_max=k``.

    Raises:
        ValueError: at construction, for a concrete ``k`` that is negative or not of
            an integer type, a concrete ``k`` above an explicit ``k_max``, a bad
            ``k_max``, or a bad concrete ``tau``. A traced negative ``k`` disables.
    """

    k: Any
    tau: Any = 1.0
    k_max: int | None = dataclasses.field(default=None, metadata={"static": True})

    def __post_init__(self) -> None:
        arr = _concrete(self.k)
        if arr is not None:
            if not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
                raise ValueError(f"k must be an integer >= 0 (0 disables top-k), got {self.k!r}")
            _check_real("k", arr, lambda a: a >= 0, "an integer >= 0 (0 disables top-k)")
        _check_tau(self.tau)
        if self.k_max is not None:
            if not isinstance(self.k_max, int) or isinstance(self.k_max, bool) or self.k_max < 1:
                raise ValueError(f"k_max must be a Python int >= 1, got {self.k_max!r}")
            if arr is not None and arr.size and int(arr.max()) > self.k_max:
                raise ValueError(f"k must be <= k_max={self.k_max}, got {int(arr.max())}")
        elif arr is not None:
            object.__setattr__(self, "k_max", _k_bucket(int(arr.max()) if arr.size else 1))


@_pytree
@dataclasses.dataclass(frozen=True)
class TopP(Strategy):
    r"""Nucleus (top-p) sampling: temperature, then keep the nucleus.

    With the tokens in descending order of logit (ties by lowest index), a token
    is kept iff the probability mass strictly ahead of it is below ``p``: the
    smallest prefix whose mass reaches ``p`` is kept, the token that crosses ``p``
    included, and at least one token always. Where float32 cannot decide (a mass
    ahead within ``TOP_P_SLACK`` = 1e-6 of ``p``), the token is kept, as the
    common inference engines do; the mass is a sum in a fixed order documented
    in :mod:`jaxsample.samplers._reference`. ``p = 1`` keeps every token and draws
    exactly as ``Temperature(tau)`` with the same key.

    Temperature is applied before the truncation (the order of the Hugging Face
    and vLLM samplers); temperature and top-p do not commute.

    Args:
        p: nucleus mass in (0, 1], scalar or array broadcast against the leading
            axes of the logits.
        tau: temperature applied first (see :class:`Temperature`).

    Raises:
        ValueError: at construction, for a concrete ``p`` outside (0, 1] or NaN, or
            a bad concrete ``tau``. Traced ``p >= 1`` keeps everything, traced
            ``p <= 0`` or NaN keeps only the top token.

    References:
        Holtzman, Buys, Du, Forbes, Choi. The Curious Case of Neural Text
        Degeneration. ICLR 2020 (arXiv:1904.09751).
    """

    p: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_real("p", self.p, lambda a: (a > 0) & (a <= 1), "in (0, 1] (1 disables top-p)")
        _check_tau(self.tau)


@_pytree
@dataclasses.dataclass(frozen=True)
class Chain(Strategy):
    """A composition of strategies applied in the order written.

    ``chain(Temperature(0.7), TopK(50), TopP(0.9))`` scales, keeps the top 50,
    then keeps the nucleus of what is left (renormalised). Every truncation ranks
    tokens by the chain's input logits, and temperatures multiply, so a chain of
    built-in strategies is one scale and one kept prefix of that ranking (see
    :mod:`jaxsample.samplers._reference`). Parts of other types receive the
    log-weights of the parts before them. An empty chain changes nothing. Build
    it with :func:`chain`.
    """

    parts: tuple[Strategy, ...] = ()

    def __post_init__(self) -> None:
        for part in self.parts:
            if not isinstance(part, Strategy):
                raise ValueError(f"chain parts must be strategies, got {part!r}")

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Apply the parts in order (built-in runs of parts as one prefix state)."""
        from jaxsample.samplers._reference import chain_log_weights

        return chain_log_weights(z, self.parts)


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


BUILT_IN: tuple[type[Strategy], ...] = (Greedy, Temperature, TopK, TopP)


def prefix_parts(strategy: Strategy) -> tuple[Strategy, ...] | None:
    """The built-in parts of ``strategy`` in order, or ``None`` if it holds another kind."""
    if type(strategy) in BUILT_IN:
        return (strategy,)
    if type(strategy) is Chain:
        out: list[Strategy] = []
        for part in strategy.parts:
            sub = prefix_parts(part)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    return None


def leaf_parts(strategy: Strategy) -> list[Strategy]:
    """The strategies ``strategy`` is made of, in order: compositions flattened.

    A composition is a strategy whose ``parts`` are strategies (a :class:`Chain`,
    or the bound form of a strategy that reads a history).
    """
    parts = getattr(strategy, "parts", None)
    if isinstance(parts, tuple) and all(isinstance(p, Strategy) for p in parts):
        return [q for part in parts for q in leaf_parts(part)]
    return [strategy]


@functools.cache
def _parameters(cls: type[Strategy]) -> tuple[tuple[str, bool], ...]:
    """The numeric parameters of strategies of class ``cls``: name, and whether in ``TRAILING``.

    Static fields and the fields a strategy lists in ``STATE`` are not parameters.
    """
    trailing: frozenset[str] = getattr(cls, "TRAILING", frozenset())
    state: frozenset[str] = getattr(cls, "STATE", frozenset())
    return tuple(
        (f.name, f.name in trailing)
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
        if not f.metadata.get("static") and f.name not in state
    )


def _fits(shape: tuple[int, ...], lead: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``lead`` itself (NumPy's rules, axes aligned at the end)."""
    return len(shape) <= len(lead) and all(
        a in (1, b) for a, b in zip(reversed(shape), reversed(lead), strict=False)
    )


def check_broadcast(strategy: Strategy, lead: tuple[int, ...]) -> None:
    """Check that every numeric parameter of ``strategy`` broadcasts against the rows ``lead``.

    A parameter's shape must fit the rows of the logits: the whole shape, less the
    last axis for the fields a strategy lists in ``TRAILING`` (a bias ``[V]``, an id
    list ``[n]``). The fields a strategy lists in ``STATE`` (a generation's
    history) and static fields are not parameters.

    Raises:
        ValueError: naming the parameter (``Class.field``), its shape and ``lead``, for
            one that does not broadcast to ``lead``
            (``np.broadcast_shapes(shape, lead) != lead``).
    """
    for part in leaf_parts(strategy):
        for name, trailing in _parameters(type(part)):  # type: ignore[arg-type]
            for leaf in jax.tree_util.tree_leaves(getattr(part, name)):
                shape = tuple(np.shape(leaf))
                if not _fits(shape[:-1] if trailing else shape, lead):
                    raise ValueError(
                        "strategy parameters must be scalars or broadcast against the rows "
                        f"of the logits (one value per row), logits.shape[:-1] = {lead}; got "
                        f"{type(part).__name__}.{name} of shape {shape}"
                    )
