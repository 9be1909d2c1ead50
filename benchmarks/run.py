"""Command line of the benchmarks: ``python -m benchmarks [--smoke] [--out DIR]``."""

from __future__ import annotations

import argparse
import datetime
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from benchmarks import checks, decode, machine, report, suites
from benchmarks.logits import LOGIT_NOTE
from benchmarks.peers import hf_available
from benchmarks.timing import Budget

FULL_SHAPES = [(b, v) for v in (50257, 128256) for b in (1, 32, 256)]
GPU_TARGET_SHAPE = (128, 131072)
SMOKE_VOCAB = 200
SMOKE_SHAPES = [(4, SMOKE_VOCAB)]
#: Where the CPU targets are read (report.targets), the extra logit families are timed
#: and, in full runs, the first compiles.
CPU_TARGET_SHAPE = (32, 50257)
#: Largest B * V at which a full CPU run adds the wide-nucleus top-p cases.
CHEAP_CELLS = 32 * 128256
#: Windows in which a full run times the sampler table (suites.sampler_suite): on a
#: shared 2-core host, top-p on the Gaussian logits at tau 0.8 gave 7.7x and 12.8x the
#: floor in two runs of the same program, from slowdowns of a few seconds that reach the
#: draw and not the floor; three windows minutes apart outvote one of them.
SAMPLER_WINDOWS = 3


def run(
    smoke: bool,
    out: Path | None,
    log: Any = print,
    shapes: Sequence[tuple[int, int]] | None = None,
    samplers_only: bool = False,
) -> dict[str, Any]:
    """Run the suite and write it to ``out`` (when given); return the results.

    Args:
        smoke: tiny sizes plus the correctness checks of :mod:`benchmarks.checks`.
        out: output folder, or ``None`` to write nothing.
        log: progress printer.
        shapes: ``[(B, V), ...]`` for the sampler table instead of the default ones.
        samplers_only: run the sampler table and the first compiles only (no sweep,
            seeds or decode).
    """
    start = time.perf_counter()
    now = datetime.datetime.now(datetime.UTC)
    hf_note = hf_available()
    results: dict[str, Any] = {
        "mode": "smoke" if smoke else "full",
        "date": now.isoformat(timespec="seconds"),
        "machine": machine.describe(),
        "logits": LOGIT_NOTE,
        "hf_peer": "included" if hf_note is None else f"skipped: {hf_note}",
    }
    on_accel = jax.default_backend() != "cpu"
    if smoke:
        fast = Budget(seconds=0.0, min_reps=2, max_reps=2, n_buffers=2)
        slow = fast
        shapes = shapes or SMOKE_SHAPES
    else:
        fast = Budget(seconds=1.0, min_reps=5, max_reps=50, n_buffers=4)
        # Slow peers (seconds per call at the largest shapes): one timed call after the
        # warm-up is allowed, to keep the full run near ten minutes on a 2-core CPU.
        slow = Budget(seconds=1.5, min_reps=1, max_reps=15, n_buffers=4)
        # The GPU target's shape joins the table on an accelerator.
        shapes = shapes or ([*FULL_SHAPES, GPU_TARGET_SHAPE] if on_accel else FULL_SHAPES)
    results["repetitions"] = {
        "jaxsample_and_floor": vars(fast),
        "peers (numpy, naive_jax, hf)": vars(slow),
        "rule": "reps = clamp(seconds / (time of the first timed call), min_reps, max_reps), "
        "after one warm-up call; the count used is in each record; the sampler table is "
        "timed in windows, each with its share of the seconds and repetitions",
    }
    phases: dict[str, float] = {}
    results["phase_s"] = phases

    def phase(name: str) -> None:
        phases[name] = time.perf_counter()
        log(f"{name} ...")

    if smoke:
        phase("checks")
        recs = checks.check_samplers(SMOKE_VOCAB, with_hf=hf_note is None, draws=16384)
        results["checks"] = {"records": recs, "failures": checks.failures(recs)}
    phase("samplers")
    # Device time on an accelerator; in smoke mode on one sampler, to exercise the code.
    # Cases (suites.sampler_cases): in smoke mode every case on the smoke shape; in a
    # full run the wide-nucleus top-p cases where the peers stay cheap (up to [32, 128256]
    # on a CPU, where naive JAX takes about 1.5 s per call; every shape on an
    # accelerator), the extra logit families at the CPU and GPU target shapes.
    results["samplers"] = suites.sampler_suite(
        shapes,
        fast,
        slow,
        device_time="all" if on_accel else ("greedy" if smoke else None),
        wide_up_to=math.inf if smoke or on_accel else CHEAP_CELLS,
        extra_at=shapes if smoke else [CPU_TARGET_SHAPE, GPU_TARGET_SHAPE],
        log=log,
        cache_bytes=0 if smoke else None,  # smoke: the budget's buffers only
        # The table timed in windows minutes apart (smoke: two, to exercise them).
        windows=2 if smoke else SAMPLER_WINDOWS,
    )
    phase("compile")
    # Smoke: top-p only, at the smoke shape, once; a full run takes the median of 5
    # rounds (a single compile varies by about a tenth from run to run).
    results["compile"] = suites.compile_suite(
        *(shapes[0] if smoke else CPU_TARGET_SHAPE),
        rounds=1 if smoke else 5,
        log=log,
        samplers=("top-p",) if smoke else suites.COMPILED,
    )
    if samplers_only:
        phase("end")
        results["phase_s"] = {
            "samplers": phases["compile"] - phases["samplers"],
            "compile": phases["end"] - phases["compile"],
        }
        results["targets"] = [] if smoke else report.targets(results)
        results["elapsed_s"] = time.perf_counter() - start
        if out is not None:
            report.write(results, out)
        return results
    phase("sweep")
    results["sweep"] = suites.sweep_suite(
        10 if smoke else 1000, SMOKE_VOCAB if smoke else 50257, fast if smoke else slow
    )
    phase("seeds")
    results["seeds"] = suites.seeds_suite(
        10 if smoke else 100, SMOKE_VOCAB if smoke else 50257, fast if smoke else slow
    )
    phase("decode")
    if smoke:  # 33 tokens exceed the shipped context: exercises the timing model
        results["decode"] = decode.decode_suite(2, [33], fast, log)
    else:
        # Recompute costs about n^2 per call (over a minute at 128 tokens on a 2-core
        # CPU): past 64 tokens (the target's length) a method stops where its next call
        # would exceed 30 s, which keeps the phase at a few minutes.
        results["decode"] = decode.decode_suite(
            100,
            [16, 32, 64, 128, 256],
            Budget(seconds=10.0, min_reps=1, max_reps=3, n_buffers=3),
            log,
            max_call_s=30.0,
            always_up_to=64,
        )
    phase("end")
    names = list(phases)
    results["phase_s"] = {a: phases[b] - phases[a] for a, b in itertools.pairwise(names)}
    results["targets"] = [] if smoke else report.targets(results)
    results["elapsed_s"] = time.perf_counter() - start
    if out is not None:
        report.write(results, out)
    return results


