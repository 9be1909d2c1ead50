"""The model room: a GPT-2 in pure JAX and loading a trained one.

* :mod:`~.gpt`: the configuration, parameters, forward passes (full and cached) and
  the training loss;
* :mod:`~.pretrained`: :func:`load_pretrained` (the shipped Mini-GPT, an exported
  folder, a training run or a Hugging Face GPT-2) and the :class:`Pretrained` it returns;
* :mod:`~.hf`: reading GPT-2 checkpoints in the Hugging Face layout;
* :mod:`~.params`: naming, fingerprinting and checking parameter pytrees.
"""

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
from jaxsample.model.params import CheckpointError, params_sha256
from jaxsample.model.pretrained import SHIPPED_MODEL_DIR, Pretrained, load_pretrained

__all__ = [
    "HF_FORMAT",
    "PRESET_NAMES",
    "SHIPPED_MODEL_DIR",
    "CheckpointError",
    "GPTConfig",
    "KVCache",
    "Params",
    "Pretrained",
    "WeightsDtype",
    "check_tokens",
    "count_params",
    "forward",
    "forward_cached",
    "hf_config",
    "init_cache",
    "init_params",
    "load_hf",
    "load_pretrained",
    "loss_fn",
    "params_sha256",
]
