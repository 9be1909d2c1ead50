"""The strategies that read a generation's history.

Penalties, min-new-tokens, no-repeat-n-gram, DRY and mirostat.

Each is a :class:`~._history.HistoryPart`: it declares the fields of the
:class:`~._history.History` it reads and its log-weights given them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.samplers._history import (
    _FLOAT_MAX_LOG,
    _LN2,
    History,
    HistoryPart,
    Needs,
    _check_last_n,
    _penalty_needs,
    _seen_counts,
)
from jaxsample.samplers._ids import id_mask, scatter_max
from jaxsample.samplers._strategies import (
    _check_real,
    _check_tau,
    _concrete,
    _pytree,
)
from jaxsample.samplers._vocabulary import (
    log_probs,
    param,
    settle,
    tempered,
    truncate,
)

__all__ = [
    "DRY",
    "FrequencyPenalty",
    "MinNewTokens",
    "Mirostat2",
    "NoRepeatNGram",
    "PresencePenalty",
    "RepetitionPenalty",
]


@_pytree
@dataclasses.dataclass(frozen=True)
class RepetitionPenalty(HistoryPart):
    r"""The CTRL repetition penalty: a seen token's logit moves away from likely.

    For every token seen in the context, :math:`z_i / \rho` if :math:`z_i > 0`,
    else :math:`z_i \rho` (multiplying a negative logit lowers it; dividing it, as
    the paper wrote, would raise it). The context is the prompt and the generated
    tokens, as in Hugging Face's ``RepetitionPenaltyLogitsProcessor`` and vLLM, or
    the last ``last_n`` context tokens (llama.cpp's ``penalty_last_n``).
    ``rho = 1`` changes nothing; ``rho < 1`` favours repeats. The sign of the input
    matters: put this part first (see the module docstring).

    Args:
        rho: ``> 0`` and finite, scalar or per-row array. Traced non-positive or NaN
            values give undefined weights; the row then follows the bad-input
            rules of :func:`jaxsample.sample`.
        last_n: static: ``None`` (the prompt and every generated token), an int >= 1
            (the last ``last_n`` context tokens, llama.cpp's window) or -1 (the whole
            context the state keeps).

    Raises:
        ValueError: at construction, for a concrete ``rho`` that is not positive and
            finite, or a bad ``last_n``.

    References:
        Keskar, McCann, Varshney, Xiong, Socher. CTRL: A Conditional Transformer
        Language Model for Controllable Generation. arXiv:1909.05858 (2019).
    """

    rho: Any
    last_n: int | None = dataclasses.field(default=None, metadata={"static": True})
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        _check_real("rho", self.rho, lambda a: (a > 0) & np.isfinite(a), "> 0 and finite")
        _check_last_n(self.last_n)

    def needs(self) -> Needs:
        """The prompt mask and counts, or a window of ``last_n`` tokens."""
        return _penalty_needs(self.last_n, prompt=True)

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """Penalise the seen tokens of ``z`` ``[..., V]``."""
        seen = _seen_counts(self, history, z.shape[-1], context=True) > 0
        rho = param(self.rho)
        return settle(jnp.where(seen, jnp.where(z > 0, z / rho, z * rho), z), z)


@dataclasses.dataclass(frozen=True)
class _CountPenalty(HistoryPart):
    """The fields and checks the OpenAI frequency and presence penalties share."""

    a: Any
    last_n: int | None = dataclasses.field(default=None, metadata={"static": True})
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        _check_real("a", self.a, np.isfinite, "finite")
        _check_last_n(self.last_n)

    def needs(self) -> Needs:
        """The generated counts, or a window of ``last_n`` tokens."""
        return _penalty_needs(self.last_n, prompt=False)


@_pytree
@dataclasses.dataclass(frozen=True)
class FrequencyPenalty(_CountPenalty):
    r"""The OpenAI frequency penalty: :math:`z_i - a\,c_i`, ``c_i`` the generated count of ``i``.

    The counts are those of the generated tokens (the prompt excluded), as in the
    OpenAI API and vLLM, or of the last ``last_n`` context tokens (llama.cpp).
    ``a = 0`` changes nothing; a negative ``a`` favours repeats.

    Args:
        a: finite, scalar or per-row array.
        last_n: static: ``None`` (the generated tokens), an int >= 1 (the last
            ``last_n`` context tokens, prompt included: llama.cpp) or -1 (the whole
            context the state keeps, prompt included).

    Raises:
        ValueError: at construction, for a concrete ``a`` that is not finite, or a
            bad ``last_n``.
    """

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """``z - a * counts``; ``[..., V]`` float32."""
        counts = _seen_counts(self, history, z.shape[-1], context=False)
        return settle(z - param(self.a) * counts.astype(jnp.float32), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class PresencePenalty(_CountPenalty):
    r"""The OpenAI presence penalty: :math:`z_i - a\,[c_i > 0]`.

    The tokens are those generated (prompt excluded), as in the OpenAI API and vLLM,
    or the last ``last_n`` context tokens (llama.cpp).

    Args:
        a: finite, scalar or per-row array.
        last_n: static: ``None`` (the generated tokens), an int >= 1 (the last
            ``last_n`` context tokens, prompt included: llama.cpp) or -1 (the whole
            context the state keeps, prompt included).

    Raises:
        ValueError: at construction, for a concrete ``a`` that is not finite, or a
            bad ``last_n``.
    """

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """``z - a * [counts > 0]``; ``[..., V]`` float32."""
        counts = _seen_counts(self, history, z.shape[-1], context=False)
        return settle(z - param(self.a) * (counts > 0).astype(jnp.float32), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class MinNewTokens(HistoryPart):
    """Remove the end-of-sequence token until ``n`` tokens were generated (HF, vLLM ``min_tokens``).

    Args:
        n: int ``>= 0``, scalar or per-row array.
        eos_id: int, the token removed, scalar or per-row array. A row where it is
            the only finite token is left unchanged.

    Raises:
        ValueError: at construction, for a concrete ``n`` or ``eos_id`` that is not
            an integer ``>= 0``.
    """

    n: Any
    eos_id: Any
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        for name in ("n", "eos_id"):
            arr = _concrete(getattr(self, name))
            if arr is not None and (
                not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_
            ):
                raise ValueError(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
            _check_real(name, arr, lambda a: a >= 0, "an integer >= 0")

    def needs(self) -> Needs:
        """Only the step."""
        return Needs()

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """``-inf`` at ``eos_id`` while ``step < n``."""
        tokens = jax.lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
        early = param(history.step, jnp.int32) < param(self.n, jnp.int32)
        banned = early & (tokens == param(self.eos_id, jnp.int32))
        return settle(jnp.where(banned, -jnp.inf, z), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class NoRepeatNGram(HistoryPart):
    """Remove every token that would complete an n-gram already in the context.

    With the context ``c`` (prompt and generated tokens), a token ``v`` is removed
    iff some ``c[i : i + n]`` equals the last ``n - 1`` tokens followed by ``v``
    (Hugging Face's ``NoRepeatNGramLogitsProcessor``; ``n = 1`` removes every token
    of the context). A row that would lose every finite token is left unchanged.

    Args:
        n: static int >= 1, the n-gram size.
        last_n: ``None`` (the whole context the state keeps) or a static int >= n,
            the number of context tokens searched.

    Raises:
        ValueError: at construction, for a bad ``n`` or ``last_n``.
    """

    n: int = dataclasses.field(metadata={"static": True})
    last_n: int | None = dataclasses.field(default=None, metadata={"static": True})
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f"n must be a Python int >= 1, got {self.n!r}")
        _check_last_n(self.last_n)
        if self.last_n is not None and self.last_n < self.n:
            raise ValueError(f"last_n must be >= n={self.n}, got {self.last_n}")

    def needs(self) -> Needs:
        """A window of recent tokens."""
        return Needs(window=-1 if self.last_n is None else self.last_n)

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """``-inf`` at the tokens that would repeat an n-gram."""
        assert history.recent is not None
        r = history.recent if self.last_n is None else history.recent[..., -self.last_n :]
        w, n = r.shape[-1], self.n
        if w < n:
            return z
        starts = w - n + 1  # windows r[i : i + n], i < starts
        grams = jnp.stack([r[..., j : starts + j] for j in range(n)], axis=-1)  # [..., s, n]
        suffix = r[..., w - n + 1 :]  # [..., n - 1]
        match = jnp.all(grams >= 0, axis=-1)
        if n > 1:
            match = match & jnp.all(grams[..., :-1] == suffix[..., None, :], axis=-1)
        banned = id_mask(jnp.where(match, grams[..., -1], -1), z.shape[-1])
        return settle(jnp.where(banned, -jnp.inf, z), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class DRY(HistoryPart):
    r"""DRY ("don't repeat yourself"): penalise the tokens that would extend a repeat.

    For each earlier position of the context, let ``L`` be the length of the
    longest run of tokens ending there that equals the run ending at the last
    token, not reaching back past the most recent sequence breaker of the context.
    The token that followed that earlier run would extend a repeat of length ``L``;
    if :math:`L \ge` ``allowed_length`` it loses
    :math:`\text{multiplier} \cdot \text{base}^{L - \text{allowed\_length}}` (its
    largest ``L``; the exponent is capped at :math:`88.72 / \ln(\text{base})` so the
    penalty stays finite), unless it is a breaker itself. This is llama.cpp's
    ``llama_sampler_dry_apply`` with single-token breakers (its string breakers
    are tokenised; pass their token ids here), itself a port of the
    text-generation-webui ``DRYLogitsProcessor``.

    Args:
        multiplier: ``>= 0``, scalar or per-row array; 0 disables.
        base: ``>= 1``, scalar or per-row array. Traced values below 1 disable (as
            in llama.cpp).
        allowed_length: int ``>= 1``, scalar or per-row array.
        breakers: static tuple of token ids that break a repeat.
        last_n: ``None`` or -1 (the whole context the state keeps) or a static int >= 2,
            the number of context tokens searched (llama.cpp's
            ``dry_penalty_last_n``).

    Raises:
        ValueError: at construction, for a bad concrete parameter.

    References:
        Weidmann (p-e-w). DRY: A modern repetition penalty that reliably prevents
        looping. text-generation-webui pull request 5677 (2024).
    """

    multiplier: Any
    base: Any = 1.75
    allowed_length: Any = 2
    breakers: tuple[int, ...] = dataclasses.field(default=(), metadata={"static": True})
    last_n: int | None = dataclasses.field(default=None, metadata={"static": True})
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        _check_real("multiplier", self.multiplier, lambda a: (a >= 0) & np.isfinite(a), ">= 0")
        _check_real("base", self.base, lambda a: (a >= 1) & np.isfinite(a), ">= 1 and finite")
        arr = _concrete(self.allowed_length)
        if arr is not None and (not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
            raise ValueError(f"allowed_length must be an integer >= 1, got {self.allowed_length!r}")
        _check_real("allowed_length", arr, lambda a: a >= 1, "an integer >= 1")
        if not isinstance(self.breakers, tuple) or not all(
            isinstance(b, int) and not isinstance(b, bool) and b >= 0 for b in self.breakers
        ):
            raise ValueError(f"breakers must be a tuple of token ids >= 0, got {self.breakers!r}")
        _check_last_n(self.last_n)

    def needs(self) -> Needs:
        """A window of recent tokens."""
        return Needs(window=-1 if self.last_n in (None, -1) else self.last_n)

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """``z`` minus the DRY penalties; ``[..., V]`` float32."""
        assert history.recent is not None
        whole = self.last_n in (None, -1)
        r = history.recent if whole else history.recent[..., -self.last_n :]  # type: ignore[operator]
        w = r.shape[-1]
        if w < 2:
            return z
        brk = jnp.asarray(self.breakers, jnp.int32)

        def is_breaker(t: jax.Array) -> jax.Array:
            if not self.breakers:
                return jnp.zeros(t.shape, bool)
            out: jax.Array = jnp.any(t[..., None] == brk, axis=-1)
            return out

        suffix = r[..., ::-1]  # suffix[k] = r[w - 1 - k]
        usable = (suffix >= 0) & ~is_breaker(suffix)  # [..., w]
        ends = jnp.arange(w - 1)  # earlier positions i
        k = jnp.arange(w - 1)
        src = ends[:, None] - k[None, :]  # [w - 1, w - 1] position i - k
        earlier = jnp.take(r, jnp.clip(src, 0, w - 1), axis=-1)  # [..., w - 1, w - 1]
        same = (src >= 0) & (earlier == suffix[..., None, : w - 1]) & usable[..., None, : w - 1]
        length = jnp.sum(jnp.cumprod(same.astype(jnp.int32), axis=-1), axis=-1)  # [..., w - 1]
        allowed = param(self.allowed_length, jnp.int32)
        nxt = r[..., 1:]  # the token after position i
        hit = (length >= allowed) & (nxt >= 0) & ~is_breaker(nxt)
        vocab = z.shape[-1]
        longest = scatter_max(jnp.where(hit, nxt, -1), length, vocab, -1)  # [..., V]
        base = param(self.base)
        cap = jnp.where(
            base > 1.000001, jnp.floor(_FLOAT_MAX_LOG / jnp.log(jnp.maximum(base, 1.0))), jnp.inf
        )
        exponent = jnp.minimum((longest - allowed).astype(jnp.float32), cap)
        penalty = param(self.multiplier) * jnp.power(base, exponent)
        on = (longest >= allowed) & (base >= 1.0)
        return settle(z - jnp.where(on, penalty, 0.0), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class Mirostat2(HistoryPart):
    r"""Mirostat 2.0: keep the tokens whose surprise is at most ``mu``, then adapt ``mu``.

    With :math:`y = z / \tau` and :math:`p = \mathrm{softmax}(y)`, keep the tokens
    with :math:`-\log_2 p_i \le \mu` (the most likely one always). After a token
    ``x`` is drawn, :func:`advance` sets
    :math:`\mu \leftarrow \mu - \eta\,(-\log_2 \pi(x) - \text{target})`, where
    :math:`\pi` is the distribution ``x`` was drawn from; :math:`\mu` starts at
    ``2 * target``. This is llama.cpp's ``llama_sampler_mirostat_v2_apply``, where
    mirostat selects the token and so ends the chain: put it last, and :math:`\pi`
    is its own truncated distribution.

    Args:
        target: target surprise in bits (llama.cpp's ``mirostat_tau``, default 5),
            finite and ``>= 0``, scalar or per-row array.
        lr: learning rate (llama.cpp's ``mirostat_eta``, default 0.1), finite and
            ``>= 0``.
        tau: temperature applied first (llama.cpp's chain with mirostat 2 applies
            its temperature before it).

    Raises:
        ValueError: at construction, for a bad concrete parameter.

    References:
        Basu, Ramachandran, Keskar, Varshney. Mirostat: A Neural Text Decoding
        Algorithm that Directly Controls Perplexity. ICLR 2021 (arXiv:2007.14966).
    """

    target: Any = 5.0
    lr: Any = 0.1
    tau: Any = 1.0
    history: History | None = dataclasses.field(default=None, kw_only=True, repr=False)

    def __post_init__(self) -> None:
        for name in ("target", "lr"):
            _check_real(name, getattr(self, name), lambda a: (a >= 0) & np.isfinite(a), ">= 0")
        _check_tau(self.tau)

    def needs(self) -> Needs:
        """``mu``."""
        return Needs(mu=True)

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """Keep the tokens of surprise ``<= mu``; ``[..., V]`` float32."""
        assert history.mu is not None
        y = tempered(z, self.tau)
        surprise = -log_probs(y) / _LN2
        return truncate(y, surprise <= param(history.mu))