def default_out() -> Path:
    """``benchmarks/results/<device>-<date>/``."""
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    return Path(__file__).parent / "results" / f"{machine.device_label()}-{day}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m benchmarks`` with ``argv``; 1 if a correctness check failed, else 0."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny sizes, correctness checks only (seconds)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: benchmarks/results/<device>-<date>/; "
        "with --smoke a new temporary folder, never benchmarks/results/)",
    )
    parser.add_argument(
        "--shapes",
        default=None,
        help="sampler-table shapes as BxV,BxV (default: all six, or the smoke one)",
    )
    parser.add_argument("--samplers-only", action="store_true", help="run the sampler table only")
    args = parser.parse_args(argv)
    shapes: list[tuple[int, int]] | None = None
    if args.shapes:
        pairs = [item.split("x") for item in args.shapes.split(",")]
        shapes = [(int(b), int(v)) for b, v in pairs]
    if args.out is not None:
        out = args.out
    elif args.smoke:  # a smoke run is a check, not a result: keep it out of results/
        out = Path(tempfile.mkdtemp(prefix="jaxsample-benchmarks-smoke-"))
    else:
        out = default_out()
    started = time.perf_counter()

    def log(message: str) -> None:
        # Progress on stderr, flushed at once, so that a log file sees it as it happens.
        print(f"[{time.perf_counter() - started:6.0f} s] {message}", file=sys.stderr, flush=True)

    results = run(args.smoke, out, log=log, shapes=shapes, samplers_only=args.samplers_only)
    print(report.markdown(results))
    print(f"written to {out}")
    bad = results.get("checks", {}).get("failures", [])
    if bad:
        print("FAILED CHECKS:\n" + "\n".join(bad), file=sys.stderr)
        return 1
    return 0
