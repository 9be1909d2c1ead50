"""Strategies that read the history of a generation, and the one state they share.

Penalties, min-new-tokens, no-repeat-n-gram, DRY and mirostat depend on what was
generated before. Their state is one pytree, :class:`History`:

* ``step``: int32 ``[...]``, the number of tokens generated so far;
* ``counts``: int32 ``[..., V]``, how often each token was generated (prompt
  excluded), or ``None``;
* ``prompt``: bool ``[..., V]``, the tokens present in the prompt, or ``None``;
* ``recent``: int32 ``[..., W]``, the last ``W`` tokens of the context (prompt then
  generated tokens), oldest first, ``-1`` where the context is shorter, or ``None``;
* ``mu``: float32 ``[...]``, mirostat's threshold, or ``None``.

Only the fields some part of the strategy needs are kept (a static check of its
types), so a plain strategy carries nothing. The data flow is:

1. :func:`init_history` builds the state from the prompt;
2. :func:`bind` turns ``(strategy, history)`` into a stateless strategy: each
   history part gets the state, and an :class:`~jaxsample.XTC` part its coin when a
   key is given; :func:`jaxsample.probs` and :func:`jaxsample.sample` take the
   result like any strategy;
3. :func:`advance` adds the drawn token to the state.

:func:`sample_step` does the three for one step of bare logits; the decode loop
(:func:`jaxsample.generate_ids`) keeps the state in its ``lax.scan`` carry and
calls it once per step. A history part used without a state raises ``ValueError``.

A history part reads logits whose sign or scale may matter (the repetition penalty
divides positive logits and multiplies negative ones), so the strategy that
:func:`bind` returns passes each part the previous part's output as it is: inside a
plain :func:`jaxsample.chain` other parts receive log-weights shifted by the row
maximum. Put penalties first, as every engine does.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.samplers._random import row_keys
from jaxsample.samplers._reference import chain_log_weights, sanitise
from jaxsample.samplers._sampling import check_logits, sample
from jaxsample.samplers._strategies import (
    Chain,
    Strategy,
    _check_real,
    _check_tau,
    _concrete,
    _pytree,
)
from jaxsample.samplers._vocabulary import (
    XTC,
    _parts,
    id_mask,
    log_probs,
    param,
    scatter_max,
    settle,
    tempered,
    truncate,
)

__all__ = [
    "DRY",
    "FrequencyPenalty",
    "History",
    "MinNewTokens",
    "Mirostat2",
    "NoRepeatNGram",
    "PresencePenalty",
    "RepetitionPenalty",
    "advance",
    "bind",
    "init_history",
    "needs_history",
    "sample_step",
]

#: Context tokens kept for a part that looks at the whole context, outside the decode
#: loop (which keeps the whole context).
DEFAULT_WINDOW = 256
#: Counter of the uniform that decides an XTC coin (far from the sampler's counters).
XTC_STREAM = 0x7E5C0001
_LN2 = float(np.log(2.0))
#: ln of the largest float32, llama.cpp's bound on DRY's exponent.
_FLOAT_MAX_LOG = 88.7228391


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class History:
    """The state of the history-dependent strategies (see the module docstring).

    Attributes:
        step: int32 ``[...]`` tokens generated so far.
        counts: int32 ``[..., V]`` generated-token counts, or ``None``.
        prompt: bool ``[..., V]`` tokens present in the prompt, or ``None``.
        recent: int32 ``[..., W]`` last ``W`` context tokens, oldest first, ``-1``
            where the context is shorter, or ``None``.
        mu: float32 ``[...]`` mirostat's threshold (bits), or ``None``.
    """

    step: jax.Array
    counts: jax.Array | None = None
    prompt: jax.Array | None = None
    recent: jax.Array | None = None
    mu: jax.Array | None = None


class Needs(NamedTuple):
    """Which fields of :class:`History` a strategy reads (a static property of its types)."""

    counts: bool = False
    prompt: bool = False
    window: int = 0  # recent tokens kept; -1: the whole context
    mu: bool = False


class HistoryPart(Strategy):
    """Base class of the strategies that read a :class:`History`.

    A subclass declares what it reads (:meth:`needs`) and defines
    :meth:`apply`, its log-weights given the state; :func:`bind` attaches the state.
    """

    history: History | None

    def needs(self) -> Needs:
        """The fields of :class:`History` this part reads."""
        raise NotImplementedError

    def apply(self, z: jax.Array, history: History) -> jax.Array:
        """Log-weights ``[..., V]`` of float32 ``z`` given the state."""
        raise NotImplementedError

    def log_weights(self, z: jax.Array) -> jax.Array:
        """:meth:`apply` with the state attached by :func:`bind`.

        Raises:
            ValueError: if no state is attached.
        """
        if self.history is None:
            raise ValueError(
                f"{type(self).__name__} reads the generation's history: use "
                "jaxsample.sample_step, jaxsample.bind(strategy, history) or generate_ids"
            )
        return self.apply(z, self.history)


def _check_last_n(last_n: int | None) -> None:
    if last_n is not None and (
        not isinstance(last_n, int) or isinstance(last_n, bool) or not (last_n >= 1 or last_n == -1)
    ):
        raise ValueError(
            f"last_n must be None, -1 (the whole context) or a Python int >= 1, got {last_n!r}"
        )


def _window_counts(recent: jax.Array, last_n: int, vocab: int) -> jax.Array:
    """Counts ``[..., V]`` of the last ``last_n`` ids of ``recent`` (``last_n = -1``: all).

    Ids ``-1`` (no token yet) are not counted.
    """
    window = recent if last_n == -1 else recent[..., -last_n:]
    tokens = jnp.arange(vocab, dtype=jnp.int32)
    out: jax.Array = jnp.sum(window[..., :, None] == tokens, axis=-2, dtype=jnp.int32)
    return out


def _seen_counts(part: Any, history: History, vocab: int, context: bool) -> jax.Array:
    """The counts a penalty reads: the last ``last_n`` context tokens, or the history."""
    if part.last_n is not None:
        assert history.recent is not None
        return _window_counts(history.recent, part.last_n, vocab)
    assert history.counts is not None
    counts = history.counts
    if context:
        assert history.prompt is not None
        counts = counts + history.prompt.astype(jnp.int32)
    return counts


def _penalty_needs(last_n: int | None, prompt: bool) -> Needs:
    if last_n is not None:
        return Needs(window=last_n)  # -1: the whole context
    return Needs(counts=True, prompt=prompt)


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


def _history_parts(strategy: Strategy) -> list[HistoryPart]:
    return [p for p in _parts(strategy) if isinstance(p, HistoryPart)]


def needs_history(strategy: Strategy) -> bool:
    """Whether ``strategy`` holds a part that reads a :class:`History` (a static check)."""
    return bool(_history_parts(strategy))


def _needs(strategy: Strategy) -> Needs:
    out = Needs()
    for part in _history_parts(strategy):
        n = part.needs()
        window = -1 if -1 in (out.window, n.window) else max(out.window, n.window)
        out = Needs(out.counts or n.counts, out.prompt or n.prompt, window, out.mu or n.mu)
    return out


def _mirostat(strategy: Strategy) -> Mirostat2 | None:
    found = [p for p in _parts(strategy) if isinstance(p, Mirostat2)]
    if len(found) > 1:
        raise ValueError("a strategy may hold at most one Mirostat2 part (one mu per row)")
    return found[0] if found else None


def init_history(
    strategy: Strategy,
    vocab: int,
    prompt: Any = None,
    *,
    batch: tuple[int, ...] | None = None,
    window: int | None = None,
) -> History:
    """The state of ``strategy`` before the first generated token.

    Args:
        strategy: the strategy the state is for; only the fields its parts read are
            built (:class:`History` with ``None`` elsewhere).
        vocab: the vocabulary size ``V``.
        prompt: int ``[..., P]`` prompt ids, negative ids are padding (ignored), or
            ``None`` for an empty prompt.
        batch: the leading axes ``[...]``; by default ``prompt.shape[:-1]`` (or ``()``).
        window: context tokens kept in ``recent``; by default the largest
            ``last_n`` of the parts, or ``P + DEFAULT_WINDOW`` (256) when a part
            searches the whole context.

    Returns:
        A :class:`History` with ``step`` 0, ``mu = 2 * target`` for a
        :class:`Mirostat2` part.

    Raises:
        ValueError: for a bad ``vocab``, ``prompt`` or ``window``, or several
            :class:`Mirostat2` parts.
    """
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 1:
        raise ValueError(f"vocab must be a Python int >= 1, got {vocab!r}")
    ids = None if prompt is None else jnp.asarray(prompt)
    if ids is not None and (ids.ndim < 1 or not jnp.issubdtype(ids.dtype, jnp.integer)):
        raise ValueError(f"prompt must be int [..., P], got {ids.dtype} {ids.shape}")
    lead = batch if batch is not None else (() if ids is None else ids.shape[:-1])
    need = _needs(strategy)
    mirostat = _mirostat(strategy)
    ids = jnp.full((*lead, 0), -1, jnp.int32) if ids is None else ids.astype(jnp.int32)
    ids = jnp.broadcast_to(ids, (*lead, ids.shape[-1]))
    valid = (ids >= 0) & (ids < vocab)
    ids = jnp.where(valid, ids, -1)
    counts = jnp.zeros((*lead, vocab), jnp.int32) if need.counts else None
    seen = id_mask(ids, vocab) if need.prompt else None
    recent = None
    if need.window:
        if window is None:
            window = ids.shape[-1] + DEFAULT_WINDOW if need.window == -1 else need.window
        if not isinstance(window, int) or isinstance(window, bool) or window < 1:
            raise ValueError(f"window must be a Python int >= 1, got {window!r}")
        pad = jnp.full((*lead, window), -1, jnp.int32)
        recent = jnp.concatenate([pad, ids], axis=-1)[..., -window:]
    mu = None
    if mirostat is not None:
        mu = jnp.broadcast_to(2.0 * jnp.asarray(mirostat.target, jnp.float32), lead)
    return History(jnp.zeros(lead, jnp.int32), counts, seen, recent, mu)


@_pytree
@dataclasses.dataclass(frozen=True)
class Bound(Strategy):
    """Parts applied in order, each on the previous part's output as it is.

    :func:`bind` returns one when a strategy holds history parts: unlike a plain
    :class:`~jaxsample.Chain`, the input of a part is not shifted by the row
    maximum, so a repetition penalty sees the signs of the logits.
    """

    parts: tuple[Strategy, ...] = ()

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Apply the parts in order; runs of built-in parts as one prefix state."""
        return chain_log_weights(z, self.parts, shift=False)


