"""A GPT-2 in pure JAX (:mod:`~.gpt`) and a loader of GPT-2 checkpoints (:mod:`~.hf`)."""

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
from jaxsample.model.hf import HF_FORMAT, WeightsDtype, hf_config, load_hf

__all__ = [
    "HF_FORMAT",
    "PRESET_NAMES",
    "GPTConfig",
    "KVCache",
    "Params",
    "WeightsDtype",
    "check_tokens",
    "count_params",
    "forward",
    "forward_cached",
    "hf_config",
    "init_cache",
    "init_params",
    "load_hf",
    "loss_fn",
]
