"""The sampler table timed in windows: budgets shared, figures combined."""

from __future__ import annotations

import math

from benchmarks.suites import _window_budget
from benchmarks.timing import Budget, combine_windows, time_interleaved


def test_window_figure_is_the_median_of_window_medians() -> None:
    windows = [
        {"median_ms": 1.0, "min_ms": 0.9, "reps": 10, "warmup_s": 0.5, "interleaved_with": []},
        {"median_ms": 2.5, "min_ms": 1.1, "reps": 12, "warmup_s": math.nan},
        {"median_ms": 1.2, "min_ms": 0.8, "reps": 11, "warmup_s": math.nan},
    ]
    got = combine_windows(windows)
    assert got["median_ms"] == 1.2  # one slow window does not move the figure
    assert got["min_ms"] == 0.8
    assert got["reps"] == 33
    assert got["warmup_s"] == 0.5  # the first window's warm-up
    assert got["window_median_ms"] == [1.0, 2.5, 1.2]
    assert combine_windows(windows[:1]) == windows[0]


def test_budget_is_shared_among_windows() -> None:
    b = Budget(seconds=1.5, min_reps=5, max_reps=50, n_buffers=4)
    w = _window_budget(b, 3)
    assert (w.seconds, w.min_reps, w.max_reps, w.n_buffers) == (0.5, 2, 16, 4)
    one = _window_budget(Budget(seconds=1.0, min_reps=1, max_reps=2, n_buffers=2), 3)
    assert (one.min_reps, one.max_reps) == (1, 1)  # never fewer than one call


def test_later_windows_skip_the_warm_up_call() -> None:
    calls: list[int] = []

    def fn(x: int) -> int:
        calls.append(x)
        return x

    budget = Budget(seconds=0.0, min_reps=3, max_reps=3, n_buffers=2)
    warm = time_interleaved({"f": (fn, [0, 1])}, budget)["f"]
    assert len(calls) == 1 + 3 and warm["reps"] == 3 and warm["warmup_s"] >= 0
    calls.clear()
    cold = time_interleaved({"f": (fn, [0, 1])}, budget, warm_up=False)["f"]
    assert len(calls) == 3 and cold["reps"] == 3 and math.isnan(cold["warmup_s"])
