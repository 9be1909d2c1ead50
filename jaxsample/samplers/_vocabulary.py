"""The stateless strategies of the inference engines.

Min-p, typical, epsilon, eta, top-n-sigma and XTC here; logit bias, allow and ban
lists in :mod:`._ids`.

Each strategy is a frozen dataclass registered as a pytree (numeric parameters are
leaves: traced, vmappable, one value per row allowed) and defines only
:meth:`~jaxsample.Strategy.log_weights`, the map from sanitised float32 logits
``z`` ``[..., V]`` to log-weights. :func:`jaxsample.probs` is their softmax and
:func:`jaxsample.sample` draws from it exactly (its general route: an inverse CDF
over the log-weights). Every strategy keeps at least one token per row, so it
composes with :func:`jaxsample.chain` in any order: inside a chain it receives the
log-weights of the parts before it (``-inf`` where they removed a token), and its
probabilities are measured over the tokens still kept, as the engines measure them
on their remaining candidates.

Parameters broadcast against the leading axes of the logits: a parameter of shape
``[B]`` gives one value per row of logits ``[B, V]``. Concrete parameters are
validated at construction (``ValueError`` naming the parameter, the value and the
valid range); traced values are never checked, and each docstring says what a
traced out-of-range value does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxsample.samplers._layout import mass
from jaxsample.samplers._reference import descending_key, kept_prefix
from jaxsample.samplers._strategies import (
    Strategy,
    Temperature,
    _check_real,
    _check_tau,
    _pytree,
    check_broadcast,
)

__all__ = [
    "XTC",
    "Epsilon",
    "Eta",
    "MinP",
    "TopNSigma",
    "Typical",
    "check_rows",
]


def param(value: Any, dtype: Any = jnp.float32) -> jax.Array:
    """A parameter as ``[..., 1]``, broadcastable against logits ``[..., V]``."""
    return jnp.asarray(value, dtype)[..., None]


def tempered(z: jax.Array, tau: Any) -> jax.Array:
    """``Temperature(tau)``'s log-weights of ``z`` (``z`` itself for the constant 1)."""
    if isinstance(tau, int | float) and not isinstance(tau, bool) and tau == 1.0:
        return z
    return Temperature(tau).log_weights(z)


def row_sum(a: jax.Array) -> jax.Array:
    """The sums of the rows of ``a`` ``[..., V]``: ``[..., 1]``, added in the layout's order.

    A row gets the same bits in any batch: XLA's own reductions may add in an order
    that depends on the array's shape, and the rules built on these sums (a typical
    set, a threshold on probabilities) can hang on their last bits.
    """
    return mass(a.reshape(-1, a.shape[-1])).reshape(*a.shape[:-1], 1)


def log_probs(y: jax.Array) -> jax.Array:
    """Log-softmax of log-weights ``y`` ``[..., V]`` with at least one finite entry per row."""
    m = jnp.max(y, axis=-1, keepdims=True)
    shifted = jnp.where(y > -jnp.inf, y - m, -jnp.inf)
    out: jax.Array = shifted - jnp.log(row_sum(jnp.exp(shifted)))
    return out


def entropy_nats(logp: jax.Array) -> jax.Array:
    """Entropy in nats of log-probabilities ``[..., V]``: ``[..., 1]`` (0 log 0 = 0)."""
    p = jnp.exp(logp)
    return row_sum(jnp.where(p > 0, -p * logp, 0.0))


def truncate(y: jax.Array, keep: jax.Array) -> jax.Array:
    """Keep ``y`` where ``keep`` and every maximum of ``y``; ``-inf`` elsewhere.

    A threshold rule that keeps the most likely token by definition stays so even
    for traced parameters outside their range (NaN, or a threshold above the max).
    """
    top = y == jnp.max(y, axis=-1, keepdims=True)
    return jnp.where(keep | top, y, -jnp.inf)


def settle(y: jax.Array, fallback: jax.Array) -> jax.Array:
    """Make edited log-weights ``y`` valid, given the row they were computed from.

    NaN becomes ``-inf``; a row holding ``+inf`` keeps only its ``+inf`` entries
    (as 0, i.e. uniformly); a row left with no finite entry is ``fallback``.
    """
    y = jnp.where(jnp.isnan(y), -jnp.inf, y)
    has_inf = jnp.any(y == jnp.inf, axis=-1, keepdims=True)
    y = jnp.where(has_inf, jnp.where(y == jnp.inf, 0.0, -jnp.inf), y)
    empty = ~jnp.any(y > -jnp.inf, axis=-1, keepdims=True)
    return jnp.where(empty, fallback, y)


