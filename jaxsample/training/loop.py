"""Training the Mini-GPT on the synthetic corpus, with exact, kill-safe resume.

The pieces live next door: the settings in :mod:`~jaxsample.training.config`, the
data and batch order in :mod:`~jaxsample.training.data`, the optimiser and compiled
steps in :mod:`~jaxsample.training.steps`, checkpoints in
:mod:`~jaxsample.training.checkpoint` and :mod:`~jaxsample.training.restore`.

Determinism: the parameters are initialised from ``jax.random.key(seed)``, and the
batch of step ``s`` is a pure function of ``(seed, s)``: the training sentences are
shuffled once per epoch with ``np.random.default_rng([seed, epoch])`` and cut into
consecutive batches (the last incomplete batch of an epoch is dropped). The data
position is therefore just the step number. A checkpoint stores the parameters, the
optimiser state (with its step counters), the PRNG key, the step, both configurations,
the vocabulary and the losses so far; resuming from it replays exactly the same
computation, so on one machine a run that is killed and restarted (any number of
times) ends with bit-identical parameters to an uninterrupted run.

Layout of a run folder::

    <out>/checkpoints/<step>/{params,train_state,meta}   # orbax; last few steps kept
    <out>/loss_curve.json                                 # every logged loss
    <out>/loss_curve.png                                  # train and validation curves
"""

from __future__ import annotations

import dataclasses
import os
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxsample.model import GPTConfig, Params
from jaxsample.model.params import CheckpointError, params_sha256
from jaxsample.progress import Progress
from jaxsample.training.config import TrainConfig
from jaxsample.training.curve import remove_stale_tmp_files, write_loss_curve
from jaxsample.training.data import batch_indices, prepare_data
from jaxsample.training.restore import (
    CHECKPOINT_FORMAT,
    EvalPoint,
    restore_checkpoint,
    run_checkpoints,
)
from jaxsample.training.steps import make_evaluator, make_init, make_optimizer, make_step

__all__ = ["TrainResult", "train"]