def _coin(part: XTC, keys: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    folded = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, XTC_STREAM)
    u = jax.vmap(lambda k: jax.random.uniform(k, (), jnp.float32))(folded).reshape(lead)
    return u < jnp.broadcast_to(jnp.asarray(part.probability, jnp.float32), lead)


def bind(
    strategy: Strategy,
    history: History | None,
    keys: jax.Array | None = None,
    lead: tuple[int, ...] = (),
) -> Strategy:
    """The stateless strategy that ``strategy`` is at this step.

    Every history part receives ``history``; with ``keys`` (one typed key per row,
    ``[n]`` for the ``n`` rows of ``lead``), every :class:`~jaxsample.XTC` part gets
    its coin, drawn from the row's key folded with ``XTC_STREAM``. A strategy with
    neither kind of part is returned as it is.

    Args:
        strategy: any strategy.
        history: the state (see :func:`init_history`), or ``None`` when the strategy
            reads none.
        keys: typed row keys ``[n]``, or ``None`` (XTC parts keep their mixture).
        lead: the leading axes of the logits, ``n = prod(lead)``.

    Returns:
        A strategy for :func:`jaxsample.probs` and :func:`jaxsample.sample`.

    Raises:
        ValueError: if the strategy reads a history and ``history`` is ``None``.
    """
    parts = _parts(strategy)
    has_history = any(isinstance(p, HistoryPart) for p in parts)
    has_xtc = keys is not None and any(isinstance(p, XTC) for p in parts)
    if not has_history and not has_xtc:
        return strategy
    if has_history and history is None:
        raise ValueError("this strategy reads the generation's history: pass a History")
    out: list[Strategy] = []
    for part in parts:
        if isinstance(part, HistoryPart):
            part = dataclasses.replace(part, history=history)  # type: ignore[type-var]
        elif isinstance(part, XTC) and keys is not None:
            part = dataclasses.replace(part, coin=_coin(part, keys, lead))
        out.append(part)
    return out[0] if len(out) == 1 and not isinstance(strategy, Chain) else Bound(tuple(out))


