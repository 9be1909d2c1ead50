"""A small word-level GPT in pure JAX (see :mod:`jaxsample.model.gpt`)."""

from jaxsample.model.gpt import (
    PRESET_NAMES,
    GPTConfig,
    KVCache,
    Params,
    check_tokens,
    count_params,
    forward,
    forward_cached,
    init_cache,
    init_params,
    loss_fn,
)

__all__ = [
    "PRESET_NAMES",
    "GPTConfig",
    "KVCache",
    "Params",
    "check_tokens",
    "count_params",
    "forward",
    "forward_cached",
    "init_cache",
    "init_params",
    "loss_fn",
]