@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    Attributes:
        out_dir: The run folder.
        step: Steps taken when :func:`train` returned.
        train_loss: Training-set loss at the last evaluation.
        val_loss: Validation loss at the last evaluation.
        params_sha256: :func:`params_sha256` of the final parameters.
        params: The final parameters.
        train_config: The run's configuration.
        model_config: The model's configuration.
        step_losses: Training-batch loss of every step.
        evals: All evaluations.
        resumed_from: Step of the checkpoint the run resumed from, or ``None``.
        seconds: Wall-clock seconds spent in this call.

    """

    out_dir: Path
    step: int
    train_loss: float
    val_loss: float
    params_sha256: str
    params: Params
    train_config: TrainConfig
    model_config: GPTConfig
    step_losses: tuple[float, ...]
    evals: tuple[EvalPoint, ...]
    resumed_from: int | None
    seconds: float

    def summary(self) -> str:
        """One line: step, train loss, validation loss and parameter hash."""
        return (
            f"step {self.step}/{self.train_config.steps}  train loss {self.train_loss:.4f}  "
            f"val loss {self.val_loss:.4f}  params sha256 {self.params_sha256}"
        )


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("jax", "jaxlib", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - only for odd installs
            out[name] = "unknown"
    return out


def train(
    out_dir: str | os.PathLike[str],
    config: TrainConfig,
    *,
    progress: bool = True,
    until: int | None = None,
) -> TrainResult:
    """Train (or resume) a Mini-GPT run in a folder.

    If ``out_dir`` holds a checkpoint, training resumes from the latest one, which
    must have been written with the same settings (``save_every`` may differ);
    otherwise it starts from scratch. Checkpoints are written every ``save_every``
    steps and at the end; losses are evaluated every ``eval_every`` steps (and at
    steps 0 and ``config.steps``); ``loss_curve.json`` is rewritten with every
    checkpoint and ``loss_curve.png`` at the end. A run that is already complete is
    just reported.

    Args:
        out_dir: The run folder (created if needed).
        config: The run's settings.
        progress: Show progress on stderr: a tqdm bar on a terminal, otherwise a plain
            line every few seconds (see :class:`jaxsample.progress.Progress`).
        until: Stop after this many steps (a prefix of the same run, checkpointed so
            that it can be continued); defaults to ``config.steps``.

    Returns:
        The losses, the final parameters and their SHA-256.

    Raises:
        CheckpointError: If the folder's checkpoint is damaged or was written with
            different settings, model, vocabulary or corpus.
        ValueError: If ``until`` is negative or the data does not fit the config.

    """
    started = time.perf_counter()
    if until is not None and until < 0:
        raise ValueError(f"until must be >= 0, got {until}")
    stop = config.steps if until is None else min(until, config.steps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp_files(out)
    data = prepare_data(config)
    model_config = config.model_config(data.tokenizer.vocab_size)
    tx = make_optimizer(config)
    pad_id = data.tokenizer.pad_id

    ckpts = run_checkpoints(out, read_only=False)
    try:
        resumed_from = ckpts.latest_step()
        if resumed_from is None:
            params, opt_state, rng_key = make_init(tx, model_config)(jnp.int32(config.seed))
            step = 0
            prior_seconds = 0.0
            step_losses: list[float] = []
            evals: list[EvalPoint] = []
        else:
            state = restore_checkpoint(out, expected=config, expected_model=model_config)
            where = state.directory / "meta"
            if state.meta.get("tokenizer") != data.tokenizer_json:
                raise CheckpointError(
                    f"checkpoint metadata {where}: field 'tokenizer' differs from the "
                    "current vocabulary"
                )
            if state.meta.get("corpus_sha256") != data.corpus_sha256:
                raise CheckpointError(
                    f"checkpoint metadata {where}: field 'corpus_sha256' differs from the "
                    "current corpus"
                )
            assert state.opt_state is not None and state.rng_key is not None
            params, opt_state, rng_key = state.params, state.opt_state, state.rng_key
            step = state.step
            prior = state.meta.get("elapsed_seconds", 0.0)
            prior_seconds = float(prior) if isinstance(prior, int | float) else 0.0
            step_losses = list(state.step_losses)
            evals = list(state.evals)

        step_fn = make_step(tx, model_config, pad_id)
        evaluate = make_evaluator(model_config, pad_id)
        n_train = data.train_inputs.shape[0]

        def record_eval() -> None:
            evals.append(
                EvalPoint(
                    step,
                    evaluate(params, data.eval_sets["train"]),
                    evaluate(params, data.eval_sets["val"]),
                )
            )

        def save() -> None:
            meta = {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "data_position": step,
                "train_config": config.to_dict(),
                "model_config": model_config.to_dict(),
                "tokenizer": data.tokenizer_json,
                "corpus_sha256": data.corpus_sha256,
                "params_sha256": params_sha256(params),
                "losses": {
                    "step": step_losses,
                    "evals": [dataclasses.asdict(e) for e in evals],
                },
                "versions": _versions(),
                # Wall-clock training time so far (informational only).
                "elapsed_seconds": prior_seconds + time.perf_counter() - started,
            }
            ckpts.save(
                step,
                {"params": params, "train_state": {"opt_state": opt_state, "rng_key": rng_key}},
                meta,
            )
            write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=False)

        if step == 0 and not evals:
            record_eval()
        pending: list[jax.Array] = []
        with Progress(
            total=stop, desc=f"train {config.size}", initial=step, enabled=progress
        ) as bar:
            while step < stop:
                idx = batch_indices(n_train, config.batch_size, config.seed, step)
                params, opt_state, rng_key, loss = step_fn(
                    params,
                    opt_state,
                    rng_key,
                    jnp.asarray(data.train_inputs[idx]),
                    jnp.asarray(data.train_targets[idx]),
                )
                step += 1
                pending.append(loss)
                evaluate_now = step % config.eval_every == 0 or step == config.steps
                save_now = step % config.save_every == 0 or step == stop
                if evaluate_now or save_now:
                    step_losses.extend(float(x) for x in jax.device_get(pending))
                    pending.clear()
                shown: dict[str, str] = {}
                if evaluate_now:
                    record_eval()
                    shown = {
                        "train": f"{evals[-1].train_loss:.3f}",
                        "val": f"{evals[-1].val_loss:.3f}",
                    }
                if save_now:
                    save()
                bar.update(1, **shown)
        if resumed_from is not None and resumed_from >= stop:
            write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=False)
    finally:
        ckpts.close()
    write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=True)
    last = evals[-1]
    return TrainResult(
        out_dir=out,
        step=step,
        train_loss=last.train_loss,
        val_loss=last.val_loss,
        params_sha256=params_sha256(params),
        params=params,
        train_config=config,
        model_config=model_config,
        step_losses=tuple(step_losses),
        evals=tuple(evals),
        resumed_from=resumed_from,
        seconds=time.perf_counter() - started,
    )
