"""Loading GPT-2 checkpoints from a local Hugging Face folder.

:func:`load_hf` reads a folder such as the published ``gpt2`` one, or one written by
``GPT2LMHeadModel.save_pretrained``, into the :class:`~jaxsample.model.Pretrained`
that :func:`~jaxsample.model.load_pretrained` returns: parameters in this package's
GPT-2 layout, a :class:`~jaxsample.model.GPTConfig` and the byte-level BPE tokenizer
(:class:`~jaxsample.data.bpe.BPETokenizer`). Only local files are read; nothing is
downloaded.

A folder holds ``config.json``, the weights as ``model.safetensors`` (or shards listed in
``model.safetensors.index.json``) and ``tokenizer.json`` (or ``vocab.json`` and
``merges.txt``). Pickled ``pytorch_model.bin`` weights are not read.

Tensor names come in two layouts, both accepted: the published folders use bare names
(``h.0.attn.c_attn.weight``, ``wte.weight``) and store the causal-mask buffers
``h.N.attn.bias`` / ``h.N.attn.masked_bias`` (ignored); ``save_pretrained`` prefixes
``transformer.`` and may store ``lm_head.weight``, which must equal ``wte`` (GPT-2 ties
the output head to the token embedding). Hugging Face's ``Conv1D`` keeps weights as
``(d_in, d_out)``, the layout of :mod:`jaxsample.model.gpt`, so no tensor is transposed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jax.numpy as jnp
import numpy as np

from jaxsample.model.gpt import GPTConfig, Params

if TYPE_CHECKING:  # pretrained imports this module
    from jaxsample.model.pretrained import Pretrained

__all__ = ["HF_FORMAT", "WeightsDtype", "hf_config", "load_hf"]

HF_FORMAT = "huggingface-gpt2"
"""Value of ``manifest["format"]`` of a model loaded by :func:`load_hf`."""

WeightsDtype = Literal["float32", "bfloat16"]
"""Storage dtype of loaded weights; the model computes in float32 either way."""

_CONFIG = "config.json"
_WEIGHTS = "model.safetensors"
_INDEX = "model.safetensors.index.json"
_PICKLED = ("pytorch_model.bin", "pytorch_model.bin.index.json")
_PREFIX = "transformer."
_HEAD = "lm_head.weight"
_READ_DTYPES = ("F32", "F16", "BF16")
_LN_EPS = 1e-5
_TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
_REQUIRED_FLAGS = {
    "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False,
    "add_cross_attention": False,
    "tie_word_embeddings": True,
}


def hf_config(folder: str | os.PathLike[str]) -> tuple[GPTConfig, dict[str, Any]]:
    """Read and check a GPT-2 ``config.json``.

    Only what :mod:`jaxsample.model.gpt` computes is accepted: ``model_type`` ``"gpt2"``,
    a tanh-approximated GELU (``gelu_new``), LayerNorm epsilon ``1e-5``, an MLP of width
    ``4 * n_embd``, attention scaled by ``1 / sqrt(d_head)`` (and not by layer index), no
    cross-attention, and a head tied to the token embedding.

    Args:
        folder: The model folder.

    Returns:
        ``(config, raw)``: the configuration (``n_positions`` -> ``n_ctx``, ``n_embd`` ->
        ``d_model``) and the parsed JSON.

    Raises:
        FileNotFoundError: If ``config.json`` is missing.
        ValueError: If it is not valid JSON or describes something else; the message
            names the file and the field.

    """
    path = Path(folder) / _CONFIG
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} does not exist (not a Hugging Face model folder)"
        ) from None
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is unreadable or not valid JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    model_type = raw.get("model_type")
    if model_type != "gpt2":
        raise ValueError(f"{path}: model_type {model_type!r} is not supported (only 'gpt2')")
    activation = raw.get("activation_function", "gelu_new")
    if activation not in _TANH_GELUS:
        raise ValueError(
            f"{path}: field 'activation_function' = {activation!r} is not supported "
            f"(only the tanh GELU: {', '.join(_TANH_GELUS)})"
        )
    eps = raw.get("layer_norm_epsilon", _LN_EPS)
    if not isinstance(eps, int | float) or abs(float(eps) - _LN_EPS) > 1e-12:
        raise ValueError(f"{path}: field 'layer_norm_epsilon' = {eps!r} is not supported (1e-5)")
    # Boolean options and the only value this model computes (HF's default when absent).
    for name, wanted in _REQUIRED_FLAGS.items():
        value = raw.get(name, wanted)
        if bool(value) != wanted:
            raise ValueError(f"{path}: field '{name}' = {value!r} is not supported")
    fields = {
        "vocab_size": "vocab_size",
        "n_ctx": "n_positions" if "n_positions" in raw else "n_ctx",
        "n_layer": "n_layer",
        "n_head": "n_head",
        "d_model": "n_embd",
    }
    missing = [hf for hf in fields.values() if hf not in raw]
    if missing:
        raise ValueError(f"{path}: field '{missing[0]}' is missing")
    try:
        config = GPTConfig(**{ours: raw[hf] for ours, hf in fields.items()})
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    n_inner = raw.get("n_inner")
    if n_inner is not None and n_inner != 4 * config.d_model:
        raise ValueError(f"{path}: field 'n_inner' = {n_inner!r} is not 4 * n_embd")
    return config, raw


def _expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name (without prefix) and its shape."""
    D, V = config.d_model, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (V, D),
        "wpe.weight": (config.n_ctx, D),
        "ln_f.weight": (D,),
        "ln_f.bias": (D,),
    }
    block = {
        "ln_1.weight": (D,),
        "ln_1.bias": (D,),
        "attn.c_attn.weight": (D, 3 * D),
        "attn.c_attn.bias": (3 * D,),
        "attn.c_proj.weight": (D, D),
        "attn.c_proj.bias": (D,),
        "ln_2.weight": (D,),
        "ln_2.bias": (D,),
        "mlp.c_fc.weight": (D, 4 * D),
        "mlp.c_fc.bias": (4 * D,),
        "mlp.c_proj.weight": (4 * D, D),
        "mlp.c_proj.bias": (D,),
    }
    for i in range(config.n_layer):
        shapes.update({f"h.{i}.{name}": shape for name, shape in block.items()})
    return shapes


