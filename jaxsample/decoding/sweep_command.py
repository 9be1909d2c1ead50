"""The ``jaxsample sweep`` sub-command: a temperature x seeds x prompts sweep on every device.

One process uses every device it sees (``--cpu-devices N`` simulates ``N`` CPU
devices). Several processes, one per host or per group of devices, join through
JAX's coordinator when each is started with the same ``--coordinator HOST:PORT
--num-processes N`` and its own ``--process-id I``; the sweep then spans the
devices of all of them, and process 0 writes the output. Two processes of four
devices give the result of one process of eight, bit for bit.

Output (in ``--out``): ``sweep.json`` (settings, layout, a summary per temperature
and per prompt, every completion's text, the SHA-256 of the result arrays) and
``sweep.png`` (diversity, entropy and surprisal against the temperature).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxsample.analysis import coherence, distinct_fraction, distinct_n
from jaxsample.cli import add_command
from jaxsample.decoding.sweep import SweepGrid, run_sweep, sweep_mesh
from jaxsample.progress import Progress, note

__all__ = ["register", "summarise"]

_SUMMARY = "temperature x seeds x prompts sweep of the Mini-GPT on every device"
_DESCRIPTION = (
    "Draw one completion per temperature, seed and prompt with the Mini-GPT (or "
    "--model) and measure, per temperature, how many completions differ, the "
    "entropy of the sampling distribution and the surprisal of the drawn tokens. "
    "Cell (tau, seed s, prompt) is the first completion of 'jaxsample generate "
    "PROMPT --seed s --temperature tau'. The grid is laid out over every device "
    "(a 2-D mesh of temperatures x seeds); to run on several processes, start "
    "each with the same --coordinator and --num-processes and its own "
    "--process-id. Writes sweep.json and sweep.png in --out (process 0)."
)

_DEFAULT_TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)


def register(subparsers: Any) -> None:
    """Add the ``sweep`` sub-command (see :func:`jaxsample.cli.add_command`)."""
    p = add_command(subparsers, "sweep", _run_sweep, _SUMMARY, _DESCRIPTION)
    p.add_argument(
        "--prompts",
        nargs="+",
        default=["Tomorrow she", "the dog"],
        metavar="TEXT",
        help='prompts in the model\'s words (default: "Tomorrow she" "the dog"; "" is <bos>)',
    )
    p.add_argument(
        "--taus",
        nargs="+",
        type=float,
        default=list(_DEFAULT_TAUS),
        metavar="TAU",
        help="temperatures >= 0, 0 is greedy (default: 0 0.25 0.5 0.75 1 1.25 1.5 2)",
    )
    p.add_argument("--seeds", type=int, default=32, help="seeds 0 .. N-1 (default 32)")
    p.add_argument("--max-tokens", type=int, default=12, help="tokens per completion (12)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely; 0 disables")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]; 1 disables")
    p.add_argument("--model", default=None, metavar="DIR", help="model folder (default: shipped)")
    p.add_argument(
        "--out", default=None, metavar="DIR", help="output folder (default: experiments/DATE-sweep)"
    )
    p.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        metavar="N",
        help="simulate N CPU devices in this process (to try a layout without accelerators)",
    )
    group = p.add_argument_group(
        "several processes",
        "start one command per process with the same --coordinator and --num-processes",
    )
    group.add_argument(
        "--coordinator", default=None, metavar="HOST:PORT", help="address of process 0"
    )
    group.add_argument("--num-processes", type=int, default=None, metavar="N")
    group.add_argument("--process-id", type=int, default=None, metavar="I", help="0 .. N-1")


def _start_jax(args: argparse.Namespace) -> bool:
    """Apply ``--cpu-devices`` and join the other processes; True if distributed."""
    if args.cpu_devices is not None:
        if args.cpu_devices < 1:
            raise ValueError(f"--cpu-devices must be >= 1, got {args.cpu_devices}")
        try:
            jax.config.update("jax_num_cpu_devices", args.cpu_devices)  # type: ignore[no-untyped-call]
        except RuntimeError as err:
            raise ValueError(f"--cpu-devices must be set before JAX starts: {err}") from None
    flags = (args.coordinator, args.num_processes, args.process_id)
    if all(f is None for f in flags):
        return False
    if any(f is None for f in flags):
        raise ValueError("--coordinator, --num-processes and --process-id go together")
    if args.num_processes < 1 or not 0 <= args.process_id < args.num_processes:
        raise ValueError(
            f"--process-id must be in [0, --num-processes={args.num_processes}), "
            f"got {args.process_id}"
        )
    host, _, port = str(args.coordinator).rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--coordinator must be HOST:PORT, got {args.coordinator!r}")
    jax.distributed.initialize(
        coordinator_address=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    return True


def _run_sweep(args: argparse.Namespace) -> int:
    distributed = _start_jax(args)
    try:
        return _sweep(args)
    finally:
        if distributed:
            jax.distributed.shutdown()  # type: ignore[no-untyped-call]


def _sweep(args: argparse.Namespace) -> int:
    from jaxsample.decoding.text import _shipped_model
    from jaxsample.model import load_pretrained

    model = _shipped_model() if args.model is None else load_pretrained(args.model)
    tok = model.tokenizer
    prompts = [tok.encode(text, bos=True) for text in args.prompts]
    out = Path(args.out) if args.out is not None else _default_out()
    lead = jax.process_index() == 0
    if lead:
        out.mkdir(parents=True, exist_ok=True)
    mesh = sweep_mesh(len(args.taus))
    layout = {
        "processes": jax.process_count(),
        "devices": jax.device_count(),
        "mesh": {name: int(size) for name, size in mesh.shape.items()},
        "devices_per_process": jax.local_device_count(),
    }
    if not lead:
        note(f"jaxsample sweep: process {jax.process_index()} of {jax.process_count()} joined")
    start = time.perf_counter()
    with Progress(args.seeds, "sweep", unit="seeds", enabled=lead) as bar:
        grid = run_sweep(
            model.params,
            model.config,
            prompts,
            args.taus,
            args.seeds,
            max_new_tokens=args.max_tokens,
            eos_id=tok.eos_id,
            pad_id=tok.pad_id,
            bos_id=tok.bos_id,
            top_k=args.top_k,
            top_p=args.top_p,
            mesh=mesh,
            on_chunk=lambda done: bar.update(done - bar.n),
        )
    seconds = time.perf_counter() - start
    if not lead:
        return 0
    summary = summarise(grid, args.prompts)
    texts = {
        f"{tau:g}": {
            prompt: [
                tok.decode(_completion(grid, t, s, p).tolist()) for s in range(grid.tokens.shape[1])
            ]
            for p, prompt in enumerate(args.prompts)
        }
        for t, tau in enumerate(grid.taus.tolist())
    }
    record = {
        "settings": {
            "prompts": list(args.prompts),
            "taus": [float(t) for t in grid.taus],
            "seeds": args.seeds,
            "max_tokens": args.max_tokens,
            "top_k": args.top_k,
            "top_p": args.top_p,
            "model": args.model or "shipped jaxsample/assets/mini_gpt_small",
            "params_sha256": model.manifest.get("params_sha256"),
        },
        "layout": layout,
        "seconds": round(seconds, 3),
        "sha256": grid.digest(),
        **summary,
        "completions": texts,
    }
    _write_json(out / "sweep.json", record)
    plot(summary, args.prompts, out / "sweep.png")
    _print_table(summary["per_tau"])
    print(
        f"{layout['processes']} process(es), {layout['devices']} devices, mesh "
        f"{layout['mesh']}; {seconds:.1f} s; sha256 {record['sha256'][:16]}; wrote "
        f"{out / 'sweep.json'} and {out / 'sweep.png'}"
    )
    return 0


def _completion(grid: SweepGrid, t: int, s: int, p: int) -> np.ndarray[Any, Any]:
    """The ids of one completion, EOS and padding removed."""
    n = int(grid.lengths[t, s, p]) - int(grid.finished[t, s, p])
    ids: np.ndarray[Any, Any] = grid.tokens[t, s, p, :n]
    return ids


def summarise(grid: SweepGrid, prompts: Sequence[str]) -> dict[str, Any]:
    """What a sweep measured, per temperature and per (temperature, prompt).

    For each cell of seeds: ``distinct`` (share of different completions),
    ``coherence`` (share of the most common one), ``distinct_2`` (distinct
    bigrams over bigrams), ``entropy_bits`` and ``surprisal_bits`` (means over the
    generated tokens, EOS included), ``mean_length`` and ``eos_rate``. The
    per-temperature figures average the prompts.

    Args:
        grid: A sweep's arrays.
        prompts: The ``P`` prompts' texts, for labels.

    Returns:
        ``{"per_tau": [...], "per_prompt": [...]}``, JSON-ready.
    """
    mask = grid.mask()
    per_prompt: list[dict[str, Any]] = []
    for t, tau in enumerate(grid.taus.tolist()):
        for p, prompt in enumerate(prompts):
            done = [tuple(_completion(grid, t, s, p).tolist()) for s in range(grid.tokens.shape[1])]
            m = mask[t, :, p]
            per_prompt.append(
                {
                    "tau": float(tau),
                    "prompt": prompt,
                    "distinct": distinct_fraction(done),
                    "coherence": coherence(done),
                    "distinct_2": distinct_n(done, 2) if any(len(c) > 1 for c in done) else 0.0,
                    "entropy_bits": float(grid.entropy[t, :, p][m].mean()),
                    "surprisal_bits": float(grid.surprisal[t, :, p][m].mean()),
                    "mean_length": float(grid.lengths[t, :, p].mean()),
                    "eos_rate": float(grid.finished[t, :, p].mean()),
                }
            )
    fields = [k for k in per_prompt[0] if k not in ("tau", "prompt")]
    per_tau = []
    for tau in grid.taus.tolist():
        rows = [r for r in per_prompt if r["tau"] == float(tau)]
        per_tau.append(
            {"tau": float(tau), **{k: float(np.mean([r[k] for r in rows])) for k in fields}}
        )
    return {"per_tau": per_tau, "per_prompt": per_prompt}


def _print_table(per_tau: list[dict[str, Any]]) -> None:
    names = ("tau", "distinct", "coherence", "entropy", "surprisal", "length")
    units = ("", "", "", "bits/tok", "bits/tok", "tokens")
    widths = (6, 9, 10, 8, 10, 7)
    for labels in (names, units):
        print(" ".join(f"{label:>{w}}" for label, w in zip(labels, widths, strict=True)))
    for r in per_tau:
        print(
            f"{r['tau']:6g} {r['distinct']:9.3f} {r['coherence']:10.3f} "
            f"{r['entropy_bits']:8.3f} {r['surprisal_bits']:10.3f} {r['mean_length']:7.2f}"
        )


def plot(summary: dict[str, Any], prompts: Sequence[str], path: Path) -> Path:
    """Diversity, entropy and surprisal against temperature: one line per prompt, the mean bold.

    Args:
        summary: The result of :func:`summarise`.
        prompts: The prompts' texts (legend).
        path: The PNG to write.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("distinct", "distinct completions / seeds"),
        ("entropy_bits", "entropy of the draw (bits/token)"),
        ("surprisal_bits", "surprisal under the model (bits/token)"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    taus = [r["tau"] for r in summary["per_tau"]]
    for ax, (field, label) in zip(axes, panels, strict=True):
        for prompt in prompts:
            rows = [r for r in summary["per_prompt"] if r["prompt"] == prompt]
            ax.plot(taus, [r[field] for r in rows], alpha=0.45, marker=".", label=repr(prompt))
        ax.plot(taus, [r[field] for r in summary["per_tau"]], color="black", lw=2, label="mean")
        ax.set_xlabel("temperature tau")
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _default_out() -> Path:
    """``experiments/<YYYY-MM-DD>-sweep/`` under the current folder."""
    return Path.cwd() / "experiments" / f"{datetime.date.today().isoformat()}-sweep"


def _write_json(path: Path, data: Any) -> None:
    """Write JSON to a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