def advance(
    strategy: Strategy,
    history: History,
    token: jax.Array,
    *,
    active: jax.Array | None = None,
    logits: jax.Array | None = None,
    bound: Strategy | None = None,
) -> History:
    """The state after ``token`` was generated.

    Args:
        strategy: the strategy the state is for.
        history: the state before.
        token: int ``[...]`` the drawn ids.
        active: bool ``[...]``: rows where it is False are left unchanged (a row
            that already finished); default all True.
        logits: ``[..., V]`` the logits the token was drawn from; needed only for a
            :class:`Mirostat2` part.
        bound: :func:`bind`'s result for this step (recomputed when omitted).

    Returns:
        The new :class:`History`: ``step + 1``, the token counted and appended to
        ``recent``, ``mu`` updated.

    Raises:
        ValueError: if a :class:`Mirostat2` part needs ``logits`` and none were given.
    """
    token = jnp.asarray(token, jnp.int32)
    on = jnp.ones(token.shape, bool) if active is None else jnp.asarray(active, bool)
    step = history.step + on.astype(jnp.int32)
    counts = history.counts
    if counts is not None:
        vocab = counts.shape[-1]
        hit = (jnp.arange(vocab, dtype=jnp.int32) == token[..., None]) & on[..., None]
        counts = counts + hit.astype(jnp.int32)
    recent = history.recent
    if recent is not None:
        shifted = jnp.concatenate([recent[..., 1:], token[..., None]], axis=-1)
        recent = jnp.where(on[..., None], shifted, recent)
    mu = history.mu
    mirostat = _mirostat(strategy)
    if mu is not None and mirostat is not None:
        if logits is None:
            raise ValueError("a Mirostat2 part needs the logits the token was drawn from")
        if bound is None:
            bound = bind(strategy, history)
        x = check_logits(logits)
        z, _ = sanitise(x.reshape(-1, x.shape[-1]))
        logp = log_probs(bound.log_weights(z.reshape(x.shape).astype(jnp.float32)))
        drawn = jnp.take_along_axis(logp, token[..., None], axis=-1)[..., 0]
        surprise = -drawn / _LN2
        lr = jnp.asarray(mirostat.lr, jnp.float32)
        target = jnp.asarray(mirostat.target, jnp.float32)
        mu = jnp.where(on, mu - lr * (surprise - target), mu)
    return History(step, counts, history.prompt, recent, mu)


