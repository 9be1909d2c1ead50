"""Exporting a finished run as a model folder (the format of the shipped Mini-GPT).

The folder's format is :mod:`jaxsample.model.pretrained`'s; the export is read back
with :func:`jaxsample.model.load_pretrained` before it replaces anything.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxsample.model.params import named_leaves
from jaxsample.model.pretrained import (
    MANIFEST,
    PARAMS_FILE,
    PRETRAINED_FORMAT,
    TOKENIZER_FILE,
    load_pretrained,
)
from jaxsample.training.config import TrainConfig
from jaxsample.training.restore import restore_checkpoint, run_manifest

__all__ = ["export_pretrained"]


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
    manifest = run_manifest(state)
    del manifest["source"]
    manifest.update(
        {
            "format": PRETRAINED_FORMAT,
            "steps": state.step,
            "corpus_seed": config.corpus_seed,
            "seed": config.seed,
            "files": {"params": PARAMS_FILE, "tokenizer": TOKENIZER_FILE},
        }
    )
    if extra:
        manifest.update(dict(extra))
    dest_path = Path(dest)
    tmp = dest_path.with_name(dest_path.name + ".tmp-export")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    host = {name: np.asarray(leaf) for name, leaf in named_leaves(state.params)}
    with open(tmp / PARAMS_FILE, "wb") as fh:
        np.savez(fh, **host)  # type: ignore[arg-type]
    tok_text = state.tokenizer.to_json()
    (tmp / TOKENIZER_FILE).write_text(
        tok_text if tok_text.endswith("\n") else tok_text + "\n", encoding="utf-8"
    )
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    # Check the export before it replaces anything.
    load_pretrained(tmp)
    if dest_path.exists():
        shutil.rmtree(dest_path)
    os.replace(tmp, dest_path)
    return manifest
