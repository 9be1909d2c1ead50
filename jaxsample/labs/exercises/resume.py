"""Exercise 5.4: continued pretraining resumes bit-identically.

A tiny model trained for N steps, resumed from its checkpoint (parameters *and*
optimiser state) for one more epoch, ends bit-identical to an uninterrupted run of
the same length.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsample.data import (
    generate_corpus,
)
from jaxsample.labs._plotting import new_figure, save_figure
from jaxsample.labs._report import LabReport, print_table
from jaxsample.training import TrainConfig, restore_checkpoint, train

# 5.4
STEPS_N = 100
STEPS_N_QUICK, STEPS_M_QUICK = 20, 10


def exercise(report: LabReport, work: Path, quick: bool) -> tuple[dict[str, Any], Path]:
    """Run exercise 5.4 in ``work``; return its data and the tiny run folder (used by 5.6)."""
    tiny = TrainConfig.for_size("tiny")
    per_epoch = len(generate_corpus(seed=tiny.corpus_seed).train) // tiny.batch_size
    # One more epoch after the checkpoint (a few steps only in quick mode).
    n_steps, m_steps = (STEPS_N_QUICK, STEPS_M_QUICK) if quick else (STEPS_N, per_epoch)
    overrides: dict[str, Any] = {"steps": n_steps + m_steps}
    if quick:
        overrides.update(warmup_steps=3, eval_every=10)
    config = TrainConfig.for_size("tiny", **overrides)
    t0 = time.perf_counter()
    first = train(work / "resumed", config, progress=False, until=n_steps)
    state = restore_checkpoint(work / "resumed", step=n_steps, expected=config)
    opt_steps = sorted(
        {
            int(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
            if getattr(path[-1], "name", None) == "count"
        }
    )
    resumed = train(work / "resumed", config, progress=False)
    t_resumed = time.perf_counter() - t0
    t0 = time.perf_counter()
    straight = train(work / "straight", config, progress=False)
    t_straight = time.perf_counter() - t0
    same_hash = resumed.params_sha256 == straight.params_sha256
    same_losses = resumed.step_losses == straight.step_losses

    print("\n=== 5.4  Continued pretraining (tiny preset)")
    print_table(
        "Interrupted and resumed vs uninterrupted",
        ["run", "steps", "resumed from", "final train loss", "final val loss", "params sha256"],
        [
            [
                "first part",
                first.step,
                "-",
                first.train_loss,
                first.val_loss,
                first.params_sha256[:16],
            ],
            [
                "resumed",
                resumed.step,
                str(resumed.resumed_from),
                resumed.train_loss,
                resumed.val_loss,
                resumed.params_sha256[:16],
            ],
            [
                "uninterrupted",
                straight.step,
                "-",
                straight.train_loss,
                straight.val_loss,
                straight.params_sha256[:16],
            ],
        ],
    )
    print(
        f"  The checkpoint at step {n_steps} holds the parameters, the AdamW moments and step\n"
        f"  counters (count = {opt_steps}), the PRNG key and the data position; resuming replays\n"
        f"  the same batches. The resumed run continues for M = {m_steps} steps"
        + (
            " (one epoch of the tiny preset)."
            if m_steps == per_epoch
            else f" (quick mode; one epoch is {per_epoch} steps)."
        )
    )
    report.check(
        f"5.4 resuming at step {n_steps} for {m_steps} steps equals an uninterrupted "
        f"{n_steps + m_steps}-step run",
        f"sha256 {resumed.params_sha256[:16]}... vs {straight.params_sha256[:16]}...; "
        f"per-step losses {'identical' if same_losses else 'differ'}",
        "equal hashes and identical losses",
        same_hash and same_losses and resumed.resumed_from == n_steps,
    )
    report.check(
        "5.4 the checkpoint carries the optimiser state",
        f"AdamW step counters {opt_steps}",
        f"[{n_steps}]",
        opt_steps == [n_steps],
    )
    fig, ax = new_figure(7.5, 4.4)
    steps = np.arange(1, len(straight.step_losses) + 1)
    ax.plot(steps, straight.step_losses, "-", lw=2.5, alpha=0.5, label="uninterrupted")
    ax.plot(steps, resumed.step_losses, "k--", lw=1, label=f"stopped at {n_steps}, then resumed")
    ax.axvline(n_steps, color="tab:red", ls=":", label=f"checkpoint (step {n_steps})")
    ax.set(
        xlabel="optimiser step",
        ylabel="training batch loss (nats / token)",
        title="5.4: resumed training follows the uninterrupted run exactly",
    )
    ax.legend()
    save_figure(fig, report.path("ex5_4_resume.png"))
    return (
        {
            "train_config": config.to_dict(),
            "n_steps": n_steps,
            "m_steps": m_steps,
            "steps_per_epoch": per_epoch,
            "params_sha256_resumed": resumed.params_sha256,
            "params_sha256_uninterrupted": straight.params_sha256,
            "step_losses_identical": same_losses,
            "optimizer_counts_at_checkpoint": opt_steps,
            "seconds": {"first_part_and_resume": t_resumed, "uninterrupted": t_straight},
        },
        work / "straight",
    )
