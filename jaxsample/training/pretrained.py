"""Loading a trained Mini-GPT: the shipped model, an exported folder or a run folder.

An *exported* model folder (the format of the shipped
``jaxsample/assets/mini_gpt_small``) holds three files:

* ``manifest.json``: model and training configuration, corpus hash, losses, library
  versions and the parameters' SHA-256 (see :func:`export_pretrained`);
* ``tokenizer.json``: the vocabulary (``Tokenizer.to_json``);
* ``params.npz``: one float32 array per parameter, named by its ``/``-joined path
  (e.g. ``h/0/attn/c_attn/w``); no pickled objects.

Only the parameters are shipped, not the optimiser state, which would triple the
size. Loading checks names, shapes and dtypes against a freshly initialised parameter
structure and the SHA-256 against the manifest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.data import TextTokenizer, Tokenizer
from jaxsample.model import GPTConfig, Params, count_params, init_params, load_hf
from jaxsample.training.checkpoint import (
    CheckpointError,
    named_leaves,
    params_sha256,
    path_name,
)
from jaxsample.training.train import TrainConfig, TrainState, restore_checkpoint

__all__ = [
    "PRETRAINED_FORMAT",
    "SHIPPED_MODEL_DIR",
    "Pretrained",
    "export_pretrained",
    "load_pretrained",
]

PRETRAINED_FORMAT = "jaxsample-pretrained/1"
"""Value of ``manifest["format"]`` in an exported model folder."""

SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "mini_gpt_small"
"""Folder of the model shipped with the package."""

_MANIFEST = "manifest.json"
_TOKENIZER = "tokenizer.json"
_PARAMS = "params.npz"
_FIRST_LOSSES = 20


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
            ``train_config`` (see :func:`export_pretrained`). A Hugging Face folder's
            has ``format`` ``"huggingface-gpt2"``, ``None`` for the step, losses and
            hash, and no ``train_config`` (see :func:`jaxsample.model.load_hf`).

    """

    params: Params
    config: GPTConfig
    tokenizer: TextTokenizer
    manifest: dict[str, Any]


def _tree_names(tree: Any) -> list[str]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [path_name(path) for path, _leaf in flat]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is unreadable or not valid JSON ({err})") from err


def _load_params_npz(path: Path, config: GPTConfig) -> Params:
    target = jax.eval_shape(functools.partial(init_params, config=config), jax.random.key(0))
    expected = dict(named_leaves(target))
    arrays: dict[str, np.ndarray[Any, Any]] = {}
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as npz:
            names = list(npz.files)
            missing = sorted(set(expected) - set(names))
            extra = sorted(set(names) - set(expected))
            if missing:
                raise CheckpointError(f"{path} lacks field '{missing[0]}'")
            if extra:
                raise CheckpointError(f"{path} has unexpected field '{extra[0]}'")
            for name, leaf in expected.items():
                arr = npz[name]
                if tuple(arr.shape) != tuple(leaf.shape):
                    raise CheckpointError(
                        f"{path}: field '{name}' has shape {tuple(arr.shape)}, "
                        f"expected {tuple(leaf.shape)}"
                    )
                if arr.dtype != leaf.dtype:
                    raise CheckpointError(
                        f"{path}: field '{name}' has dtype {arr.dtype}, expected {leaf.dtype}"
                    )
                arrays[name] = arr
    except FileNotFoundError:
        raise
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(
            f"{path} is unreadable or damaged ({type(err).__name__}: {err})"
        ) from err
    treedef = jax.tree_util.tree_structure(target)
    leaves = [jnp.asarray(arrays[name]) for name in _tree_names(target)]
    return jax.tree_util.tree_unflatten(treedef, leaves)  # type: ignore[no-any-return]


