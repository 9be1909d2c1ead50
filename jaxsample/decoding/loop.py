"""The decode loop: prefill a left-padded batch of prompts, then draw tokens in ``lax.scan``.

:func:`_decode` runs the whole generation of a batch as one jit-compiled call (the
checks, the padding and the keys come first, in :func:`jaxsample.decoding.generate_ids`):

1. The prompts are left-padded to a common width ``P``; row ``b`` has ``len_b`` real
   tokens in slots ``P - len_b .. P - 1`` at positions ``0 .. len_b - 1``, and its pad
   slots are masked out with ``key_valid`` (see :func:`jaxsample.model.forward`).
2. The prompt is run through the model once (the *prefill*); its last logits give the
   distribution of new token 0.
3. ``lax.scan`` runs the remaining ``max_new_tokens - 1`` steps. Step ``t`` feeds
   token ``t - 1`` (slot ``P + t - 1``, position ``len_b + t - 1``) and draws token
   ``t`` from the resulting logits. There is no host round-trip per token.

Two model paths give the same tokens and logits (up to float32 rounding):

* ``cache=True``: :func:`jaxsample.model.forward_cached` with a
  :class:`~jaxsample.model.KVCache` of ``P + max_new_tokens - 1`` slots, one new token
  per step: each step costs one token's MLP and projections plus its attention over the
  ``S = P + max_new_tokens - 1`` slots.
* ``cache=False``: :func:`jaxsample.model.forward` on the whole fixed-size buffer of
  ``S`` tokens at every step (``S`` times the MLP and projections, ``S^2`` attention
  scores): the baseline of the cost model.

Randomness: row ``b`` has its own key ``k_b`` (``fold_in(key, b)`` for a single
``key``, or given explicitly), and its token at step ``t`` is drawn with
``fold_in(k_b, t)``. A row's tokens therefore depend only on its prompt, its key and
its strategy parameters, never on the other rows of the batch, and no key is used
twice.

The scan carry (:class:`_Carry`) holds the model memory (cache or token buffer), the
last drawn token, the per-row ``finished`` flags and, only for a strategy that reads
the history of the generation (penalties, min-new-tokens, n-grams, DRY, mirostat; a
static check of its types), its :class:`~jaxsample.History`: built from the prompt,
then advanced with every generated token (nothing after EOS). :func:`_draw` binds it
to the strategy (:func:`jaxsample.bind`), draws, and advances it. A plain strategy
carries nothing. An XTC part gets its coin from the row's step key.

With ``logprobs=n`` every step also records, without another forward pass, the
drawn token's log-probability under the model's distribution (``log_softmax`` of
the logits) and under the distribution it was drawn from (:func:`jaxsample.probs`
of the bound strategy), and the ``n`` most likely tokens of the model with both
(see :class:`Logprobs`).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxsample.model import GPTConfig, KVCache, Params, forward, forward_cached, init_cache
from jaxsample.samplers import (
    History,
    Strategy,
    advance,
    bind,
    init_history,
    needs_history,
    probs,
    sample,
)

__all__ = ["Generation", "Logprobs"]


class Logprobs(NamedTuple):
    """Per-token log-probabilities (natural log) recorded by ``generate_ids(logprobs=n)``.

    Attributes:
        raw: float32 ``[B, N]`` log-probability of each generated token under the
            model's distribution, ``log_softmax(logits)``.
        processed: float32 ``[B, N]`` its log-probability under the distribution it
            was drawn from (``log jaxsample.probs`` of the strategy at that step;
            ``-inf`` never occurs, as the drawn token is in the support).
        top_ids: int32 ``[B, N, n]`` the ``n`` most likely tokens of the model at each
            step (ties by lowest id).
        top_raw: float32 ``[B, N, n]`` their raw log-probabilities.
        top_processed: float32 ``[B, N, n]`` their processed log-probabilities
            (``-inf`` for a token the strategy removed).

    After a row's EOS the entries describe its pad steps and mean nothing.
    """

    raw: jax.Array
    processed: jax.Array
    top_ids: jax.Array
    top_raw: jax.Array
    top_processed: jax.Array


class Generation(NamedTuple):
    """The result of :func:`~jaxsample.decoding.generate_ids`: a pytree of arrays.

    Attributes:
        tokens: int32 ``[B, max_new_tokens]`` generated ids, prompt excluded. A row that
            produced EOS holds it at index ``lengths[b] - 1`` and ``pad_id`` after it.
        lengths: int32 ``[B]`` number of generated tokens up to and including EOS
            (``max_new_tokens`` for a row that did not finish).
        finished: bool ``[B]``, True where the row produced EOS.
        logits: float32 ``[B, max_new_tokens, V]`` model logits of every step (before the
            strategy) when requested with ``record_logits=True``, else ``None``. After a
            row's EOS they are the logits of its pad continuation.
        logprobs: :class:`Logprobs` when requested with ``logprobs=n``, else ``None``.

    """

    tokens: jax.Array
    lengths: jax.Array
    finished: jax.Array
    logits: jax.Array | None = None
    logprobs: Logprobs | None = None


class _Carry(NamedTuple):
    """State carried from one decode step to the next.

    Attributes:
        memory: The model's memory of the sequence: a :class:`KVCache` with
            ``P + max_new_tokens - 1`` slots (cache path), or the int32
            ``[B, P + max_new_tokens - 1]`` token buffer (recompute path).
        token: int32 ``[B]`` the token drawn at the previous step (fed next).
        finished: bool ``[B]`` rows that have produced EOS.
        history: the strategy's :class:`~jaxsample.History` (generated tokens counted
            up to and including EOS), or ``None`` for a strategy that reads none.

    """

    memory: KVCache | jax.Array
    token: jax.Array
    finished: jax.Array
    history: History | None


# ---------------------------------------------------------------------------------------
# The jitted loop
# ---------------------------------------------------------------------------------------


def _draw(
    logits: jax.Array,
    step: jax.Array,
    keys: jax.Array,
    strategy: Strategy,
    finished: jax.Array,
    history: History | None,
    *,
    eos_id: jax.Array,
    pad_id: jax.Array,
    logprobs: int,
) -> tuple[jax.Array, jax.Array, jax.Array, History | None, Logprobs | None]:
    """Draw one token per row; pad rows that already finished; advance the history.

    Returns:
        ``(token, active, finished, history, logprobs)``: int32 ``[B]``, bool ``[B]``
        (True where the row was still generating at this step), bool ``[B]``, the new
        state (or ``None``), and this step's :class:`Logprobs` (``[B]``, ``[B, n]``)
        when ``logprobs > 0``.

    """
    step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, step)
    active = ~finished
    bound = bind(strategy, history, step_keys, (logits.shape[0],))
    drawn = sample(step_keys, logits, bound)  # int32 [B]
    token = jnp.where(active, drawn, pad_id)
    if history is not None:
        history = advance(strategy, history, token, active=active, logits=logits, bound=bound)
    record = None
    if logprobs:
        raw = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
        processed = jnp.log(probs(logits, bound))
        top_raw, top_ids = jax.lax.top_k(raw, logprobs)

        def at(lp: jax.Array, ids: jax.Array) -> jax.Array:
            return jnp.take_along_axis(lp, ids, axis=-1)

        record = Logprobs(
            at(raw, drawn[:, None])[:, 0],
            at(processed, drawn[:, None])[:, 0],
            top_ids.astype(jnp.int32),
            top_raw,
            at(processed, top_ids),
        )
    return token, active, finished | (active & (token == eos_id)), history, record


@functools.partial(
    jax.jit,
    static_argnames=("config", "max_new_tokens", "use_cache", "record_logits", "logprobs"),
)
def _decode(
    params: Params,
    prompt: jax.Array,
    lengths: jax.Array,
    keys: jax.Array,
    strategy: Strategy,
    eos_id: jax.Array,
    pad_id: jax.Array,
    *,
    config: GPTConfig,
    max_new_tokens: int,
    use_cache: bool,
    record_logits: bool,
    logprobs: int,
) -> Generation:
    """Prefill ``prompt`` and draw ``max_new_tokens`` tokens per row (see the module docstring).

    Args: the checked, left-padded int32 ``prompt [B, P]`` and ``lengths [B]``, one
    typed key per row ``[B]``, the strategy, int32 scalars ``eos_id`` and ``pad_id``;
    the keyword arguments are static. Returns the :class:`Generation`.
    """
    B, P = prompt.shape
    S = P + max_new_tokens - 1  # slots: the prompt and every token that is fed back
    slots = jnp.arange(S, dtype=jnp.int32)
    n_pad = (P - lengths)[:, None]  # [B, 1]
    key_valid = slots[None, :] >= n_pad  # [B, S]; causality hides the future slots
    positions = jnp.maximum(slots[None, :] - n_pad, 0)  # [B, S]

    memory: KVCache | jax.Array
    if use_cache:
        logits, memory = forward_cached(
            params,
            prompt,
            init_cache(config, B, S),
            config,
            slot=0,
            positions=positions[:, :P],
            key_valid=key_valid,
        )
        first_logits = logits[:, P - 1]
    else:
        memory = jnp.concatenate([prompt, jnp.full((B, S - P), pad_id, jnp.int32)], axis=1)
        first_logits = forward(params, memory, config, positions=positions, key_valid=key_valid)[
            :, P - 1
        ]

    def feed(memory: KVCache | jax.Array, token: jax.Array, step: jax.Array) -> Any:
        slot = P + step - 1  # where token ``step - 1`` goes
        if isinstance(memory, KVCache):
            logits, memory = forward_cached(
                params,
                token[:, None],
                memory,
                config,
                slot=slot,
                positions=(lengths + step - 1)[:, None],
                key_valid=key_valid,
            )
            return logits[:, 0], memory
        memory = lax.dynamic_update_slice(memory, token[:, None], (jnp.int32(0), slot))
        logits = forward(params, memory, config, positions=positions, key_valid=key_valid)
        return lax.dynamic_index_in_dim(logits, slot, axis=1, keepdims=False), memory

    draw = functools.partial(
        _draw, keys=keys, strategy=strategy, eos_id=eos_id, pad_id=pad_id, logprobs=logprobs
    )
    history = None
    if needs_history(strategy):  # static: only such strategies carry a state
        context = jnp.where(slots[None, :P] >= n_pad, prompt, -1)  # pad slots: no token
        history = init_history(strategy, config.vocab_size, context, window=S + 1)
    token, active, finished, history, record = draw(
        first_logits, jnp.int32(0), finished=jnp.zeros((B,), bool), history=history
    )

    def body(carry: _Carry, step: jax.Array) -> tuple[_Carry, Any]:
        logits, memory = feed(carry.memory, carry.token, step)
        token, active, finished, history, record = draw(
            logits, step, finished=carry.finished, history=carry.history
        )
        out = (token, active, logits if record_logits else None, record)
        return _Carry(memory, token, finished, history), out

    carry = _Carry(memory, token, finished, history)
    steps = jnp.arange(1, max_new_tokens, dtype=jnp.int32)
    carry, (tokens, actives, step_logits, records) = lax.scan(body, carry, steps)

    all_tokens = jnp.concatenate([token[:, None], tokens.T], axis=1)  # [B, N]
    n_active = jnp.sum(actives, axis=0, dtype=jnp.int32) + active.astype(jnp.int32)
    all_logits = None
    if record_logits:
        all_logits = jnp.concatenate(
            [first_logits[:, None], jnp.swapaxes(step_logits, 0, 1)], axis=1
        )
    all_records = None
    if logprobs:
        all_records = jax.tree.map(
            lambda first, rest: jnp.concatenate([first[:, None], jnp.swapaxes(rest, 0, 1)], 1),
            record,
            records,
        )
    return Generation(all_tokens, n_active, carry.finished, all_logits, all_records)
