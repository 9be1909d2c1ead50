"""Figure helpers shared by the labs and benchmarks (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

__all__ = ["new_figure", "save_figure"]


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
