"""The compiled pieces of training: the optimiser, the first state, a step, an evaluation.

The optimiser is AdamW (Loshchilov & Hutter, 2019, "Decoupled Weight Decay
Regularization") after global-norm gradient clipping, with a linear warm-up followed
by cosine decay of the learning rate. Weight decay applies to matrices and embeddings
only (``ndim >= 2``), not to biases or LayerNorm parameters.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsample.model import GPTConfig, Params, init_params, loss_fn
from jaxsample.training.config import TrainConfig

__all__ = ["EVAL_BATCH", "StepFn", "make_evaluator", "make_init", "make_optimizer", "make_step"]

EVAL_BATCH = 256
"""Rows per compiled call of an evaluation."""


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Build the optimiser: global-norm clipping, then AdamW with warm-up and cosine decay.

    ``optax.chain(clip_by_global_norm(grad_clip_norm), adamw(schedule, ...))`` where the
    schedule rises linearly from 0 to ``learning_rate`` over ``warmup_steps`` and then
    follows a cosine down to ``learning_rate * final_lr_fraction`` at ``steps``. AdamW
    decouples the weight decay from the adaptive gradient step (Loshchilov & Hutter,
    2019); here it is masked to parameters with ``ndim >= 2``.

    Args:
        config: Training configuration.

    Returns:
        The optax transformation (its state counts the steps taken).

    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=config.steps,
        end_value=config.learning_rate * config.final_lr_fraction,
    )
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(
            schedule,
            b1=config.adam_b1,
            b2=config.adam_b2,
            weight_decay=config.weight_decay,
            mask=lambda params: jax.tree.map(lambda x: x.ndim >= 2, params),
        ),
    )


StepFn = Callable[
    [Params, optax.OptState, jax.Array, jax.Array, jax.Array],
    tuple[Params, optax.OptState, jax.Array, jax.Array],
]


def make_step(tx: optax.GradientTransformation, model_config: GPTConfig, pad_id: int) -> StepFn:
    """Compile one optimiser step on a batch.

    Args:
        tx: The optimiser (see :func:`make_optimizer`).
        model_config: The model's configuration.
        pad_id: Target id left out of the loss.

    Returns:
        ``step(params, opt_state, rng_key, inputs, targets) -> (params, opt_state,
        rng_key, loss)``, jit-compiled; ``rng_key`` is raw uint32 key data, advanced
        once per step; inputs and targets are int32 ``[B, T]``.

    """

    def step(
        params: Params,
        opt_state: optax.OptState,
        rng_key: jax.Array,
        inputs: jax.Array,
        targets: jax.Array,
    ) -> tuple[Params, optax.OptState, jax.Array, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(
            params, inputs, targets, model_config, pad_id=pad_id
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # The model has no stochastic layers; the key is still advanced once per step
        # so that the stream it defines is part of the exactly-resumable state.
        rng_key = jax.random.key_data(jax.random.split(jax.random.wrap_key_data(rng_key))[0])
        return params, opt_state, rng_key, loss

    return jax.jit(step)


def make_init(
    tx: optax.GradientTransformation, model_config: GPTConfig
) -> Callable[[jax.Array], tuple[Params, optax.OptState, jax.Array]]:
    """Compile the start of a run from a seed.

    Args:
        tx: The optimiser.
        model_config: The model's configuration.

    Returns:
        ``init(seed) -> (params, opt_state, rng_key)``: ``jax.random.key(seed)`` split
        into the initialisation key and the run's key (returned as raw key data).

    """

    def init(seed: jax.Array) -> tuple[Params, optax.OptState, jax.Array]:
        init_key, run_key = jax.random.split(jax.random.key(seed))
        params = init_params(init_key, model_config)
        return params, tx.init(params), jax.random.key_data(run_key)

    return jax.jit(init)


@functools.lru_cache(maxsize=8)
def make_evaluator(
    model_config: GPTConfig, pad_id: int, *, batch: int = EVAL_BATCH
) -> Callable[[Params, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]], float]:
    """Compile the loss of a whole data set: every non-pad target counts once.

    The rows are run ``batch`` at a time (the last chunk filled with all-pad rows,
    which add nothing); each chunk gives ``(loss * targets, targets)`` and the result
    is the sum of the first over the sum of the second.

    Args:
        model_config: The model's configuration.
        pad_id: Target id left out of the loss.
        batch: Rows per compiled call (fewer when the set is smaller).

    The compiled function is cached per ``(model_config, pad_id, batch)``.

    Returns:
        ``evaluate(params, (inputs, targets)) -> float``, the mean next-token
        cross-entropy in nats; inputs and targets are int ``[N, T]`` NumPy arrays.

    """

    @jax.jit
    def batch_sum(
        params: Params, inputs: jax.Array, targets: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        count = jnp.sum(targets != pad_id).astype(jnp.float32)
        return loss_fn(params, inputs, targets, model_config, pad_id=pad_id) * count, count

    def evaluate(params: Params, data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> float:
        inputs, targets = data
        n = inputs.shape[0]
        rows = min(batch, n)
        total = 0.0
        count = 0.0
        for start in range(0, n, rows):
            x, y = inputs[start : start + rows], targets[start : start + rows]
            if x.shape[0] < rows:  # pad with all-pad rows: they add nothing
                fill = rows - x.shape[0]
                x = np.concatenate([x, np.full((fill, x.shape[1]), pad_id, x.dtype)])
                y = np.concatenate([y, np.full((fill, y.shape[1]), pad_id, y.dtype)])
            s, c = batch_sum(params, jnp.asarray(x), jnp.asarray(y))
            total += float(s)
            count += float(c)
        return total / max(count, 1.0)

    return evaluate
