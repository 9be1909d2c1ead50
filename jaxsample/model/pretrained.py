"""Loading a trained model: the shipped Mini-GPT, an exported folder, a run or a GPT-2.

An *exported* model folder (the format of the shipped
``jaxsample/assets/mini_gpt_small``) holds three files:

* ``manifest.json``: model and training configuration, corpus hash, losses, library
  versions and the parameters' SHA-256 (see :func:`jaxsample.training.export_pretrained`);
* ``tokenizer.json``: the vocabulary (``Tokenizer.to_json``);
* ``params.npz``: one float32 array per parameter, named by its ``/``-joined path
  (e.g. ``h/0/attn/c_attn/w``); no pickled objects.

Only the parameters are shipped, not the optimiser state, which would triple the
size. Loading checks names, shapes and dtypes against a freshly initialised parameter
structure and the SHA-256 against the manifest. Loading an exported folder or a
Hugging Face folder needs neither optax nor orbax; a training run folder is read
through :func:`jaxsample.training.restore_checkpoint`, imported only then.
"""

from __future__ import annotations

import dataclasses
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.data import TextTokenizer, Tokenizer
from jaxsample.model.gpt import GPTConfig, Params
from jaxsample.model.hf import load_hf
from jaxsample.model.params import (
    CheckpointError,
    abstract_params,
    check_layout,
    layout,
    params_sha256,
    path_name,
)

__all__ = [
    "MANIFEST",
    "PARAMS_FILE",
    "PRETRAINED_FORMAT",
    "SHIPPED_MODEL_DIR",
    "TOKENIZER_FILE",
    "Pretrained",
    "load_pretrained",
    "read_model_records",
]

PRETRAINED_FORMAT = "jaxsample-pretrained/1"
"""Value of ``manifest["format"]`` in an exported model folder."""

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "mini_gpt_small"
"""Folder of the model shipped with the package."""

MANIFEST = "manifest.json"
"""File name of an exported folder's manifest."""
TOKENIZER_FILE = "tokenizer.json"
"""File name of an exported folder's vocabulary."""
PARAMS_FILE = "params.npz"
"""File name of an exported folder's parameters."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """A loaded model.

    Attributes:
        params: Parameters (JAX arrays in the GPT-2 layout of ``jaxsample.model``;
            float32, or bfloat16 when a Hugging Face folder is loaded that way).
        config: The model configuration.
        tokenizer: The model's tokenizer: the word-level vocabulary of a Mini-GPT, or
            GPT-2's byte-level BPE for a Hugging Face folder.
        manifest: Descriptive metadata: at least ``step``, ``final_train_loss``,
            ``final_val_loss``, ``params_sha256``, ``model_config`` and
            ``train_config`` (see :func:`jaxsample.training.export_pretrained`). A
            Hugging Face folder's has ``format`` ``"huggingface-gpt2"``, ``None`` for
            the step, losses and hash, and no ``train_config`` (see
            :func:`jaxsample.model.load_hf`).

    """

    params: Params
    config: GPTConfig
    tokenizer: TextTokenizer
    manifest: dict[str, Any]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is unreadable or not valid JSON ({err})") from err


def read_model_records(
    model_config: Any, tokenizer: str, where: str
) -> tuple[GPTConfig, Tokenizer]:
    """Read a recorded model configuration and vocabulary, and check that they agree.

    Exported folders and training checkpoints both record the two; this is the one
    reader of both.

    Args:
        model_config: The recorded ``GPTConfig.to_dict()``.
        tokenizer: The recorded ``Tokenizer.to_json()``.
        where: The file or checkpoint they were read from, for messages.

    Returns:
        The configuration and the tokenizer.

    Raises:
        CheckpointError: If either is invalid, or the vocabulary size differs from
            ``model_config["vocab_size"]``; the message names ``where`` and the field.

    """
    try:
        config = GPTConfig.from_dict(model_config)
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: field 'model_config' is invalid ({err})") from err
    try:
        tok = Tokenizer.from_json(tokenizer)
    except Exception as err:
        raise CheckpointError(f"{where}: field 'tokenizer' is invalid ({err})") from err
    if tok.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{where}: field 'tokenizer' has {tok.vocab_size} words, but "
            f"model_config.vocab_size is {config.vocab_size}"
        )
    return config, tok


def _load_params_npz(path: Path, config: GPTConfig) -> Params:
    target = abstract_params(config)
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(
            f"{path} is unreadable or damaged ({type(err).__name__}: {err})"
        ) from err
    check_layout(layout(arrays), layout(target), str(path))
    return jax.tree_util.tree_map_with_path(  # type: ignore[no-any-return]
        lambda key, _: jnp.asarray(arrays[path_name(key)]), target
    )


def _load_exported(folder: Path) -> Pretrained:
    where = folder / MANIFEST
    manifest = _read_json(where)
    if not isinstance(manifest, dict) or manifest.get("format") != PRETRAINED_FORMAT:
        raise CheckpointError(f"{where}: field 'format' is not {PRETRAINED_FORMAT!r}")
    tok_text = (folder / TOKENIZER_FILE).read_text(encoding="utf-8")
    config, tokenizer = read_model_records(manifest.get("model_config"), tok_text, str(folder))
    params = _load_params_npz(folder / PARAMS_FILE, config)
    digest = params_sha256(params)
    if digest != manifest.get("params_sha256"):
        raise CheckpointError(
            f"{folder / PARAMS_FILE}: parameters' SHA-256 {digest} differs from the manifest's "
            f"field 'params_sha256' ({manifest.get('params_sha256')})"
        )
    return Pretrained(params=params, config=config, tokenizer=tokenizer, manifest=manifest)


def load_pretrained(path: str | os.PathLike[str] | None = None) -> Pretrained:
    """Load a trained model's parameters, configuration and vocabulary.

    Args:
        path: An exported model folder (with ``manifest.json``), a training run
            folder (with ``checkpoints/``; its latest checkpoint is used, without the
            optimiser state), or a local Hugging Face GPT-2 folder (with
            ``config.json``; read by :func:`jaxsample.model.load_hf` in float32).
            ``None`` loads the model shipped with the package.

    Returns:
        The verified model.

    Raises:
        FileNotFoundError: If ``path`` or a required file does not exist.
        CheckpointError: If a file is damaged or inconsistent (wrong field, shape,
            dtype or SHA-256); the message names the file and the field.
        ValueError: If a Hugging Face folder is not a supported GPT-2 (see
            :func:`jaxsample.model.load_hf`).

    """
    folder = SHIPPED_MODEL_DIR if path is None else Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model folder {folder} does not exist")
    if (folder / MANIFEST).is_file():
        return _load_exported(folder)
    if (folder / "checkpoints").is_dir():
        # A run folder is an orbax checkpoint: only reading one needs the training stack.
        from jaxsample.training.restore import load_run

        return load_run(folder)
    if (folder / "config.json").is_file():
        return load_hf(folder)
    raise FileNotFoundError(
        f"{folder} is neither an exported model (no {MANIFEST}), a training run "
        "(no checkpoints/ folder) nor a Hugging Face model (no config.json)"
    )