def _is_buffer(name: str) -> bool:
    """The attention-mask buffers of older GPT-2 checkpoints, not parameters."""
    parts = name.split(".")
    return (
        len(parts) == 4
        and parts[0] == "h"
        and parts[2] == "attn"
        and parts[3] in ("bias", "masked_bias")
    )


def _weight_files(folder: Path) -> list[Path]:
    """The safetensors files to read: ``model.safetensors`` or the shards of its index."""
    single = folder / _WEIGHTS
    if single.is_file():
        return [single]
    index = folder / _INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{index} is not a readable shard index ({err!r})") from err
        files: list[Path] = []
        for shard in shards:
            if not isinstance(shard, str) or Path(shard).name != shard:
                raise ValueError(f"{index}: shard {shard!r} is not a file name in {folder}")
            if not (folder / shard).is_file():
                raise FileNotFoundError(f"{index}: shard {folder / shard} does not exist")
            files.append(folder / shard)
        return files
    for name in _PICKLED:
        if (folder / name).is_file():
            raise ValueError(
                f"{folder / name}: pickled PyTorch weights are not read; convert the folder "
                f"to {_WEIGHTS}"
            )
    raise FileNotFoundError(f"{folder} has no {_WEIGHTS} (nor {_INDEX})")


def _tensors(files: list[Path]) -> Iterator[tuple[str, Path, Any]]:
    """Yield ``(name, file, slice)`` for every tensor; ``slice[:]`` reads it.

    The file is mapped anew for each tensor and unmapped after it, so that the mapped
    pages of the tensors already read do not stay resident next to their copies.
    """
    from safetensors import SafetensorError, safe_open

    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as handle:
                names = list(handle.keys())
            for name in names:
                with safe_open(str(file), framework="numpy") as handle:
                    yield name, file, handle.get_slice(name)
        except SafetensorError as err:
            raise ValueError(f"{file} is not a readable safetensors file ({err})") from None


def _read_weights(
    folder: Path, config: GPTConfig, dtype: WeightsDtype
) -> tuple[dict[str, Any], list[str]]:
    """Read, check and convert every tensor; return ``{name: jax array}`` and the files."""
    files = _weight_files(folder)
    expected = _expected_shapes(config)
    target = jnp.float32 if dtype == "float32" else jnp.bfloat16
    arrays: dict[str, Any] = {}
    head: tuple[Path, np.ndarray[Any, Any]] | None = None
    seen: dict[str, Path] = {}
    for raw_name, file, tensor in _tensors(files):
        name = raw_name.removeprefix(_PREFIX)
        if name in seen:
            raise ValueError(f"{file}: tensor '{raw_name}' is also stored in {seen[name]}")
        seen[name] = file
        if _is_buffer(name):
            continue
        if name != _HEAD and name not in expected:
            raise ValueError(f"{file}: unexpected tensor '{raw_name}' (not part of GPT-2)")
        shape = tuple(int(n) for n in tensor.get_shape())
        want = expected.get(name, expected["wte.weight"])
        if shape != want:
            raise ValueError(f"{file}: tensor '{raw_name}' has shape {shape}, expected {want}")
        kind = tensor.get_dtype()
        if kind not in _READ_DTYPES:
            raise ValueError(
                f"{file}: tensor '{raw_name}' has dtype {kind}; only F32, F16 and BF16 are read"
            )
        try:
            values = np.asarray(tensor[:])
        except Exception as err:  # a short read of a damaged file
            raise ValueError(f"{file}: tensor '{raw_name}' is unreadable ({err})") from None
        if name == _HEAD:
            head = (file, values)
            continue
        arrays[name] = jnp.asarray(values, dtype=target)
    missing = [name for name in expected if name not in arrays]
    if missing:
        raise ValueError(
            f"{folder}: tensor '{missing[0]}' is missing from {', '.join(f.name for f in files)}"
        )
    if head is not None:
        tied = np.asarray(jnp.asarray(head[1], dtype=target))
        if not np.array_equal(tied, np.asarray(arrays["wte.weight"])):
            raise ValueError(
                f"{head[0]}: tensor '{_HEAD}' differs from 'wte.weight'; untied output heads "
                "are not supported"
            )
    return arrays, [f.name for f in files]


