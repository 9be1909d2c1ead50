"""Figure helpers of the labs (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

__all__ = [
    "annotate_cells",
    "log_scale",
    "new_figure",
    "panels",
    "place_labels",
    "save_figure",
    "save_with_legend",
]


def new_figure(width: float = 6.4, height: float = 4.2) -> tuple[Any, Any]:
    """Create a figure with one axes, a light grid and a readable font size.

    Args:
        width: figure width in inches.
        height: figure height in inches.

    Returns:
        ``(figure, axes)``.
    """
    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    ax.grid(True, alpha=0.3)
    return fig, ax


def panels(width: float, height: float, n: int, grid: bool = True) -> tuple[Any, list[Any]]:
    """Create a figure with ``n`` side-by-side axes (light grid unless ``grid`` is False).

    Args:
        width: figure width in inches.
        height: figure height in inches.
        n: number of axes, ``>= 1``.
        grid: draw a light grid on every axes.

    Returns:
        ``(figure, [axes, ...])``.
    """
    fig, axes = plt.subplots(1, n, figsize=(width, height), dpi=110)
    axes = list(np.atleast_1d(axes))
    for ax in axes:
        if grid:
            ax.grid(True, alpha=0.3)
    return fig, axes


def log_scale(label: str, axis: str = "x", *, more: str = "") -> dict[str, str]:
    """Keywords of ``ax.set`` for a log-scaled axis labelled ``"<label> (log scale)"``.

    Spread them first into ``ax.set(...)``, so that the scale is set before any limit.

    Args:
        label: what the axis shows.
        axis: ``"x"`` or ``"y"``.
        more: text appended to the label, after ``(log scale)``.

    Returns:
        ``{"<axis>scale": "log", "<axis>label": ...}``.
    """
    return {f"{axis}scale": "log", f"{axis}label": f"{label} (log scale){more}"}


def annotate_cells(
    ax: Any, texts: Sequence[Sequence[str | None]], dark_text: Any, fontsize: float = 8
) -> None:
    """Write a label at the centre of every cell of an ``imshow`` image.

    Args:
        ax: the axes holding the image (cell ``(r, c)`` centred at ``x = c, y = r``).
        texts: ``texts[r][c]``, the label of cell ``(r, c)``; ``None`` writes nothing.
        dark_text: bool array of the same shape: black text where True (a light
            cell), white where False.
        fontsize: font size of the labels.
    """
    for r, row in enumerate(texts):
        for c, text in enumerate(row):
            if text is not None:
                ax.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="black" if dark_text[r][c] else "white",
                )


def save_figure(fig: Any, path: Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (folders created) and close it.

    Args:
        fig: a matplotlib figure.
        path: destination file.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def save_with_legend(fig: Any, ax: Any, path: Path, **legend: Any) -> Path:
    """Draw the legend of ``ax``, then save ``fig`` as :func:`save_figure` does.

    Args:
        fig: a matplotlib figure.
        ax: one of its axes, the one whose legend is drawn.
        path: destination file.
        **legend: keyword arguments of ``ax.legend`` (``fontsize``, ``loc``, ...).

    Returns:
        ``path``.
    """
    ax.legend(**legend)
    return save_figure(fig, path)


#: Offsets in points tried, in order, for a point's label: right, left, above, below
#: and the diagonals, then the same further away.
_OFFSETS: tuple[tuple[float, float], ...] = tuple(
    (dx * r, dy * r)
    for r in (1.0, 2.2, 3.6)
    for dx, dy in ((7, 0), (-7, 0), (0, 8), (0, -8), (7, 7), (-7, 7), (7, -7), (-7, -7))
)


def place_labels(
    ax: Any, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 8
) -> list[Any]:
    """Label points so that no two labels overlap each other or another point's marker.

    Each label tries a fixed list of offsets around its point (right first, then left,
    above, below, the diagonals, then further out) and keeps the first whose box, as
    the renderer measures it, stays inside the axes and clear of the labels already
    placed and of every point. When none is clear, the one with the least overlap is
    kept and a thin leader line joins it to its point.

    Args:
        ax: a matplotlib axes whose limits are already final.
        xs: x data coordinates, one per point.
        ys: y data coordinates, one per point (same length as ``xs``).
        labels: the texts, one per point.
        fontsize: label font size in points.

    Returns:
        The matplotlib text annotations, in the order of ``labels``.

    Raises:
        ValueError: if ``xs``, ``ys`` and ``labels`` differ in length.
    """
    if not len(xs) == len(ys) == len(labels):
        raise ValueError(
            f"xs, ys and labels must have one entry per point, got {len(xs)}, {len(ys)}, "
            f"{len(labels)}"
        )
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(list(zip(xs, ys, strict=True))) if len(xs) else []
    dots = [(px - 10, py - 10, px + 10, py + 10) for px, py in points]
    frame = ax.get_window_extent(renderer)
    placed: list[tuple[float, float, float, float]] = []
    out = []

    def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return max(w, 0.0) * max(h, 0.0)

    for i, (x, y, text) in enumerate(zip(xs, ys, labels, strict=True)):
        best: tuple[float, Any, tuple[float, float, float, float]] | None = None
        for dx, dy in _OFFSETS:
            ann = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx, dy),
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                fontsize=fontsize,
            )
            e = ann.get_window_extent(renderer)
            box = (e.x0, e.y0, e.x1, e.y1)
            outside = (
                max(frame.x0 - box[0], 0)
                + max(box[2] - frame.x1, 0)
                + max(frame.y0 - box[1], 0)
                + max(box[3] - frame.y1, 0)
            ) * 100.0
            cost = (
                outside
                + sum(overlap(box, b) for b in placed)
                + sum(overlap(box, d) for j, d in enumerate(dots) if j != i)
            )
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        assert best is not None
        cost, ann, box = best
        if cost > 0 or abs(ann.xyann[0]) > 10 or abs(ann.xyann[1]) > 10:
            ann.remove()
            ann = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=ann.xyann,
                ha=ann.get_ha(),
                va=ann.get_va(),
                fontsize=fontsize,
                arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.6},
            )
        placed.append(box)
        out.append(ann)
    return out
