"""The ``jaxsample train`` and ``jaxsample info`` sub-commands."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from jaxsample.cli import add_command
from jaxsample.model import (
    PRESET_NAMES,
    SHIPPED_MODEL_DIR,
    count_params,
    load_pretrained,
    params_sha256,
)
from jaxsample.training import TrainConfig, train

__all__ = ["register"]

_TRAIN_SUMMARY = "train the Mini-GPT (resumes if --out holds a checkpoint)"
_TRAIN_DESCRIPTION = (
    "Train the Mini-GPT on the synthetic corpus. If --out already holds a "
    "checkpoint, training resumes from the latest one and ends bit-identical to "
    "an uninterrupted run. Without options, --size small follows the shipped model's "
    "recipe on the same corpus: on the same machine and JAX version the result is "
    "bitwise identical to any other such run; elsewhere floating-point rounding can "
    "move the losses in the last digits and change the parameter hash."
)
_INFO_SUMMARY = "show a trained model's step, losses, config and parameter hash"
_INFO_DESCRIPTION = (
    "Show step, losses, configuration and parameter SHA-256 of a run folder, an "
    "exported model folder or a local Hugging Face GPT-2 folder (default: the "
    "shipped model)."
)


def _int_parser(low: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts integers ``>= low``."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_parser(1)
_non_negative_int = _int_parser(0)


def register(subparsers: Any) -> None:
    """Add the ``train`` and ``info`` sub-commands (see :func:`jaxsample.cli.add_command`)."""
    p = add_command(subparsers, "train", _run_train, _TRAIN_SUMMARY, _TRAIN_DESCRIPTION)
    p.add_argument("--out", required=True, help="run folder (checkpoints, loss curve)")
    p.add_argument("--size", choices=PRESET_NAMES, default="small", help="model size")
    p.add_argument("--steps", type=_positive_int, help="optimiser steps (default: per size)")
    p.add_argument("--seed", type=_non_negative_int, help="init and data-order seed (default 0)")
    p.add_argument(
        "--warmup-steps",
        type=_non_negative_int,
        help="steps of linear learning-rate warm-up, < --steps (default: 10%% of the steps)",
    )
    p.add_argument("--save-every", type=_positive_int, help="steps between checkpoints")
    p.add_argument("--batch-size", type=_positive_int, help="sentences per step")
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress on stderr (by default a bar on a terminal, a line every few "
        "seconds otherwise)",
    )

    p = add_command(subparsers, "info", _run_info, _INFO_SUMMARY, _INFO_DESCRIPTION)
    p.add_argument("dir", nargs="?", default=None, help="run or model folder")
    p.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="the same as DIR: a run folder, an exported model or a Hugging Face GPT-2 folder",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _run_train(args: argparse.Namespace) -> int:
    steps = args.steps if args.steps is not None else TrainConfig.for_size(args.size).steps
    if args.warmup_steps is not None and args.warmup_steps >= steps:
        raise ValueError(f"--warmup-steps ({args.warmup_steps}) must be < --steps ({steps})")
    config = TrainConfig.for_size(
        args.size,
        steps=args.steps,
        warmup_steps=args.warmup_steps,
        seed=args.seed,
        save_every=args.save_every,
        batch_size=args.batch_size,
    )
    result = train(args.out, config, progress=not args.no_progress)
    if result.resumed_from is not None:
        print(f"resumed from step {result.resumed_from}", file=sys.stderr)
    print(result.summary())
    return 0


def _run_info(args: argparse.Namespace) -> int:
    if args.dir is not None and args.model is not None and args.dir != args.model:
        raise ValueError(f"two folders given: DIR {args.dir} and --model {args.model}")
    folder = args.model if args.model is not None else args.dir
    model = load_pretrained(folder)
    m = model.manifest
    info: dict[str, Any] = {
        "source": str(SHIPPED_MODEL_DIR if folder is None else folder),
        "format": m.get("format"),
        "step": m.get("step"),
        "train_loss": m.get("final_train_loss"),
        "val_loss": m.get("final_val_loss"),
        "params_sha256": params_sha256(model.params),
        "param_count": count_params(model.params),
        "model_config": model.config.to_dict(),
        "train_config": m.get("train_config"),
    }
    if args.json:
        print(json.dumps(info))
        return 0
    lines = [
        f"source        {info['source']}",
        f"format        {info['format']}",
        f"step          {'n/a' if info['step'] is None else info['step']}",
        f"train loss    {_fmt(info['train_loss'])}",
        f"val loss      {_fmt(info['val_loss'])}",
        f"parameters    {info['param_count']:,}",
        f"params sha256 {info['params_sha256']}",
        "model config  " + ", ".join(f"{k}={v}" for k, v in info["model_config"].items()),
    ]
    if isinstance(info["train_config"], dict):
        lines.append(
            "train config  " + ", ".join(f"{k}={v}" for k, v in info["train_config"].items())
        )
    print("\n".join(lines))
    return 0


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"
