"""Training the Mini-GPT on the synthetic corpus, with exact, kill-safe resume.

The optimiser is AdamW (Loshchilov & Hutter, 2019, "Decoupled Weight Decay
Regularization") after global-norm gradient clipping, with a linear warm-up followed
by cosine decay of the learning rate. Weight decay applies to matrices and embeddings
only (``ndim >= 2``), not to biases or LayerNorm parameters.

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
import functools
import io
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsample.data import Tokenizer, build_tokenizer, encode_sentences, generate_corpus
from jaxsample.model import PRESET_NAMES, GPTConfig, Params, init_params, loss_fn
from jaxsample.progress import Progress
from jaxsample.training.checkpoint import CheckpointDir, CheckpointError, params_sha256

__all__ = [
    "CHECKPOINT_FORMAT",
    "EvalPoint",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "batch_indices",
    "make_optimizer",
    "restore_checkpoint",
    "train",
]

CHECKPOINT_FORMAT = "jaxsample-train/1"
"""Value of ``meta["format"]`` in every training checkpoint."""

_ITEMS = ("params", "train_state")
_CHECKPOINT_SUBDIR = "checkpoints"
_EVAL_BATCH = 256
_KEEP_CHECKPOINTS = 3

# Fields of TrainConfig that may differ between a checkpoint and the run resuming it:
# they change when files are written, never the computed values.
_RESUME_FREE_FIELDS = frozenset({"save_every"})


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------


def _shown(value: object) -> str:
    """A value as a person wrote it: ``0.0``, not ``np.float64(0.0)``; other objects by repr."""
    return str(value) if isinstance(value, numbers.Number) else repr(value)


_SIZE_DEFAULTS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU: used by the tests.
    "tiny": {
        "steps": 300,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "warmup_steps": 30,
        "save_every": 100,
        "eval_every": 50,
        "eval_size": 256,
    },
    # The shipped model (jaxsample/assets/mini_gpt_small): these must stay equal to the
    # settings recorded in its manifest.json.
    "small": {
        "steps": 1000,
        "batch_size": 64,
        "learning_rate": 2e-3,
        "warmup_steps": 100,
        "save_every": 200,
        "eval_every": 100,
        "eval_size": 512,
    },
    "large": {
        "steps": 1500,
        "batch_size": 64,
        "learning_rate": 1e-3,
        "warmup_steps": 150,
        "save_every": 250,
        "eval_every": 100,
        "eval_size": 512,
    },
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (and hence its final parameters).

    Use :meth:`for_size` to get the defaults of a model size; the plain constructor's
    defaults are those of ``"small"``, the shipped model.

    Attributes:
        size: Model preset name (one of ``jaxsample.model.PRESET_NAMES``).
        steps: Number of optimiser steps; also the length of the LR schedule.
        batch_size: Sentences per step.
        learning_rate: Peak learning rate, reached after the warm-up.
        warmup_steps: Steps of linear warm-up from 0; must be ``< steps``.
        final_lr_fraction: Learning rate at the last step, as a fraction of the peak
            (end of the cosine decay).
        weight_decay: Decoupled weight-decay coefficient of AdamW (Loshchilov &
            Hutter, 2019), applied to parameters with ``ndim >= 2``.
        adam_b1: AdamW first-moment decay.
        adam_b2: AdamW second-moment decay.
        grad_clip_norm: Maximum global L2 norm of the gradient.
        seed: Seeds the parameter initialisation and the per-epoch data order.
        corpus_seed: Seed of ``jaxsample.data.generate_corpus``.
        save_every: Steps between checkpoints (the last step is always saved).
        eval_every: Steps between train/validation evaluations (step 0 and the last
            step are always evaluated).
        eval_size: Number of sentences (the first ones) of the validation set, and of
            the training set, used for each evaluation.
        n_ctx: Context length of the model.

    Raises:
        ValueError: If a field has the wrong type or is out of range; the message
            names the field.

    """

    size: str = "small"
    steps: int = _SIZE_DEFAULTS["small"]["steps"]
    batch_size: int = _SIZE_DEFAULTS["small"]["batch_size"]
    learning_rate: float = _SIZE_DEFAULTS["small"]["learning_rate"]
    warmup_steps: int = _SIZE_DEFAULTS["small"]["warmup_steps"]
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.1
    adam_b1: float = 0.9
    adam_b2: float = 0.98
    grad_clip_norm: float = 1.0
    seed: int = 0
    corpus_seed: int = 0
    save_every: int = _SIZE_DEFAULTS["small"]["save_every"]
    eval_every: int = _SIZE_DEFAULTS["small"]["eval_every"]
    eval_size: int = _SIZE_DEFAULTS["small"]["eval_size"]
    n_ctx: int = 32

    def __post_init__(self) -> None:
        if self.size not in PRESET_NAMES:
            raise ValueError(
                f"TrainConfig.size must be one of {', '.join(PRESET_NAMES)}, got {self.size!r}"
            )
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                low = 0 if field.name in ("warmup_steps", "seed", "corpus_seed") else 1
                if isinstance(value, bool) or not isinstance(value, int) or value < low:
                    raise ValueError(
                        f"TrainConfig.{field.name} must be an int >= {low}, got {_shown(value)}"
                    )
            elif field.type == "float" and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(
                    f"TrainConfig.{field.name} must be a finite float >= 0, got {_shown(value)}"
                )
        if self.warmup_steps >= self.steps:
            raise ValueError(
                f"TrainConfig.warmup_steps ({self.warmup_steps}) must be < steps ({self.steps})"
            )
        if self.learning_rate <= 0 or self.grad_clip_norm <= 0:
            raise ValueError("TrainConfig.learning_rate and grad_clip_norm must be > 0")
        for name in ("adam_b1", "adam_b2"):
            if getattr(self, name) >= 1.0:
                raise ValueError(f"TrainConfig.{name} must be < 1, got {getattr(self, name)}")
        if self.final_lr_fraction > 1.0:
            raise ValueError(
                f"TrainConfig.final_lr_fraction must be <= 1, got {self.final_lr_fraction}"
            )

    @classmethod
    def for_size(cls, size: str, **overrides: Any) -> TrainConfig:
        """Default settings of a model size, with optional overrides.

        Args:
            size: One of ``"tiny"``, ``"small"`` (the shipped model) or ``"large"``.
            **overrides: Field values replacing the defaults; ``None`` values are
                ignored (convenient for optional command-line flags). When ``steps``
                is given and ``warmup_steps`` is not, the warm-up is the size's
                default share of the steps (10 %, rounded down).

        Returns:
            The configuration.

        Raises:
            ValueError: If ``size`` or a field name is unknown or a value is invalid.

        """
        if size not in _SIZE_DEFAULTS:
            raise ValueError(
                f"unknown model size {size!r}; valid sizes: {', '.join(_SIZE_DEFAULTS)}"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {', '.join(unknown)}")
        values: dict[str, Any] = {**_SIZE_DEFAULTS[size], "size": size}
        values.update({k: v for k, v in overrides.items() if v is not None})
        steps = overrides.get("steps")
        if (
            isinstance(steps, int)
            and not isinstance(steps, bool)
            and overrides.get("warmup_steps") is None
        ):
            # The warm-up keeps the size's share of the run (10 %), so that a short run
            # (``steps=5``) is valid without naming a warm-up.
            d = _SIZE_DEFAULTS[size]
            values["warmup_steps"] = d["warmup_steps"] * steps // d["steps"]
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-serialisable ``dict``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`.

        Args:
            d: Mapping with exactly the field names as keys.

        Returns:
            The configuration.

        Raises:
            ValueError: If keys are missing or unknown (named in the message) or a
                value is invalid.

        """
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [k for k in names if k not in d]
        unknown = sorted(str(k) for k in d if k not in names)
        if missing or unknown:
            raise ValueError(f"TrainConfig: missing keys {missing}, unknown keys {unknown}")
        return cls(**{k: d[k] for k in names})

    def model_config(self, vocab_size: int) -> GPTConfig:
        """Return the run's model configuration for a ``vocab_size``-word vocabulary."""
        return GPTConfig.preset(self.size, vocab_size=vocab_size, n_ctx=self.n_ctx)


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """Build the optimiser: global-norm clipping, then AdamW with warm-up and cosine decay.

    ``optax.chain(clip_by_global_norm(grad_clip_norm), adamw(schedule, ...))`` where the
    schedule rises linearly from 0 to ``learning_rate`` over ``warmup_steps`` and then
    follows a cosine down to ``learning_rate * final_lr_fraction`` at ``steps``. AdamW
    decouples the weight decay from the adaptive gradient step (Loshchilov & Hutter,
    2019); here it is masked to parameters with ``ndim >= 2``.

    Args:
        config: Training configuration.

    Returns:
        The optax transformation (its state counts the steps taken).

    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=config.steps,
        end_value=config.learning_rate * config.final_lr_fraction,
    )
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(
            schedule,
            b1=config.adam_b1,
            b2=config.adam_b2,
            weight_decay=config.weight_decay,
            mask=lambda params: jax.tree.map(lambda x: x.ndim >= 2, params),
        ),
    )


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray[Any, Any]:
    """Row indices of the training batch used at a step.

    Epoch ``e = step // (n // batch_size)`` uses the permutation
    ``np.random.default_rng([seed, e]).permutation(n)``, cut into consecutive batches.

    Args:
        n: Number of training sentences.
        batch_size: Rows per batch; must satisfy ``1 <= batch_size <= n``.
        seed: Data-order seed.
        step: Zero-based step number.

    Returns:
        int64 array of shape ``(batch_size,)`` with distinct indices in ``[0, n)``.

    Raises:
        ValueError: If ``batch_size`` is not in ``[1, n]`` or ``step < 0``.

    """
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be in [1, {n}] (the training set size), got {batch_size}"
        )
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    per_epoch = n // batch_size
    epoch, index = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return perm[index * batch_size : (index + 1) * batch_size].copy()


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng([seed, epoch]).permutation(n)


# ---------------------------------------------------------------------------------------
# Results and state
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Data:
    tokenizer: Tokenizer
    tokenizer_json: Any
    corpus_sha256: str
    train_inputs: np.ndarray[Any, Any]
    train_targets: np.ndarray[Any, Any]
    eval_sets: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]


def _tokenizer_json(tokenizer: Tokenizer) -> Any:
    raw = tokenizer.to_json()
    return json.loads(raw) if isinstance(raw, str) else raw


def _tokenizer_from_json(obj: Any) -> Tokenizer:
    return Tokenizer.from_json(json.dumps(obj) if not isinstance(obj, str) else obj)


def _split(
    seqs: np.ndarray[Any, Any], width: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    seqs = np.asarray(seqs, dtype=np.int32)[:, :width]
    return seqs[:, :-1], seqs[:, 1:]


def _prepare_data(config: TrainConfig) -> _Data:
    corpus = generate_corpus(seed=config.corpus_seed)
    tokenizer = build_tokenizer()
    train_seqs = np.asarray(encode_sentences(corpus.train, tokenizer, config.n_ctx))
    eval_train = train_seqs[: config.eval_size]
    eval_val = np.asarray(encode_sentences(corpus.val[: config.eval_size], tokenizer, config.n_ctx))
    if train_seqs.shape[0] < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {train_seqs.shape[0]} training sentences"
        )
    if eval_val.shape[0] == 0:
        raise ValueError("the corpus has no validation sentences")
    # Drop the columns that are padding in every sequence: batches keep a fixed width,
    # and the model never sees positions the data cannot reach.
    pad = tokenizer.pad_id
    width = 2
    for seqs in (train_seqs, eval_val):
        real = np.nonzero(np.any(seqs != pad, axis=0))[0]
        if real.size:
            width = max(width, int(real[-1]) + 1)
    train_inputs, train_targets = _split(train_seqs, width)
    return _Data(
        tokenizer=tokenizer,
        tokenizer_json=_tokenizer_json(tokenizer),
        corpus_sha256=str(corpus.sha256),
        train_inputs=train_inputs,
        train_targets=train_targets,
        eval_sets={"train": _split(eval_train, width), "val": _split(eval_val, width)},
    )


# ---------------------------------------------------------------------------------------
# Compiled steps
# ---------------------------------------------------------------------------------------

_StepFn = Callable[
    [Params, optax.OptState, jax.Array, jax.Array, jax.Array],
    tuple[Params, optax.OptState, jax.Array, jax.Array],
]


def _make_step(tx: optax.GradientTransformation, model_config: GPTConfig, pad_id: int) -> _StepFn:
    def step(
        params: Params,
        opt_state: optax.OptState,
        rng_key: jax.Array,
        inputs: jax.Array,
        targets: jax.Array,
    ) -> tuple[Params, optax.OptState, jax.Array, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(
            params, inputs, targets, model_config, pad_id=pad_id
        )
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # The model has no stochastic layers; the key is still advanced once per step
        # so that the stream it defines is part of the exactly-resumable state.
        rng_key = jax.random.key_data(jax.random.split(jax.random.wrap_key_data(rng_key))[0])
        return params, opt_state, rng_key, loss

    return jax.jit(step)


def _make_init(
    tx: optax.GradientTransformation, model_config: GPTConfig
) -> Callable[[jax.Array], tuple[Params, optax.OptState, jax.Array]]:
    def init(seed: jax.Array) -> tuple[Params, optax.OptState, jax.Array]:
        init_key, run_key = jax.random.split(jax.random.key(seed))
        params = init_params(init_key, model_config)
        return params, tx.init(params), jax.random.key_data(run_key)

    return jax.jit(init)


def _make_evaluator(
    model_config: GPTConfig, pad_id: int
) -> Callable[[Params, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]], float]:
    @jax.jit
    def batch_sum(
        params: Params, inputs: jax.Array, targets: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        count = jnp.sum(targets != pad_id).astype(jnp.float32)
        return loss_fn(params, inputs, targets, model_config, pad_id=pad_id) * count, count

    def evaluate(params: Params, data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]) -> float:
        inputs, targets = data
        n = inputs.shape[0]
        rows = min(_EVAL_BATCH, n)
        total = 0.0
        count = 0.0
        for start in range(0, n, rows):
            x, y = inputs[start : start + rows], targets[start : start + rows]
            if x.shape[0] < rows:  # pad with all-pad rows: they add nothing
                fill = rows - x.shape[0]
                x = np.concatenate([x, np.full((fill, x.shape[1]), pad_id, x.dtype)])
                y = np.concatenate([y, np.full((fill, y.shape[1]), pad_id, y.dtype)])
            s, c = batch_sum(params, jnp.asarray(x), jnp.asarray(y))
            total += float(s)
            count += float(c)
        return total / max(count, 1.0)

    return evaluate


# ---------------------------------------------------------------------------------------
# Checkpoint metadata
# ---------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name in ("jax", "jaxlib", "optax", "orbax-checkpoint", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # pragma: no cover - only for odd installs
            out[name] = "unknown"
    return out


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


def _abstract_params(model_config: GPTConfig) -> Params:
    return jax.eval_shape(  # type: ignore[no-any-return]
        functools.partial(init_params, config=model_config), jax.random.key(0)
    )


def _abstract_train_state(tx: optax.GradientTransformation, params: Params) -> dict[str, Any]:
    key = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0)))
    return {"opt_state": jax.eval_shape(tx.init, params), "rng_key": key}


def _run_checkpoints(run_dir: Path, *, read_only: bool) -> CheckpointDir:
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
    with _run_checkpoints(run, read_only=True) as ckpts:
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
            _compare("train_config", train_dict, expected.to_dict(), where, _RESUME_FREE_FIELDS)
        if expected_model is not None:
            _compare("model_config", model_dict, expected_model.to_dict(), where, frozenset())
        try:
            train_config = TrainConfig.from_dict(train_dict)
        except ValueError as err:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'train_config': {err}"
            ) from err
        try:
            model_config = GPTConfig.from_dict(model_dict)
        except ValueError as err:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'model_config': {err}"
            ) from err
        try:
            tokenizer = _tokenizer_from_json(_field(meta, "tokenizer", (dict, str), where))
        except CheckpointError:
            raise
        except Exception as err:
            raise CheckpointError(f"checkpoint metadata {where}: field 'tokenizer': {err}") from err
        if tokenizer.vocab_size != model_config.vocab_size:
            raise CheckpointError(
                f"checkpoint metadata {where}: field 'tokenizer' has {tokenizer.vocab_size} "
                f"words but model_config.vocab_size is {model_config.vocab_size}"
            )
        if model_config.n_ctx != train_config.n_ctx:
            raise CheckpointError(
                f"checkpoint metadata {where}: model_config.n_ctx ({model_config.n_ctx}) "
                f"differs from train_config.n_ctx ({train_config.n_ctx})"
            )
        step_losses, evals = _parse_losses(meta, where, step)
        params_target = _abstract_params(model_config)
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


# ---------------------------------------------------------------------------------------
# Loss curve
# ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _remove_stale_tmp_files(out: Path) -> None:
    for name in ("loss_curve.json", "loss_curve.png"):
        for stale in out.glob(f"{name}.tmp-*"):
            stale.unlink(missing_ok=True)


def _write_loss_curve(
    out: Path,
    config: TrainConfig,
    step_losses: tuple[float, ...],
    evals: tuple[EvalPoint, ...],
    *,
    plot: bool,
) -> None:
    record = {
        "train_config": config.to_dict(),
        "step": len(step_losses),
        "step_losses": list(step_losses),
        "evals": [dataclasses.asdict(e) for e in evals],
    }
    _atomic_write(out / "loss_curve.json", (json.dumps(record, indent=1) + "\n").encode())
    if not plot:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if step_losses:
        ax.plot(
            np.arange(1, len(step_losses) + 1),
            step_losses,
            color="tab:blue",
            alpha=0.3,
            linewidth=0.8,
            label="train (per-step batch)",
        )
    if evals:
        steps = [e.step for e in evals]
        ax.plot(
            steps,
            [e.train_loss for e in evals],
            "o-",
            color="tab:blue",
            markersize=3,
            label=f"train (first {config.eval_size} sentences)",
        )
        ax.plot(
            steps,
            [e.val_loss for e in evals],
            "s-",
            color="tab:orange",
            markersize=3,
            label=f"validation (first {config.eval_size} sentences)",
        )
    ax.set_title(f"Mini-GPT ({config.size}) training: {len(step_losses)}/{config.steps} steps")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    _atomic_write(out / "loss_curve.png", buf.getvalue())


# ---------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------


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
    _remove_stale_tmp_files(out)
    data = _prepare_data(config)
    model_config = config.model_config(data.tokenizer.vocab_size)
    tx = make_optimizer(config)
    pad_id = data.tokenizer.pad_id

    ckpts = _run_checkpoints(out, read_only=False)
    try:
        resumed_from = ckpts.latest_step()
        if resumed_from is None:
            params, opt_state, rng_key = _make_init(tx, model_config)(jnp.int32(config.seed))
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

        step_fn = _make_step(tx, model_config, pad_id)
        evaluate = _make_evaluator(model_config, pad_id)
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
            _write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=False)

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
            _write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=False)
    finally:
        ckpts.close()
    _write_loss_curve(out, config, tuple(step_losses), tuple(evals), plot=True)
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
