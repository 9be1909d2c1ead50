"""Host-side inputs of the decode loop: prompts, per-row keys and seeds.

Everything here runs on the host before anything is traced, so a malformed prompt
or key raises a ``ValueError`` that names it:

* :func:`left_pad` and :func:`_prompt_rows` turn ragged prompts (or a left-padded
  array with its lengths) into the int32 ``[B, P]`` array the loop prefills;
* :func:`row_keys` and :func:`seed_key` give the keys: row ``b`` of a batch drawn
  with one key ``k`` uses ``fold_in(k, b)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxsample._checks import check_int, check_key
from jaxsample.model import GPTConfig, check_tokens

__all__ = ["left_pad", "row_keys", "seed_key"]


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


def _prompt_tokens(
    prompts: Any,
    lengths: ArrayLike | None,
    config: GPTConfig,
    max_new_tokens: int,
    *,
    pad_id: int,
    bos_id: int | None,
) -> tuple[np.ndarray[Any, np.dtype[np.int32]], np.ndarray[Any, np.dtype[np.int32]]]:
    """Check prompts against the model and left-pad them (see :func:`left_pad`).

    Args:
        prompts: ``B >= 1`` sequences of token ids, or an int array ``[B, P]`` of
            left-padded prompts together with ``lengths``.
        lengths: int ``[B]`` real lengths of a prompt array, or ``None``.
        config: The model; every id must lie in ``[0, vocab_size)``.
        max_new_tokens: Tokens to generate after the longest prompt (already checked).
        pad_id: The id written before the shorter prompts.
        bos_id: The id an empty prompt starts from; ``None`` forbids empty prompts.

    Returns:
        ``(tokens, lengths)``: int32 ``[B, P]`` and int32 ``[B]``, as :func:`left_pad`.

    Raises:
        ValueError: If there is no prompt, a prompt is malformed, or empty without
            ``bos_id``; the longest prompt plus ``max_new_tokens`` exceeds
            ``config.n_ctx`` (the message names the lengths); or an id lies outside
            the vocabulary (the message names the prompt).

    """
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
    return _pad_rows(rows, pad_id)


@functools.partial(jax.jit, static_argnums=1)
def _fold_rows(key: jax.Array, n: int, start: jax.Array) -> jax.Array:
    rows = start + jnp.arange(n, dtype=jnp.uint32)
    return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)


def row_keys(key: ArrayLike, n: int, *, start: int = 0) -> jax.Array:
    """The per-row keys that a single ``key`` gives rows ``start .. start + n - 1``.

    Row ``b`` gets ``jax.random.fold_in(key, b)``. Passing ``row_keys(key, 1, start=b)``
    to :func:`generate_ids` therefore generates row ``b`` of a batch alone with the
    keys it has inside the batch (the same tokens, unless the model's logits, which may
    differ in their last bits with the batch's shape, put a draw across a boundary).

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
    n = check_int("n", n, 1)
    start = check_int("start", start, 0, 2**32 - n + 1)
    keys: jax.Array = _fold_rows(k, n, jnp.uint32(start))
    return keys


def _batch_keys(key: ArrayLike, batch: int) -> jax.Array:
    k = check_key(key, (batch,))
    if k.shape == ():
        keys: jax.Array = _fold_rows(k, batch, jnp.uint32(0))
        return keys
    return k


def seed_key(seed: int) -> jax.Array:
    """The key that an integer seed stands for: ``jax.random.key(seed)``.

    Args:
        seed: An integer in ``[0, 2**63)``.

    Returns:
        A typed scalar key.

    Raises:
        ValueError: If ``seed`` is not an int in that range.

    """
    return jax.random.key(check_int("seed", seed, 0, 2**63))