def _load_exported(folder: Path) -> Pretrained:
    manifest = _read_json(folder / _MANIFEST)
    where = folder / _MANIFEST
    if not isinstance(manifest, dict) or manifest.get("format") != PRETRAINED_FORMAT:
        raise CheckpointError(f"{where}: field 'format' is not {PRETRAINED_FORMAT!r}")
    try:
        config = GPTConfig.from_dict(manifest["model_config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: field 'model_config' is invalid ({err})") from err
    tok_path = folder / _TOKENIZER
    try:
        tokenizer = Tokenizer.from_json(tok_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except Exception as err:
        raise CheckpointError(f"{tok_path} is not a valid tokenizer ({err})") from err
    if tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"{tok_path}: {tokenizer.vocab_size} words, but model_config.vocab_size is "
            f"{config.vocab_size}"
        )
    params = _load_params_npz(folder / _PARAMS, config)
    digest = params_sha256(params)
    if digest != manifest.get("params_sha256"):
        raise CheckpointError(
            f"{folder / _PARAMS}: parameters' SHA-256 {digest} differs from the manifest's "
            f"field 'params_sha256' ({manifest.get('params_sha256')})"
        )
    return Pretrained(params=params, config=config, tokenizer=tokenizer, manifest=manifest)


def _run_manifest(state: TrainState) -> dict[str, Any]:
    last = state.evals[-1] if state.evals else None
    return {
        "format": "jaxsample-train-checkpoint",
        "source": str(state.directory),
        "step": state.step,
        "model_config": state.model_config.to_dict(),
        "train_config": state.train_config.to_dict(),
        "corpus_sha256": state.meta.get("corpus_sha256"),
        "final_train_loss": None if last is None else last.train_loss,
        "final_val_loss": None if last is None else last.val_loss,
        "first_step_losses": list(state.step_losses[:_FIRST_LOSSES]),
        "evals": [dataclasses.asdict(e) for e in state.evals],
        "versions": state.meta.get("versions", {}),
        "params_sha256": state.meta.get("params_sha256"),
        "param_count": count_params(state.params),
        "training_seconds": state.meta.get("elapsed_seconds"),
    }


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
    if (folder / _MANIFEST).is_file():
        return _load_exported(folder)
    if (folder / "checkpoints").is_dir():
        state = restore_checkpoint(folder, with_optimizer=False)
        return Pretrained(
            params=state.params,
            config=state.model_config,
            tokenizer=state.tokenizer,
            manifest=_run_manifest(state),
        )
    if (folder / "config.json").is_file():
        return load_hf(folder)
    raise FileNotFoundError(
        f"{folder} is neither an exported model (no {_MANIFEST}), a training run "
        "(no checkpoints/ folder) nor a Hugging Face model (no config.json)"
    )


def export_pretrained(
    run_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the final parameters of a completed run as an exported model folder.

    The manifest records the model and training configurations (seed included), the
    corpus SHA-256, the number of steps, the final train and validation losses, the
    first 20 per-step training losses (for reproducibility checks), every evaluation,
    the jax/jaxlib/optax/orbax/numpy versions, the parameter count and SHA-256. The
    folder is written next to ``dest`` and then renamed over it.

    Args:
        run_dir: A training run folder whose latest checkpoint is at its final step.
        dest: The folder to create or replace.
        extra: Additional JSON-serialisable manifest entries (e.g. measurements).

    Returns:
        The manifest.

    Raises:
        FileNotFoundError: If ``run_dir`` does not exist.
        CheckpointError: If its checkpoint is damaged.
        ValueError: If the run is not complete.

    """
    state = restore_checkpoint(run_dir, with_optimizer=False)
    config: TrainConfig = state.train_config
    if state.step != config.steps:
        raise ValueError(
            f"run {run_dir} is at step {state.step} of {config.steps}; finish it before exporting"
        )
    manifest = _run_manifest(state)
    del manifest["source"]
    manifest.update(
        {
            "format": PRETRAINED_FORMAT,
            "steps": state.step,
            "corpus_seed": config.corpus_seed,
            "seed": config.seed,
            "files": {"params": _PARAMS, "tokenizer": _TOKENIZER},
        }
    )
    if extra:
        manifest.update(dict(extra))
    dest_path = Path(dest)
    tmp = dest_path.with_name(dest_path.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    host = {name: np.asarray(leaf) for name, leaf in named_leaves(state.params)}
    with open(tmp / _PARAMS, "wb") as fh:
        np.savez(fh, **host)  # type: ignore[arg-type]
    tok = state.tokenizer.to_json()
    tok_text = tok if isinstance(tok, str) else json.dumps(tok)
    (tmp / _TOKENIZER).write_text(
        tok_text if tok_text.endswith("\n") else tok_text + "\n", encoding="utf-8"
    )
    (tmp / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Check the export before it replaces anything.
    _load_exported(tmp)
    if dest_path.exists():
        shutil.rmtree(dest_path)
    os.replace(tmp, dest_path)
    return manifest
