"""A training run's settings: :class:`TrainConfig` and the defaults of each model size."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from jaxsample._checks import dataclass_from_dict
from jaxsample.model import PRESET_NAMES, GPTConfig

__all__ = ["TrainConfig"]


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
        return dataclass_from_dict(cls, d)

    def model_config(self, vocab_size: int) -> GPTConfig:
        """Return the run's model configuration for a ``vocab_size``-word vocabulary."""
        return GPTConfig.preset(self.size, vocab_size=vocab_size, n_ctx=self.n_ctx)
