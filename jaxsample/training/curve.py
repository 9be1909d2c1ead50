"""A run's loss curve: ``loss_curve.json`` with every logged loss, and its plot."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path

import numpy as np

from jaxsample.training.config import TrainConfig
from jaxsample.training.restore import EvalPoint

__all__ = ["remove_stale_tmp_files", "write_loss_curve"]


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def remove_stale_tmp_files(out: Path) -> None:
    """Delete temporary loss-curve files that a killed process left in ``out``."""
    for name in ("loss_curve.json", "loss_curve.png"):
        for stale in out.glob(f"{name}.tmp-*"):
            stale.unlink(missing_ok=True)


def write_loss_curve(
    out: Path,
    config: TrainConfig,
    step_losses: tuple[float, ...],
    evals: tuple[EvalPoint, ...],
    *,
    plot: bool,
) -> None:
    """Write ``loss_curve.json`` (and with ``plot``, ``loss_curve.png``) atomically.

    Args:
        out: The run folder.
        config: The run's settings (for the title and the evaluation size).
        step_losses: Training-batch loss of every step so far.
        evals: Evaluations so far.
        plot: Also draw the train and validation curves.

    """
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
        for losses, style, color, name in (
            ([e.train_loss for e in evals], "o-", "tab:blue", "train"),
            ([e.val_loss for e in evals], "s-", "tab:orange", "validation"),
        ):
            ax.plot(
                steps,
                losses,
                style,
                color=color,
                markersize=3,
                label=f"{name} (first {config.eval_size} sentences)",
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
