"""Reading the Mini-GPT's next-token logits for the labs."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxsample.model import Pretrained, forward

__all__ = ["first_step_logits", "model_forward", "model_identity"]

#: ``forward(params, tokens, config)`` compiled once per config and token shape.
model_forward = jax.jit(forward, static_argnums=2)


def first_step_logits(model: Pretrained, prompt: str) -> jax.Array:
    """Float32 logits ``[V]`` for the token after ``prompt`` (bos prepended).

    Raises:
        ValueError: for words outside the model's vocabulary (named in the message).
    """
    ids = model.tokenizer.encode(prompt, bos=True)
    tokens = jnp.asarray([ids], jnp.int32)
    logits: jax.Array = model_forward(model.params, tokens, model.config)
    return logits[0, -1].astype(jnp.float32)


def model_identity(model: Pretrained) -> dict[str, Any]:
    """What identifies the checkpoint in a manifest: config, step and parameter hash."""
    m = model.manifest
    return {
        "params_sha256": m.get("params_sha256"),
        "step": m.get("step"),
        "config": model.config.to_dict(),
        "source": m.get("source", "shipped jaxsample/assets/mini_gpt_small"),
    }