def sample_step(
    key: jax.Array,
    logits: jax.Array,
    strategy: Strategy,
    history: History | None,
    *,
    active: jax.Array | None = None,
) -> tuple[jax.Array, History | None]:
    """One step on bare logits: bind the state, draw, advance the state.

    ``sample_step(key, logits, s, h)`` draws ``sample(key, logits, bind(s, h, ...))``
    with the same per-row keys as :func:`jaxsample.sample` (a single key gives row
    ``r`` the key ``fold_in(key, r)``), each XTC coin drawn from the row's key, then
    returns the token and :func:`advance`'s state.

    Args:
        key: a typed key, or one per row ``[...]``.
        logits: ``[..., V]`` real logits.
        strategy: any strategy.
        history: its state (:func:`init_history`), or ``None`` if it reads none.
        active: bool ``[...]``, rows whose state is advanced (default all).

    Returns:
        ``(tokens, history)``: int32 ``[...]`` and the new state (``None`` stays
        ``None``).

    Raises:
        ValueError: as :func:`jaxsample.sample`, or if the strategy reads a history
            and ``history`` is ``None``.
    """
    x = check_logits(logits)
    lead = x.shape[:-1]
    k = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        k = jax.random.wrap_key_data(k)
    keys = row_keys(k, lead)
    bound = bind(strategy, history, keys, lead)
    tokens = sample(keys.reshape(lead), x, bound)
    if history is None:
        return tokens, None
    return tokens, advance(strategy, history, tokens, active=active, logits=x, bound=bound)
