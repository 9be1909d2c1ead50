"""One step with a history: build the state, bind it to a strategy, draw, advance.

See :mod:`._history` for the state and the data flow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxsample.samplers._history import (
    _LN2,
    DEFAULT_WINDOW,
    XTC_STREAM,
    History,
    HistoryPart,
    Needs,
)
from jaxsample.samplers._ids import id_mask
from jaxsample.samplers._penalties import Mirostat2
from jaxsample.samplers._random import row_keys
from jaxsample.samplers._reference import chain_log_weights, sanitise
from jaxsample.samplers._sampling import check_logits, sample
from jaxsample.samplers._strategies import (
    Chain,
    Strategy,
    _pytree,
    leaf_parts,
)
from jaxsample.samplers._vocabulary import (
    XTC,
    log_probs,
)

__all__ = ["Bound", "advance", "bind", "init_history", "needs_history", "sample_step"]


def _history_parts(strategy: Strategy) -> list[HistoryPart]:
    return [p for p in leaf_parts(strategy) if isinstance(p, HistoryPart)]


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
    found = [p for p in leaf_parts(strategy) if isinstance(p, Mirostat2)]
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
    parts = leaf_parts(strategy)
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
    if not math.prod(lead):  # no rows: no token, no state to advance
        return jnp.zeros(lead, jnp.int32), history
    tokens = sample(keys.reshape(lead), x, bound)
    if history is None:
        return tokens, None
    return tokens, advance(strategy, history, tokens, active=active, logits=x, bound=bound)