def _check_unit(name: str, value: Any, closed_top: bool, rule: str) -> None:
    if closed_top:
        _check_real(name, value, lambda a: (a >= 0) & (a <= 1), rule)
    else:
        _check_real(name, value, lambda a: (a >= 0) & (a < 1), rule)


@_pytree
@dataclasses.dataclass(frozen=True)
class MinP(Strategy):
    r"""Min-p sampling: temperature, then keep the tokens ``min_p`` times as likely as the top.

    With :math:`y = z / \tau` a token is kept iff :math:`p_i \ge p_{min} \max_j p_j`,
    computed in log space: :math:`y_i \ge \max_j y_j + \log p_{min}` (the form of
    llama.cpp's ``llama_sampler_min_p_apply``; Hugging Face's ``MinPLogitsWarper`` and
    vLLM compare probabilities, which differs only on a boundary tie in the last
    bit). The most likely tokens are always kept. ``min_p = 0`` keeps every token.
    Temperature comes first, as in Hugging Face and vLLM (where min-p follows the
    temperature); a rule on ratios of probabilities, it does depend on it.

    Args:
        min_p: in [0, 1], scalar or per-row array. Traced values above 1 or NaN keep
            only the most likely tokens.
        tau: temperature applied first (see :class:`~jaxsample.Temperature`).

    Raises:
        ValueError: at construction, for a concrete ``min_p`` outside [0, 1] or NaN,
            or a bad concrete ``tau``.

    References:
        Nguyen, Baker, Neo, Roush, Kirsch, Shwartz-Ziv. Turning Up the Heat: Min-p
        Sampling for Creative and Coherent LLM Outputs. ICLR 2025 (arXiv:2407.01082).
    """

    min_p: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_unit("min_p", self.min_p, True, "in [0, 1] (0 disables min-p)")
        _check_tau(self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Keep ``y_i >= max y + log(min_p)`` of ``y = z / tau``; ``[..., V]`` float32."""
        y = tempered(z, self.tau)
        p = param(self.min_p)
        floor = jnp.max(y, axis=-1, keepdims=True) + jnp.log(p)
        return truncate(y, y >= floor)


@_pytree
@dataclasses.dataclass(frozen=True)
class Typical(Strategy):
    r"""Locally typical sampling: keep the tokens whose surprise is closest to the entropy.

    With :math:`p = \mathrm{softmax}(z / \tau)` and its entropy :math:`H` (nats), the
    tokens are ranked by :math:`|-\log p_i - H|` ascending (ties by lowest index),
    and the smallest prefix of that ranking whose mass reaches ``mass`` is kept (the
    token that crosses it included): token ``r`` of the ranking is kept iff the mass
    of the tokens ranked before it is below ``mass``. This is Hugging Face's
    ``TypicalLogitsWarper`` (llama.cpp's ``llama_sampler_typical_apply`` differs
    only when a cumulative mass equals ``mass`` exactly). ``mass = 1`` keeps every
    token. The kept prefix is found without a sort (:func:`~._reference.kept_prefix`), the
    masses ahead added in the layout's fixed order.

    Args:
        mass: in (0, 1], scalar or per-row array. Traced ``mass <= 0`` or NaN keeps
            only the first token of the ranking; ``>= 1`` keeps everything.
        tau: temperature applied first (Hugging Face applies its temperature warper
            before the typical one).

    Raises:
        ValueError: at construction, for a concrete ``mass`` outside (0, 1] or NaN,
            or a bad concrete ``tau``.

    References:
        Meister, Pimentel, Wiher, Cotterell. Locally Typical Sampling. TACL 2023
        (arXiv:2202.00666).
    """

    mass: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_real("mass", self.mass, lambda a: (a > 0) & (a <= 1), "in (0, 1] (1 disables)")
        _check_tau(self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Keep the typical set of ``softmax(z / tau)``; ``[..., V]`` float32."""
        y = tempered(z, self.tau)
        logp = log_probs(y)
        h = entropy_nats(logp)
        score = jnp.where(y > -jnp.inf, jnp.abs(-logp - h), jnp.inf)
        rows = score.reshape(-1, score.shape[-1])
        bound = jnp.broadcast_to(param(self.mass), (*y.shape[:-1], 1)).reshape(-1)
        # The complement of the descending key ranks the scores (>= 0) ascending.
        keep = kept_prefix(~descending_key(rows), jnp.exp(logp).reshape(rows.shape), bound)
        first = jnp.argmin(rows, axis=-1)[:, None] == lax.broadcasted_iota(jnp.int32, rows.shape, 1)
        keep = keep | first | (bound >= 1)[:, None]
        return jnp.where(keep.reshape(y.shape), y, -jnp.inf)


@_pytree
@dataclasses.dataclass(frozen=True)
class Epsilon(Strategy):
    r"""Epsilon sampling: keep the tokens of probability at least ``eps``.

    With :math:`p = \mathrm{softmax}(z / \tau)`, keep :math:`p_i \ge \epsilon`, and
    always the most likely tokens (Hugging Face's ``EpsilonLogitsWarper`` with
    ``min_tokens_to_keep=1``). ``eps = 0`` keeps every token.

    Args:
        eps: in [0, 1), scalar or per-row array. Traced values ``>= 1`` or NaN keep
            only the most likely tokens.
        tau: temperature applied first.

    Raises:
        ValueError: at construction, for a concrete ``eps`` outside [0, 1) or NaN,
            or a bad concrete ``tau``.

    References:
        Hewitt, Manning, Liang. Truncation Sampling as Language Model Desmoothing.
        Findings of EMNLP 2022 (arXiv:2210.15191).
    """

    eps: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_unit("eps", self.eps, False, "in [0, 1) (0 disables)")
        _check_tau(self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Keep ``softmax(z / tau) >= eps``; ``[..., V]`` float32."""
        y = tempered(z, self.tau)
        p = jnp.exp(log_probs(y))
        return truncate(y, p >= param(self.eps))


@_pytree
@dataclasses.dataclass(frozen=True)
class Eta(Strategy):
    r"""Eta sampling: an entropy-dependent epsilon.

    With :math:`p = \mathrm{softmax}(z / \tau)` and its entropy :math:`H` (nats), keep
    :math:`p_i \ge \min(\eta, \sqrt{\eta}\, e^{-H})`, and always the most likely
    tokens (Hugging Face's ``EtaLogitsWarper``). ``eta = 0`` keeps every token.

    Args:
        eta: in [0, 1), scalar or per-row array. Traced values ``>= 1`` cut at
            ``min(eta, sqrt(eta) exp(-H))`` all the same; NaN keeps only the most
            likely tokens.
        tau: temperature applied first.

    Raises:
        ValueError: at construction, for a concrete ``eta`` outside [0, 1) or NaN,
            or a bad concrete ``tau``.

    References:
        Hewitt, Manning, Liang. Truncation Sampling as Language Model Desmoothing.
        Findings of EMNLP 2022 (arXiv:2210.15191).
    """

    eta: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_unit("eta", self.eta, False, "in [0, 1) (0 disables)")
        _check_tau(self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Keep ``p_i >= min(eta, sqrt(eta) exp(-H))``; ``[..., V]`` float32."""
        y = tempered(z, self.tau)
        logp = log_probs(y)
        eta = param(self.eta)
        cut = jnp.minimum(eta, jnp.sqrt(eta) * jnp.exp(-entropy_nats(logp)))
        return truncate(y, jnp.exp(logp) >= cut)


@_pytree
@dataclasses.dataclass(frozen=True)
class TopNSigma(Strategy):
    r"""Top-n-sigma: keep the logits within ``n`` standard deviations of the maximum.

    With :math:`y = z / \tau`, keep :math:`y_i \ge \max_j y_j - n\,\sigma(y)`, where
    :math:`\sigma` is the population standard deviation of the finite entries of the
    row (llama.cpp's ``llama_sampler_top_n_sigma_apply``). The kept set does not
    depend on the temperature (both sides scale with it); ``tau`` only matters for
    the weights. ``n = inf`` keeps every token; ``n = 0`` keeps the maxima.
    (llama.cpp reads ``n <= 0`` as "off"; :func:`jaxsample.presets.llama_cpp` leaves
    the part out then.)

    Args:
        n: ``>= 0``, scalar or per-row array. Traced negative or NaN values keep only
            the most likely tokens.
        tau: temperature applied first.

    Raises:
        ValueError: at construction, for a concrete ``n`` negative or NaN, or a bad
            concrete ``tau``.

    References:
        Tang, Chen, Li, Xiao. Top-nσ: Not All Logits Are You Need.
        arXiv:2411.07641 (2024).
    """

    n: Any
    tau: Any = 1.0

    def __post_init__(self) -> None:
        _check_real("n", self.n, lambda a: a >= 0, "in [0, inf]")
        _check_tau(self.tau)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Keep ``y >= max y - n std(y)`` of ``y = z / tau``; ``[..., V]`` float32."""
        y = tempered(z, self.tau)
        finite = y > -jnp.inf
        count = jnp.sum(finite, axis=-1, keepdims=True)
        mean = row_sum(jnp.where(finite, y, 0.0)) / count
        var = row_sum(jnp.where(finite, (y - mean) ** 2, 0.0)) / count
        n = param(self.n)
        spread = jnp.where(n == jnp.inf, jnp.inf, n * jnp.sqrt(var))
        return truncate(y, y >= jnp.max(y, axis=-1, keepdims=True) - spread)


@_pytree
@dataclasses.dataclass(frozen=True)
class XTC(Strategy):
    r"""Exclude Top Choices: with some probability, remove the likeliest tokens but one.

    With :math:`p = \mathrm{softmax}(z)`, let :math:`A = \{i : p_i \ge t\}`. When
    :math:`|A| \ge 2` the *cut* removes every token of :math:`A` except the least
    likely one (ties: the one ranked last, i.e. of highest index among the tied);
    otherwise it removes nothing. ``threshold > 0.5`` never removes anything (at
    most one token can pass it), as in llama.cpp's ``llama_sample_xtc_apply``.

    The cut is made with probability ``probability``, decided once per row and
    step by a coin:

    * ``coin=None`` (the default): the strategy is the mixture
      :math:`\pi = (1 - a)\,p + a\,p^{cut}`, the exact distribution of one draw
      with the coin drawn from the key. :func:`jaxsample.probs` returns it and
      :func:`jaxsample.sample` draws from it. Later parts of a chain then act on
      the mixture.
    * ``coin`` given (bool or 0/1 per row): the cut is made where it is true. This
      is the engine's order, coin first and the later parts on the chosen branch;
      :func:`jaxsample.prepare` (and the decode loop) fill it from the row's key.

    Args:
        threshold: in [0, 1], scalar or per-row array.
        probability: in [0, 1], scalar or per-row array. Traced values are clipped
            to [0, 1] (NaN: never).
        coin: ``None``, or a bool array broadcast against the rows.

    Raises:
        ValueError: at construction, for a concrete ``threshold`` or ``probability``
            outside [0, 1] or NaN.

    References:
        Weidmann (p-e-w). Exclude Top Choices (XTC): A sampler that boosts
        creativity, breaks writing clichés, and inhibits non-verbatim repetition.
        text-generation-webui pull request 6335 (2024); llama.cpp
        ``src/llama-sampling.cpp``.
    """

    threshold: Any
    probability: Any
    coin: Any = None

    def __post_init__(self) -> None:
        _check_unit("threshold", self.threshold, True, "in [0, 1]")
        _check_unit("probability", self.probability, True, "in [0, 1]")

    def cut(self, y: jax.Array) -> jax.Array:
        """The log-weights ``y`` ``[..., V]`` after the cut (see the class docstring)."""
        logp = log_probs(y)
        t = param(self.threshold)
        above = (jnp.exp(logp) >= t) & (t <= 0.5)
        lowest = jnp.min(jnp.where(above, y, jnp.inf), axis=-1, keepdims=True)
        index = jax.lax.broadcasted_iota(jnp.int32, y.shape, y.ndim - 1)
        last = jnp.max(jnp.where(above & (y == lowest), index, -1), axis=-1, keepdims=True)
        remove = above & (index != last) & (jnp.sum(above, axis=-1, keepdims=True) >= 2)
        return jnp.where(remove, -jnp.inf, y)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """The mixture (``coin=None``) or the branch the coin chose; ``[..., V]`` float32."""
        if self.coin is not None:
            return jnp.where(jnp.asarray(self.coin, bool)[..., None], self.cut(z), z)
        a = jnp.clip(param(self.probability), 0.0, 1.0)
        a = jnp.where(jnp.isnan(a), 0.0, a)
        keep_all = jnp.log1p(-a) + log_probs(z)
        cut = jnp.log(a) + log_probs(self.cut(z))
        return settle(jnp.logaddexp(keep_all, cut), z)


def check_rows(strategy: Strategy, batch: int) -> None:
    """Check that every parameter of ``strategy`` is a scalar or has one value per row.

    :func:`~._strategies.check_broadcast` against ``(batch,)``: the shapes that
    broadcast against one axis of ``batch`` rows are ``()``, ``(1,)`` and
    ``(batch,)``. Fields listed in a strategy's ``TRAILING`` (a bias ``[V]``, an
    id list ``[n]``) carry a last axis of their own: only their leading axes are
    checked.

    Raises:
        ValueError: naming the parameter and its shape, for a parameter that does not
            match a batch of ``batch`` rows.
    """
    check_broadcast(strategy, (batch,))
