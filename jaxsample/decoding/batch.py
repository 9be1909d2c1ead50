"""Generating a batch of token-id prompts: :func:`generate_ids` and its companions.

:func:`generate_ids` checks its arguments on the host, left-pads the prompts and runs
the jitted decode loop (:mod:`jaxsample.decoding.loop`) once, on the default device or
split over a mesh (``decoding/_mesh.py``). :func:`sample_completions` draws
``n`` completions of one prompt that way and :func:`completion_ids` reads one row back.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.typing import ArrayLike

from jaxsample._checks import check_int, check_strategy
from jaxsample.decoding._mesh import decode_on_mesh
from jaxsample.decoding.inputs import _as_rows, _batch_keys, _prompt_tokens, seed_key
from jaxsample.decoding.loop import Generation, _decode
from jaxsample.model import GPTConfig, Params
from jaxsample.samplers import Strategy

__all__ = ["completion_ids", "generate_ids", "sample_completions"]


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
    row and step with ``jaxsample.sample`` (see :mod:`jaxsample.decoding.loop`). After a row draws
    ``eos_id`` it emits ``pad_id``. The loop is compiled once per batch size, longest
    prompt length, ``max_new_tokens``, config, ``cache`` / ``record_logits`` flag and
    strategy structure (type and parameter shapes); new parameter *values* (e.g.
    another temperature) and new ``eos_id`` / ``pad_id`` reuse the compiled loop.

    Randomness: a single ``key`` gives row ``b`` the key ``k_b = fold_in(key, b)``; an
    array of keys of shape ``[B]`` gives row ``b`` the key ``key[b]``. The token of row
    ``b`` at step ``t`` is drawn with ``fold_in(k_b, t)``. So a row's randomness does
    not depend on the rest of the batch: ``row_keys(key, 1, start=b)`` gives row ``b``
    alone the same keys, and the same tokens unless a draw sits within rounding of a
    boundary: the model's logits for the row may differ in their last bits (XLA's
    matrix products and the left padding depend on the batch's shape; about 2e-6 for
    the Mini-GPT), which the sampler cannot undo.

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
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
    eos_id = check_int("eos_id", eos_id, 0, V)
    pad_id = check_int("pad_id", pad_id, 0, V)
    if bos_id is not None:
        bos_id = check_int("bos_id", bos_id, 0, V)
    tokens, lens = _prompt_tokens(
        prompts, lengths, config, max_new_tokens, pad_id=pad_id, bos_id=bos_id
    )
    logprobs = check_int("logprobs", logprobs, 0, V + 1)
    B = len(tokens)
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
        return decode_on_mesh(
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
    n = check_int("n", n, 1)
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
