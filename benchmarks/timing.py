"""Timing rules of the benchmarks: medians of rotated, interleaved calls and device time.

Every figure is the median of repeated calls after a warm-up call, each call rotating
through several different random inputs (never zeros), and includes Python dispatch
and the wait for the result (``block_until_ready``). The number of repetitions adapts
to a time budget per measurement (:class:`Budget`), so slow peers get fewer (at least
``min_reps``); the count used is stored with every figure. On an accelerator the JAX
implementations also report device time: the time the device was busy per call, read
from a profiler trace (:func:`device_times`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

__all__ = ["Budget", "combine_windows", "device_times", "time_call", "time_interleaved"]


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to measure: a target seconds per figure and bounds on repetitions."""

    seconds: float
    min_reps: int
    max_reps: int
    n_buffers: int


def _block(out: Any) -> Any:
    if isinstance(out, jax.Array):
        return out.block_until_ready()
    return out


def time_call(fn: Callable[[Any], Any], inputs: Sequence[Any], budget: Budget) -> dict[str, Any]:
    """Median latency (ms) of ``fn`` over rotated ``inputs`` after one warm-up call."""
    stats = time_interleaved({"fn": (fn, inputs)}, budget)["fn"]
    del stats["interleaved_with"]
    return stats


def device_times(
    fns: dict[str, tuple[Callable[[jax.Array], Any], Sequence[jax.Array]]], calls: int = 10
) -> dict[str, float | None]:
    """Device time (ms per call) of jitted functions, from one profiler trace.

    Each function runs ``calls`` times over its rotated inputs (after a warm-up
    call) inside a host annotation named after it, waiting for each result, so
    that its kernels run inside that window. Its device time is the time the
    accelerator was busy (kernels and copies, overlaps counted once) inside the
    window, divided by ``calls``: no dispatch, no host round trips. ``None`` for
    every function where the trace has no device timeline (a CPU backend, or a
    profiler that cannot read the device).
    """
    for fn, inputs in fns.values():
        _block(fn(inputs[0]))
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for label, (fn, inputs) in fns.items():
                with jax.profiler.TraceAnnotation(label):
                    for i in range(calls):
                        _block(fn(inputs[i % len(inputs)]))
        files = sorted(Path(logdir).rglob("*trace.json.gz"))
        events: list[dict[str, Any]] = []
        if files:
            with gzip.open(files[0]) as f:
                events = json.loads(f.read())["traceEvents"]
    names = {
        e["pid"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    device = sorted(
        (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        for e in spans
        if "/device:" in names.get(e.get("pid"), "")
    )
    out: dict[str, float | None] = {}
    for label in fns:
        windows = [
            (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
            for e in spans
            if e.get("name") == label and "/host:" in names.get(e.get("pid"), "")
        ]
        if not device or not windows:
            out[label] = None
            continue
        lo, hi = windows[0]
        busy, end = 0.0, -math.inf
        for start, stop in device:
            if not lo <= start <= hi:
                continue
            start = max(start, end)
            if stop > start:
                busy += stop - start
            end = max(end, stop)
        out[label] = busy / 1e3 / calls
    return out


def time_interleaved(
    fns: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]],
    budget: Budget,
    slow: Sequence[str] = (),
    slow_budget: Budget | None = None,
    warm_up: bool = True,
) -> dict[str, dict[str, Any]]:
    """:func:`time_call` for functions whose times are compared, all measured in turn.

    After one warm-up call each (none with ``warm_up`` False: functions measured
    before in the same process, whose first-call costs are paid; ``warmup_s`` is
    then NaN), every round calls each function on the next of its rotated inputs
    (the order reversed every other round): the ``slow`` ones once, the others a
    burst of calls. Slow drifts in the machine's speed (other tenants of a shared
    host) then reach every function alike and leave their ratios alone. Rounds
    follow ``slow_budget`` per slow function (``budget`` when none is slow);
    bursts share ``budget`` among the rounds. Returns name -> the
    :func:`time_call` fields.
    """
    warm: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}

    def call(name: str, i: int) -> float:
        fn, inputs = fns[name]
        t0 = time.perf_counter()
        _block(fn(inputs[i % len(inputs)]))
        return time.perf_counter() - t0

    for name in fns:
        warm[name] = call(name, 0) if warm_up else math.nan
    for name in fns:  # one timed call each: the length of a round
        times[name].append(call(name, 1))
    order = list(fns)
    fast_round = sum(times[n][0] for n in order if n not in slow)
    slow_round = sum(times[n][0] for n in order if n in slow)
    if slow:
        sb = budget if slow_budget is None else slow_budget
        per_slow = sb.seconds * len(slow) / max(slow_round, 1e-6)
        rounds = int(min(sb.max_reps, max(sb.min_reps, per_slow)))
        share = int(budget.seconds / max(rounds * fast_round, 1e-6))
        burst = max(min(budget.max_reps // rounds, share), -(-budget.min_reps // rounds), 1)
    else:
        rounds = int(
            min(budget.max_reps, max(budget.min_reps, budget.seconds / max(fast_round, 1e-6)))
        )
        burst = 1
    for r in range(1, rounds):
        for name in order if r % 2 else order[::-1]:
            for b in range(1 if name in slow else burst):
                times[name].append(call(name, 1 + r * burst + b))
    return {
        name: {
            "median_ms": 1e3 * statistics.median(ts),
            "min_ms": 1e3 * min(ts),
            "reps": len(ts),
            "warmup_s": warm[name],
            "interleaved_with": [other for other in order if other != name],
        }
        for name, ts in times.items()
    }


def combine_windows(windows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One figure from :func:`time_interleaved` stats of the same function in several windows.

    A case timed in windows some minutes apart (each with its share of the budget)
    gets the median of the windows' medians as ``median_ms``: a slowdown of the
    host for a few seconds (seen on shared 2-core hosts, where a draw of tens of
    kernels then slows by up to 2x while a one-kernel read does not) then moves
    one window, not the figure. ``window_median_ms`` keeps each window's median,
    ``min_ms`` is the least call, ``reps`` counts every timed call, ``warmup_s``
    is the first window's warm-up. One window is returned as it is.
    """
    if len(windows) == 1:
        return dict(windows[0])
    medians = [w["median_ms"] for w in windows]
    return {
        **windows[0],
        "median_ms": statistics.median(medians),
        "min_ms": min(w["min_ms"] for w in windows),
        "reps": sum(w["reps"] for w in windows),
        "window_median_ms": medians,
    }
