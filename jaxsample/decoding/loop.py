"""The decode loop: prefill a left-padded batch of prompts, then draw tokens in ``lax.scan``.

:func:`generate_ids` runs the whole generation of a batch as one jit-compiled call:

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
import operator
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PSpec
from jax.typing import ArrayLike

from jaxsample._checks import check_key, check_strategy
from jaxsample.model import (
    GPTConfig,
    KVCache,
    Params,
    check_tokens,
    forward,
    forward_cached,
    init_cache,
)
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

__all__ = [
    "Generation",
    "Logprobs",
    "completion_ids",
    "generate_ids",
    "left_pad",
    "row_keys",
    "sample_completions",
    "seed_key",
]


class Logprobs(NamedTuple):
    """Per-token log-probabilities recorded by :func:`generate_ids` (natural log).

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
    """The result of :func:`generate_ids`: a pytree of arrays.

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
# Host-side input handling
# ---------------------------------------------------------------------------------------


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high)``; ``bool`` and non-integers raise."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {value!r}") from None
    if number < low or (high is not None and number >= high):
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number


def _as_rows(prompts: Any, lengths: ArrayLike | None) -> list[np.ndarray[Any, Any]]:
    """Turn ragged prompts, or a left-padded array plus lengths, into 1-D int rows."""
    if isinstance(prompts, np.ndarray | jax.Array):
        arr = np.asarray(prompts)
        if arr.ndim != 2:
            raise ValueError(
                f"a prompt array must be left-padded int [B, P], got shape {arr.shape}"
            )
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"prompt token ids must be integers, got dtype {arr.dtype}")
        B, P = arr.shape
        if lengths is None:
            lens = np.full((B,), P, np.int64)
        else:
            lens = np.asarray(lengths)
            if lens.shape != (B,) or not np.issubdtype(lens.dtype, np.integer):
                raise ValueError(
                    f"lengths must be integers of shape ({B},), got {lens.dtype} {lens.shape}"
                )
            if np.any((lens < 0) | (lens > P)):
                raise ValueError(f"lengths must lie in [0, P={P}], got {lens.tolist()}")
        return [arr[b, P - int(lens[b]) :].astype(np.int64) for b in range(B)]
    if lengths is not None:
        raise ValueError("lengths is only accepted with a left-padded prompt array")
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise ValueError(
            "prompts must be a sequence of token-id sequences or an int array [B, P], "
            f"got {type(prompts).__name__}"
        )
    rows: list[np.ndarray[Any, Any]] = []
    for b, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            raise ValueError(f"prompt {b} must be a sequence of token ids, got a string")
        row = np.asarray(prompt)
        if row.ndim != 1:
            raise ValueError(f"prompt {b} must be a flat sequence of token ids, got {prompt!r}")
        if row.size and (not np.issubdtype(row.dtype, np.integer) or row.dtype == np.bool_):
            raise ValueError(f"prompt {b} must hold integer token ids, got {prompt!r}")
        rows.append(row.astype(np.int64))
    return rows


def left_pad(
    prompts: Sequence[Sequence[int]], *, pad_id: int
) -> tuple[np.ndarray[Any, np.dtype[np.int32]], np.ndarray[Any, np.dtype[np.int32]]]:
    """Left-pad prompts of different lengths into one array.

    Args:
        prompts: ``B >= 1`` sequences of token ids (Python or NumPy integers).
        pad_id: The id written before the shorter prompts.

    Returns:
        ``(tokens, lengths)``: int32 ``[B, P]`` with ``P`` the longest length (at least
        1) and row ``b``'s ids in its last ``lengths[b]`` columns, and int32 ``[B]``.

    Raises:
        ValueError: If ``prompts`` is empty or not a sequence of flat integer sequences.

    """
    rows = _as_rows(prompts, None)
    if not rows:
        raise ValueError("prompts must hold at least one prompt")
    return _pad_rows(rows, pad_id)


def _pad_rows(
    rows: list[np.ndarray[Any, Any]], pad_id: int
) -> tuple[np.ndarray[Any, np.dtype[np.int32]], np.ndarray[Any, np.dtype[np.int32]]]:
    width = max(1, *(len(row) for row in rows))
    tokens = np.full((len(rows), width), pad_id, np.int32)
    for b, row in enumerate(rows):
        if len(row):
            tokens[b, width - len(row) :] = row
    lengths = np.array([len(row) for row in rows], np.int32)
    return tokens, lengths


@functools.partial(jax.jit, static_argnums=1)
def _fold_rows(key: jax.Array, n: int, start: jax.Array) -> jax.Array:
    rows = start + jnp.arange(n, dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)


def row_keys(key: ArrayLike, n: int, *, start: int = 0) -> jax.Array:
    """The per-row keys that a single ``key`` gives rows ``start .. start + n - 1``.

    Row ``b`` gets ``jax.random.fold_in(key, b)``. Passing ``row_keys(key, 1, start=b)``
    to :func:`generate_ids` therefore generates row ``b`` of a batch alone, with the
    same tokens as inside the batch.

    Args:
        key: A single ``jax.random.key`` (or legacy uint32 ``PRNGKey``).
        n: Number of rows, ``>= 1``.
        start: Index of the first row, ``>= 0``.

    Returns:
        Typed keys of shape ``[n]``.

    Raises:
        ValueError: If ``key`` is not a single key, or ``n`` / ``start`` are out of range.

    """
    k = check_key(key)
    if k.shape != ():
        raise ValueError(f"key must be a single key, got shape {k.shape}")
    n = _check_int("n", n, 1)
    start = _check_int("start", start, 0, 2**32 - n + 1)
    keys: jax.Array = _fold_rows(k, n, jnp.uint32(start))
    return keys


def _batch_keys(key: ArrayLike, batch: int) -> jax.Array:
    k = check_key(key, (batch,))
    if k.shape == ():
        keys: jax.Array = _fold_rows(k, batch, jnp.uint32(0))
        return keys
    return k


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


# ---------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------


def generate_ids(
    params: Params,
    config: GPTConfig,
    prompts: Sequence[Sequence[int]] | ArrayLike,
    key: ArrayLike,
    strategy: Strategy,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    bos_id: int | None = None,
    lengths: ArrayLike | None = None,
    cache: bool = True,
    record_logits: bool = False,
    mesh: Mesh | None = None,
    batch_axis: str | tuple[str, ...] = "dp",
    logprobs: int = 0,
) -> Generation:
    """Generate up to ``max_new_tokens`` tokens for every prompt of a batch in one jitted call.

    The prompts are left-padded and prefilled, then a ``lax.scan`` draws one token per
    row and step with ``jaxsample.sample`` (see the module docstring). After a row draws
    ``eos_id`` it emits ``pad_id``. The loop is compiled once per batch size, longest
    prompt length, ``max_new_tokens``, config, ``cache`` / ``record_logits`` flag and
    strategy structure (type and parameter shapes); new parameter *values* (e.g.
    another temperature) and new ``eos_id`` / ``pad_id`` reuse the compiled loop.

    Randomness: a single ``key`` gives row ``b`` the key ``k_b = fold_in(key, b)``; an
    array of keys of shape ``[B]`` gives row ``b`` the key ``key[b]``. The token of row
    ``b`` at step ``t`` is drawn with ``fold_in(k_b, t)``. So a row's tokens do not
    depend on the rest of the batch: ``row_keys(key, 1, start=b)`` reproduces row ``b``
    alone.

    Args:
        params: Model parameters (see :func:`jaxsample.model.init_params`).
        config: The model configuration (a static argument of the compiled loop).
        prompts: Either ``B >= 1`` sequences of token ids of any lengths, or an int
            array ``[B, P]`` of left-padded prompts together with ``lengths``.
        key: A ``jax.random.key`` (or legacy uint32 ``PRNGKey``), or ``B`` of them.
        strategy: Any :class:`~jaxsample.Strategy`; parameters may be scalars or
            arrays with one value per row (shape ``[B]``).
        max_new_tokens: Number of tokens to generate, ``>= 1``.
        eos_id: Token id that ends a row (it is kept in ``tokens``).
        pad_id: Token id written after EOS and used to left-pad the prompts.
        bos_id: Token id an empty prompt starts from; ``None`` forbids empty prompts.
        lengths: int ``[B]`` real lengths of a left-padded prompt array (default: the
            full width ``P``); only with an array ``prompts``.
        cache: Use the key/value cache (True) or recompute the whole buffer each step.
        record_logits: Also return every step's model logits (for checks).
        mesh: Split the batch over the devices of this mesh (every device of every
            process when it spans several hosts); ``None`` runs on the default
            device. Each device decodes its block of rows with no communication;
            the keys are derived from the global row index first, so the tokens
            are those of the one-device call. A batch that the axis does not
            divide is padded with copies of the last row, dropped afterwards.
        batch_axis: The mesh axis (or axes, outermost first) that splits the
            batch; the other axes hold copies. Only with ``mesh``.
        logprobs: ``n >= 1`` also returns every token's log-probability, raw and
            processed, and the model's ``n`` most likely tokens with theirs
            (:class:`Logprobs`); 0 (the default) records nothing.

    Returns:
        A :class:`Generation` with int32 ``tokens [B, max_new_tokens]``, int32
        ``lengths [B]``, bool ``finished [B]`` and, if requested, float32
        ``logits [B, max_new_tokens, V]`` and :class:`Logprobs`. With ``mesh`` every
        array is gathered onto every device of the mesh (the ids are small), so a
        process of a multi-process run can read all rows.

    Raises:
        ValueError: If a prompt is malformed or empty without ``bos_id``; an id lies
            outside ``[0, vocab_size)``; the longest prompt plus ``max_new_tokens``
            exceeds ``config.n_ctx`` (the message names the lengths); ``max_new_tokens``,
            ``eos_id``, ``pad_id`` or ``bos_id`` is invalid; the key has the wrong
            shape or type; the strategy is not a strategy or has parameters that do
            not match the batch; or ``batch_axis`` is not an axis of ``mesh``.

    """
    if not isinstance(config, GPTConfig):
        raise ValueError(f"config must be a GPTConfig, got {config!r}")
    V = config.vocab_size
    max_new_tokens = _check_int("max_new_tokens", max_new_tokens, 1)
    eos_id = _check_int("eos_id", eos_id, 0, V)
    pad_id = _check_int("pad_id", pad_id, 0, V)
    if bos_id is not None:
        bos_id = _check_int("bos_id", bos_id, 0, V)
    rows = _as_rows(prompts, lengths)
    if not rows:
        raise ValueError("prompts must hold at least one prompt")
    for b, row in enumerate(rows):
        if len(row) == 0:
            if bos_id is None:
                raise ValueError(f"prompt {b} is empty; pass bos_id to start it from <bos>")
            rows[b] = np.array([bos_id], np.int64)
    longest = max(len(row) for row in rows)
    if longest + max_new_tokens > config.n_ctx:
        raise ValueError(
            f"prompt length {longest} plus max_new_tokens {max_new_tokens} = "
            f"{longest + max_new_tokens} exceeds the model's context n_ctx={config.n_ctx}"
        )
    for b, row in enumerate(rows):
        try:
            check_tokens(row, config)
        except ValueError as err:
            raise ValueError(f"prompt {b}: {err}") from None
    logprobs = _check_int("logprobs", logprobs, 0, V + 1)
    tokens, lens = _pad_rows(rows, pad_id)
    B = len(rows)
    keys = _batch_keys(key, B)
    check_strategy(strategy, B)
    static = {
        "config": config,
        "max_new_tokens": max_new_tokens,
        "use_cache": bool(cache),
        "record_logits": bool(record_logits),
        "logprobs": logprobs,
    }
    if mesh is not None:
        return _decode_on_mesh(
            mesh, batch_axis, params, tokens, lens, keys, strategy, eos_id, pad_id, static
        )
    result: Generation = _decode(
        params,
        jnp.asarray(tokens),
        jnp.asarray(lens),
        keys,
        strategy,
        jnp.int32(eos_id),
        jnp.int32(pad_id),
        **static,
    )
    return result


def _decode_on_mesh(
    mesh: Mesh,
    batch_axis: str | tuple[str, ...],
    params: Params,
    tokens: np.ndarray[Any, Any],
    lens: np.ndarray[Any, Any],
    keys: jax.Array,
    strategy: Strategy,
    eos_id: int,
    pad_id: int,
    static: dict[str, Any],
) -> Generation:
    """:func:`_decode` with the batch split over ``batch_axis`` of ``mesh`` (see generate_ids).

    Every input is built as a global array from the host copy that each process
    holds, so the same call runs on one process or on several.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axes = (batch_axis,) if isinstance(batch_axis, str) else tuple(batch_axis)
    if not axes or any(a not in mesh.axis_names for a in axes) or len(set(axes)) < len(axes):
        raise ValueError(
            f"batch_axis must name distinct axes of the mesh {tuple(mesh.axis_names)}, "
            f"got {batch_axis!r}"
        )
    shards = int(np.prod([mesh.shape[a] for a in axes]))
    B = tokens.shape[0]
    rows = -(-B // shards) * shards
    fill = np.concatenate([np.arange(B), np.full(rows - B, B - 1)])  # pad: copies of the last row

    def put(a: Any, split: bool) -> jax.Array:
        host = np.asarray(a)
        if split:
            host = host[fill]
        spec = PSpec(axes) if split else PSpec()  # type: ignore[no-untyped-call]
        sharding = NamedSharding(mesh, spec)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    leaves, tree = jax.tree_util.tree_flatten(strategy)
    per_row = [np.shape(leaf) == (B,) and B > 1 for leaf in leaves]
    strategy_in = jax.tree_util.tree_unflatten(
        tree, [put(leaf, split) for leaf, split in zip(leaves, per_row, strict=True)]
    )
    run = _mesh_decoder(
        mesh, axes, jax.random.key_impl(keys), tree, tuple(per_row), tuple(sorted(static.items()))
    )
    result: Generation = run(
        jax.tree_util.tree_map(lambda a: put(a, False), params),
        put(tokens, True),
        put(lens, True),
        put(jax.random.key_data(keys), True),
        strategy_in,
        put(np.int32(eos_id), False),
        put(np.int32(pad_id), False),
    )
    if rows == B:
        return result
    trimmed: Generation = jax.tree_util.tree_map(lambda a: a[:B], result)
    return trimmed


@functools.cache
def _mesh_decoder(
    mesh: Mesh,
    axes: tuple[str, ...],
    impl: Any,
    tree: Any,
    per_row: tuple[bool, ...],
    static: tuple[tuple[str, Any], ...],
) -> Any:
    """The jitted ``shard_map`` of :func:`_decode`, built once per layout and settings."""
    row, whole = PSpec(axes), PSpec()  # type: ignore[no-untyped-call]

    def local(
        params: Params,
        tokens: jax.Array,
        lens: jax.Array,
        key_data: jax.Array,
        strategy: Strategy,
        eos: jax.Array,
        pad: jax.Array,
    ) -> Generation:
        keys = jax.random.wrap_key_data(key_data, impl=impl)
        out: Generation = _decode(params, tokens, lens, keys, strategy, eos, pad, **dict(static))
        # Gather the rows onto every device: ids and flags are a few bytes per row.
        gathered: Generation = jax.tree_util.tree_map(
            lambda a: lax.all_gather(a, axes, axis=0, tiled=True), out
        )
        return gathered

    strategy_spec = jax.tree_util.tree_unflatten(tree, [row if s else whole for s in per_row])
    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(whole, row, row, row, strategy_spec, whole, whole),
            out_specs=whole,
            check_vma=False,
        )
    )


