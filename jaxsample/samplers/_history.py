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
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.samplers._strategies import (
    Strategy,
)

__all__ = ["DEFAULT_WINDOW", "XTC_STREAM", "History", "HistoryPart", "Needs"]

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
    #: Fields that hold the generation's state (rows first, then axes of their own),
    #: not parameters.
    STATE: ClassVar[frozenset[str]] = frozenset({"history"})

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
