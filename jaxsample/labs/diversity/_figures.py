"""The lab's three figures: the correctness-diversity curve, the measures, the ladder."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from jaxsample.labs._plotting import new_figure, place_labels, save_figure
from jaxsample.labs._report import LabReport
from jaxsample.labs.diversity._settings import (
    FAMILIES,
    FAMILY_COLORS,
    HOT_LADDER,
)


def plot_curve(
    report: LabReport, points: list[dict[str, Any]], front: list[int], n_prompts: int, n: int
) -> None:
    fig, (ax, zoom) = plt.subplots(
        1, 2, figsize=(15.0, 6.4), dpi=110, gridspec_kw={"width_ratios": [1.25, 1.0]}
    )
    # The zoom shows the strategies that are both fairly correct and fairly diverse.
    inside = [
        i for i, pt in enumerate(points) if pt["correctness"] >= 0.9 and pt["distinct_2"] >= 0.8
    ]
    box = None
    if len(inside) >= 2:
        xs = [points[i]["distinct_2"] for i in inside]
        lo = [points[i]["correctness"] - points[i]["correctness_se"] for i in inside]
        hi = [points[i]["correctness"] + points[i]["correctness_se"] for i in inside]
        pad_x = max(0.01, 0.12 * (max(xs) - min(xs)))
        pad_y = max(0.005, 0.12 * (max(hi) - min(lo)))
        box = (min(xs) - pad_x, max(xs) + pad_x, min(lo) - pad_y, max(hi) + pad_y)
    for axis in (ax, zoom):
        axis.grid(True, alpha=0.3)
        for family in FAMILIES:
            sel = [pt for pt in points if pt["family"] == family]
            axis.errorbar(
                [pt["distinct_2"] for pt in sel],
                [pt["correctness"] for pt in sel],
                yerr=[pt["correctness_se"] for pt in sel],
                fmt="o",
                color=FAMILY_COLORS[family],
                capsize=2,
                label=family,
            )
        fx = [points[i]["distinct_2"] for i in front]
        fy = [points[i]["correctness"] for i in front]
        axis.plot(fx, fy, "k--", lw=1, label="Pareto front")
        axis.scatter(fx, fy, s=180, facecolors="none", edgecolors="k", lw=1.2)
        axis.set(
            xlabel=f"diversity: distinct-2 of the {n} completions of a prompt (mean over prompts)",
            ylabel="correctness: share of grammatical completions (+/- 1 se)",
        )
    ax.set_title(f"Diversity vs correctness, one point per strategy ({n_prompts} prompts x {n})")
    ax.set(xlim=(-0.02, 1.08), ylim=(-0.06, 1.08))
    ax.legend(loc="lower left")
    outside = [i for i in range(len(points)) if box is None or i not in inside]
    if box is not None:
        zoom.set(xlim=box[:2], ylim=box[2:])
        zoom.set_title(f"Zoom on the dotted box: {len(inside)} strategies")
        ax.add_patch(
            Rectangle((box[0], box[2]), box[1] - box[0], box[3] - box[2], fill=False, ls=":", lw=1)
        )
        ax.annotate(
            f"{len(inside)} strategies: see the zoom",
            (box[0], (box[2] + box[3]) / 2),
            textcoords="offset points",
            xytext=(-8, -2),
            ha="right",
            va="top",
            fontsize=8,
            style="italic",
        )
        place_labels(
            zoom,
            [points[i]["distinct_2"] for i in inside],
            [points[i]["correctness"] for i in inside],
            [points[i]["label"] for i in inside],
        )
    else:
        zoom.set_visible(False)
    place_labels(
        ax,
        [points[i]["distinct_2"] for i in outside],
        [points[i]["correctness"] for i in outside],
        [points[i]["label"] for i in outside],
    )
    save_figure(fig, report.path("diversity_vs_correctness.png"))


def plot_measures(report: LabReport, points: list[dict[str, Any]], n: int) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.4), dpi=110)
    measures = (
        ("distinct_1", "distinct-1 (unique words / words)"),
        ("distinct_2", "distinct-2 (unique bigrams / bigrams)"),
        ("distinct_completions", f"distinct completions per prompt (of {n})"),
    )
    for ax, (field, name) in zip(axes, measures, strict=True):
        ax.grid(True, alpha=0.3)
        for family in FAMILIES:
            sel = [pt for pt in points if pt["family"] == family]
            ax.plot(
                [pt[field] for pt in sel],
                [pt["correctness"] for pt in sel],
                "o",
                color=FAMILY_COLORS[family],
                label=family,
            )
        ax.set(
            xlabel=name,
            ylabel="share of grammatical completions",
            title=f"Correctness vs {name.split(' (')[0]}",
        )
    axes[0].legend(fontsize=8)
    save_figure(fig, report.path("diversity_measures.png"))


def plot_ladder(report: LabReport, points: list[dict[str, Any]]) -> None:
    ladder = [pt for pt in points if pt["family"] == "temperature"]
    taus = [pt["tau"] for pt in ladder]
    fig, ax = new_figure(7.0, 5.2)
    ax.errorbar(
        taus,
        [pt["correctness"] for pt in ladder],
        yerr=[pt["correctness_se"] for pt in ladder],
        fmt="o-",
        color="tab:red",
        capsize=2,
        label="correctness (share grammatical)",
    )
    d2 = [pt["distinct_2"] for pt in ladder]
    verdict = "holds" if np.all(np.diff(d2) > 0) else "does not hold (a fall within noise)"
    ax.plot(
        taus,
        d2,
        "s-",
        color="tab:blue",
        label=f"distinct-2; claim 'rises at every step': {verdict}",
    )
    ax.plot(taus, [pt["distinct_1"] for pt in ladder], "^-", color="tab:cyan", label="distinct-1")
    ax.set(
        xlabel="temperature tau (0 = greedy)",
        ylabel="share (0 to 1)",
        title="Pure temperature: diversity and correctness against tau",
        ylim=(0, 1.05),
    )
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    save_figure(fig, report.path("temperature_ladder.png"))


def plot_hot(report: LabReport, curves: dict[str, list[float]]) -> None:
    """Correctness against temperature for each truncation family (truncation after tau)."""
    fig, ax = new_figure(7.0, 5.2)
    colors = {
        "temperature": "tab:blue",
        "top-p 0.9": "tab:green",
        "min-p 0.1": FAMILY_COLORS["min-p"],
        "typical 0.9": FAMILY_COLORS["typical"],
        "top-n-sigma 1": FAMILY_COLORS["top-n-sigma"],
    }
    for name, curve in curves.items():
        ax.plot(HOT_LADDER, curve, "o-", color=colors[name], label=name)
    ax.grid(True, alpha=0.3)
    ax.set(
        xlabel="temperature tau (applied before the truncation)",
        ylabel="correctness: share of grammatical completions",
        title="Truncation against temperature",
        ylim=(0, 1.05),
    )
    ax.legend(fontsize=8)
    save_figure(fig, report.path("truncation_vs_temperature.png"))