def sample_completions(
    params: Params,
    config: GPTConfig,
    prompt_ids: Sequence[int],
    n: int,
    seed: int,
    strategy: Strategy,
    max_new_tokens: int,
    *,
    eos_id: int,
    pad_id: int,
    bos_id: int | None = None,
    cache: bool = True,
    logprobs: int = 0,
) -> Generation:
    """Draw ``n`` completions of one prompt in one call, one random stream each.

    Equivalent to :func:`generate_ids` on the prompt repeated ``n`` times with the key
    ``jax.random.key(seed)``: completion ``i`` uses ``fold_in(key(seed), i)``, so the
    first completion of ``n`` is the same for every ``n``.

    Args:
        params: Model parameters.
        config: The model configuration.
        prompt_ids: The prompt's token ids (empty starts from ``bos_id``).
        n: Number of completions, ``>= 1``.
        seed: Non-negative integer seed, below ``2**63``.
        strategy: Any strategy; parameters may be scalars or have shape ``[n]``
            (e.g. one temperature per completion).
        max_new_tokens: Tokens per completion, ``>= 1``.
        eos_id: Token id that ends a completion.
        pad_id: Token id written after EOS.
        bos_id: Token id an empty prompt starts from.
        cache: Use the key/value cache (True) or full recompute.
        logprobs: record log-probabilities with the ``n`` most likely tokens (see
            :func:`generate_ids`); 0 records none.

    Returns:
        A :class:`Generation` with ``B = n`` rows.

    Raises:
        ValueError: If ``n`` or ``seed`` is invalid, or as :func:`generate_ids`.

    """
    n = _check_int("n", n, 1)
    key = seed_key(seed)
    prompt = _as_rows([prompt_ids], None)[0].tolist()
    return generate_ids(
        params,
        config,
        [prompt] * n,
        key,
        strategy,
        max_new_tokens=max_new_tokens,
        eos_id=eos_id,
        pad_id=pad_id,
        bos_id=bos_id,
        cache=cache,
        logprobs=logprobs,
    )


def seed_key(seed: int) -> jax.Array:
    """The key that an integer seed stands for: ``jax.random.key(seed)``.

    Args:
        seed: An integer in ``[0, 2**63)``.

    Returns:
        A typed scalar key.

    Raises:
        ValueError: If ``seed`` is not an int in that range.

    """
    return jax.random.key(_check_int("seed", seed, 0, 2**63))


def completion_ids(generation: Generation, row: int = 0) -> list[int]:
    """The generated ids of one row as Python ints, EOS and padding removed.

    Args:
        generation: A result of :func:`generate_ids`.
        row: The row index.

    Returns:
        The ids drawn before EOS (all of them if the row did not finish).

    Raises:
        IndexError: If ``row`` is out of range.

    """
    # Whole-array conversions: a jax.Array keeps its host copy, so a loop over the rows
    # transfers each array once.
    length = int(np.asarray(generation.lengths)[row])
    finished = bool(np.asarray(generation.finished)[row])
    ids = np.asarray(generation.tokens)[row, : length - 1 if finished else length]
    return [int(i) for i in ids]