def _to_params(arrays: dict[str, Any], config: GPTConfig) -> Params:
    """Arrange Hugging Face names into :mod:`jaxsample.model.gpt`'s parameter tree."""

    def ln(prefix: str) -> Params:
        return {"g": arrays[f"{prefix}.weight"], "b": arrays[f"{prefix}.bias"]}

    def linear(prefix: str) -> Params:
        return {"w": arrays[f"{prefix}.weight"], "b": arrays[f"{prefix}.bias"]}

    blocks = [
        {
            "ln_1": ln(f"h.{i}.ln_1"),
            "attn": {
                "c_attn": linear(f"h.{i}.attn.c_attn"),
                "c_proj": linear(f"h.{i}.attn.c_proj"),
            },
            "ln_2": ln(f"h.{i}.ln_2"),
            "mlp": {"c_fc": linear(f"h.{i}.mlp.c_fc"), "c_proj": linear(f"h.{i}.mlp.c_proj")},
        }
        for i in range(config.n_layer)
    ]
    return {
        "wte": arrays["wte.weight"],
        "wpe": arrays["wpe.weight"],
        "h": blocks,
        "ln_f": ln("ln_f"),
    }


def _special_id(raw: dict[str, Any], field: str, path: Path) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}: field '{field}' = {value!r} is not a single token id")
    return value


def load_hf(path: str | os.PathLike[str], *, dtype: WeightsDtype = "float32") -> Pretrained:
    """Load a local Hugging Face GPT-2 folder as a :class:`~jaxsample.model.Pretrained`.

    Weights stored as float32, float16 or bfloat16 are converted to ``dtype``. With
    ``"bfloat16"`` the parameters take half the memory and the model still computes in
    float32 (each weight is widened where it is used). Tensors are read one at a time from
    the memory-mapped file, so the peak memory is about the parameters plus one tensor.

    The tokenizer's end, start and padding ids come from ``config.json``
    (``eos_token_id``, ``bos_token_id``, ``pad_token_id``; GPT-2 uses ``<|endoftext|>``
    for all three).

    Args:
        path: The folder (``config.json``, ``model.safetensors`` or a shard index, and
            ``tokenizer.json`` or ``vocab.json`` + ``merges.txt``).
        dtype: ``"float32"`` (default) or ``"bfloat16"``: the dtype of the parameters.

    Returns:
        The model: parameters (``dtype`` JAX arrays, layout of :mod:`jaxsample.model.gpt`),
        config, tokenizer and a manifest with ``format`` ``"huggingface-gpt2"``,
        ``source``, ``weights_dtype``, ``files``, ``model_config`` and ``None`` for
        ``step``, ``final_train_loss``, ``final_val_loss`` and ``params_sha256``; there is
        no ``train_config``.

    Raises:
        FileNotFoundError: If the folder, ``config.json``, the weights, a shard or the
            tokenizer files are missing.
        ValueError: If anything is not supported or damaged: another ``model_type`` or
            architecture option, pickled weights only, a missing, unexpected or wrongly
            shaped tensor, another dtype, a truncated file, an untied ``lm_head``, a
            tokenizer whose size differs from ``vocab_size``. One line naming the file and
            the tensor or field.

    """
    from jaxsample.data.bpe import BPETokenizer
    from jaxsample.model.pretrained import Pretrained

    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {dtype!r}")
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    config, raw = hf_config(folder)
    config_path = folder / _CONFIG
    eos_id = _special_id(raw, "eos_token_id", config_path)
    tokenizer = BPETokenizer.from_folder(
        folder,
        eos_id=eos_id,
        bos_id=_special_id(raw, "bos_token_id", config_path),
        pad_id=_special_id(raw, "pad_token_id", config_path),
    )
    if tokenizer.vocab_size != config.vocab_size:
        raise ValueError(
            f"{folder}: the tokenizer has {tokenizer.vocab_size} tokens but {_CONFIG} says "
            f"vocab_size {config.vocab_size}"
        )
    arrays, files = _read_weights(folder, config, dtype)
    manifest: dict[str, Any] = {
        "format": HF_FORMAT,
        "source": str(folder),
        "weights_dtype": dtype,
        "files": files,
        "model_config": config.to_dict(),
        "step": None,
        "final_train_loss": None,
        "final_val_loss": None,
        "params_sha256": None,
    }
    return Pretrained(
        params=_to_params(arrays, config), config=config, tokenizer=tokenizer, manifest=manifest
    )
