"""Reading a run's checkpoint back: :func:`restore_checkpoint` and :func:`load_run`.

A checkpoint stores the parameters, the optimiser state (with its step counters), the
PRNG key, the step, both configurations, the vocabulary and the losses so far. Its
metadata is checked first (format, configurations, step, vocabulary), then the arrays
are restored into the structure the configurations give, verified leaf by leaf.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import optax

from jaxsample.data import Tokenizer
from jaxsample.model import GPTConfig, Params, Pretrained, count_params
from jaxsample.model.params import CheckpointError, abstract_params
from jaxsample.model.pretrained import read_model_records
from jaxsample.training.checkpoint import CheckpointDir
from jaxsample.training.config import TrainConfig
from jaxsample.training.steps import make_optimizer

__all__ = [
    "CHECKPOINT_FORMAT",
    "RESUME_FREE_FIELDS",
    "EvalPoint",
    "TrainState",
    "load_run",
    "restore_checkpoint",
    "run_checkpoints",
    "run_manifest",
]

CHECKPOINT_FORMAT = "jaxsample-train/1"
"""Value of ``meta["format"]`` in every training checkpoint."""

RESUME_FREE_FIELDS = frozenset({"save_every"})
"""Fields of TrainConfig that may differ between a checkpoint and the run resuming it:
they change when files are written, never the computed values."""

_ITEMS = ("params", "train_state")
_CHECKPOINT_SUBDIR = "checkpoints"
_KEEP_CHECKPOINTS = 3
_FIRST_LOSSES = 20


@dataclasses.dataclass(frozen=True)
class EvalPoint:
    """Losses measured at one step (mean next-token cross-entropy in nats per token).

    Attributes:
        step: Number of optimiser steps taken.
        train_loss: Loss on the first ``eval_size`` training sentences.
        val_loss: Loss on the first ``eval_size`` validation sentences.

    """

    step: int
    train_loss: float
    val_loss: float


@dataclasses.dataclass(frozen=True)
class TrainState:
    """A restored training checkpoint.

    Attributes:
        directory: The step folder it was read from.
        step: Optimiser steps taken (also the data position).
        params: Model parameters.
        opt_state: Optimiser state, or ``None`` if restored without it.
        rng_key: Raw PRNG key data (uint32), or ``None`` if restored without it.
        train_config: The run's configuration.
        model_config: The model's configuration.
        tokenizer: The vocabulary the model was trained with.
        step_losses: Training-batch loss of every step so far.
        evals: Evaluations so far.
        meta: The raw checkpoint metadata.

    """

    directory: Path
    step: int
    params: Params
    opt_state: optax.OptState | None
    rng_key: jax.Array | None
    train_config: TrainConfig
    model_config: GPTConfig
    tokenizer: Tokenizer
    step_losses: tuple[float, ...]
    evals: tuple[EvalPoint, ...]
    meta: dict[str, Any]


def _field(meta: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in meta:
        raise CheckpointError(f"checkpoint metadata {where} lacks field '{key}'")
    value = meta[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CheckpointError(
            f"checkpoint metadata {where}: field '{key}' has the wrong type "
            f"({type(value).__name__})"
        )
    return value


def _compare(
    what: str,
    stored: Mapping[str, Any],
    expected: Mapping[str, Any],
    where: Path,
    skip: frozenset[str],
) -> None:
    for key, want in expected.items():
        if key in skip:
            continue
        have = stored.get(key)
        if have != want:
            raise CheckpointError(
                f"checkpoint {where} does not match: {what}.{key} is {have!r} in the "
                f"checkpoint but {want!r} was requested (resume with the original settings "
                "or use a new run folder)"
            )


def _parse_losses(
    meta: Mapping[str, Any], where: Path, step: int
) -> tuple[tuple[float, ...], tuple[EvalPoint, ...]]:
    losses = _field(meta, "losses", dict, where)
    try:
        step_losses = tuple(float(x) for x in losses["step"])
        evals = tuple(
            EvalPoint(int(e["step"]), float(e["train_loss"]), float(e["val_loss"]))
            for e in losses["evals"]
        )
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint metadata {where}: field 'losses' is malformed") from err
    if len(step_losses) != step:
        raise CheckpointError(
            f"checkpoint metadata {where}: field 'losses.step' has {len(step_losses)} "
            f"entries for step {step}"
        )
    return step_losses, evals


def _abstract_train_state(tx: optax.GradientTransformation, params: Params) -> dict[str, Any]:
    key = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    return {"opt_state": jax.eval_shape(tx.init, params), "rng_key": key}


def run_checkpoints(run_dir: Path, *, read_only: bool) -> CheckpointDir:
    """Open the ``checkpoints`` folder of a run (the last few steps are kept)."""
    return CheckpointDir(
        run_dir / _CHECKPOINT_SUBDIR, _ITEMS, max_to_keep=_KEEP_CHECKPOINTS, read_only=read_only
    )


def restore_checkpoint(
    run_dir: str | os.PathLike[str],
    *,
    step: int | None = None,
    expected: TrainConfig | None = None,
    expected_model: GPTConfig | None = None,
    with_optimizer: bool = True,
) -> TrainState:
    """Read and verify a training checkpoint of a run folder.

    The metadata is read first and checked (format, configurations, step); then the
    arrays are restored into an abstract target built from the configurations (a fresh
    ``init_params`` / ``optimizer.init`` structure), after checking every stored
    shape and dtype, and every leaf is checked against its recorded SHA-256.

    Args:
        run_dir: The run folder (the one that holds ``checkpoints/``).
        step: Step to read; defaults to the latest.
        expected: If given, the checkpoint's TrainConfig must equal it (``save_every``
            excepted).
        expected_model: If given, the checkpoint's GPTConfig must equal it.
        with_optimizer: Also restore the optimiser state and the PRNG key.

    Returns:
        The restored state.

    Raises:
        FileNotFoundError: If ``run_dir`` does not exist.
        CheckpointError: If there is no checkpoint, or it is damaged, inconsistent or
            does not match the expectations; the message names the folder or file and
            the field.

    """
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run folder {run} does not exist")
    if not (run / _CHECKPOINT_SUBDIR).is_dir():
        raise CheckpointError(f"{run} holds no checkpoint (no '{_CHECKPOINT_SUBDIR}' folder)")
    with run_checkpoints(run, read_only=True) as ckpts:
        if step is None:
            step = ckpts.latest_step()
            if step is None:
                raise CheckpointError(f"{ckpts.directory} holds no committed checkpoint")
        elif step not in ckpts.steps():
            raise CheckpointError(f"{ckpts.directory} has no checkpoint for step {step}")
        step_dir = ckpts.step_dir(step)
        meta = ckpts.read_meta(step)
        where = step_dir / "meta"
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'format' is {meta.get('format')!r}, "
                f"expected {CHECKPOINT_FORMAT!r}"
            )
        meta_step = _field(meta, "step", int, where)
        if meta_step != step or _field(meta, "data_position", int, where) != step:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'step' is {meta_step}, but the folder is "
                f"step {step}"
            )
        train_dict = _field(meta, "train_config", dict, where)
        model_dict = _field(meta, "model_config", dict, where)
        if expected is not None:
            _compare("train_config", train_dict, expected.to_dict(), where, RESUME_FREE_FIELDS)
        if expected_model is not None:
            _compare("model_config", model_dict, expected_model.to_dict(), where, frozenset())
        try:
            train_config = TrainConfig.from_dict(train_dict)
        except ValueError as err:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'train_config': {err}"
            ) from err
        model_config, tokenizer = read_model_records(
            model_dict,
            json.dumps(_field(meta, "tokenizer", dict, where)),
            f"checkpoint metadata {where}",
        )
        if model_config.n_ctx != train_config.n_ctx:
            raise CheckpointError(
                f"checkpoint metadata {where}: model_config.n_ctx ({model_config.n_ctx}) "
                f"differs from train_config.n_ctx ({train_config.n_ctx})"
            )
        step_losses, evals = _parse_losses(meta, where, step)
        params_target = abstract_params(model_config)
        targets: dict[str, Any] = {"params": params_target}
        if with_optimizer:
            targets["train_state"] = _abstract_train_state(
                make_optimizer(train_config), params_target
            )
        arrays = ckpts.restore_arrays(step, targets, meta)
    opt_state = None
    rng_key = None
    if with_optimizer:
        opt_state = arrays["train_state"]["opt_state"]
        rng_key = arrays["train_state"]["rng_key"]
        counts = {
            int(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state)
            if getattr(path[-1], "name", None) == "count"
        }
        if counts != {step}:
            raise CheckpointError(
                f"checkpoint {step_dir / 'train_state'}: field 'opt_state.count' is "
                f"{sorted(counts)}, expected {step}"
            )
    return TrainState(
        directory=step_dir,
        step=step,
        params=arrays["params"],
        opt_state=opt_state,
        rng_key=rng_key,
        train_config=train_config,
        model_config=model_config,
        tokenizer=tokenizer,
        step_losses=step_losses,
        evals=evals,
        meta=meta,
    )


def run_manifest(state: TrainState) -> dict[str, Any]:
    """The descriptive manifest of a restored run: configurations, losses, versions, hash.

    Args:
        state: A restored checkpoint.

    Returns:
        A JSON-serialisable dict (``format`` ``"jaxsample-train-checkpoint"``, with the
        step folder as ``source``); :func:`jaxsample.training.export_pretrained`
        extends it.

    """
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


def load_run(run_dir: str | os.PathLike[str]) -> Pretrained:
    """Load the model of a run folder's latest checkpoint, without the optimiser state.

    :func:`jaxsample.model.load_pretrained` calls this for a run folder.

    Args:
        run_dir: The run folder (the one that holds ``checkpoints/``).

    Returns:
        The model, with :func:`run_manifest` as its manifest.

    Raises:
        FileNotFoundError: If ``run_dir`` does not exist.
        CheckpointError: As :func:`restore_checkpoint`.

    """
    state = restore_checkpoint(run_dir, with_optimizer=False)
    return Pretrained(
        params=state.params,
        config=state.model_config,
        tokenizer=state.tokenizer,
        manifest=run_manifest(state),
    )
