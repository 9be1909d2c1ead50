"""The lab's five figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsample.labs._plotting import (
    annotate_cells,
    log_scale,
    panels,
    save_figure,
    save_with_legend,
)
from jaxsample.labs._report import LabReport
from jaxsample.labs.top_k_top_p._measure import (
    EXAMPLE,
    GRID_KS,
    GRID_PS,
    GRID_TAUS,
    HEATMAP_TOKENS,
    KS,
    ORDER_P,
    ORDER_SHOWN,
    ORDER_TAUS,
    PROMPTS,
    PS,
    Measures,
)


def plot(report: LabReport, m: Measures) -> None:
    """Draw the five figures."""
    ex = PROMPTS.index(EXAMPLE)
    _plot_kept_vs_k(report, m.size_k, m.mass_k, len(m.words))
    _plot_kept_vs_p(report, m.size_p, m.mass_p)
    _plot_heatmaps(report, m.words, m.q1[ex], m.grid, m.q_gk_np[:, ex], m.q_gp_np[:, ex])
    _plot_grid_entropy(report, m.grid, m.h_gk[:, ex], m.n_gk[:, ex], m.h_gp[:, ex], m.n_gp[:, ex])
    _plot_order(report, m.words, m.before_np[:, ex], m.after_np[:, ex], m.ref[:, ex])


def _plot_kept_vs_k(
    report: LabReport, size_k: np.ndarray[Any, Any], mass_k: np.ndarray[Any, Any], vocab: int
) -> None:
    fig, (ax1, ax2) = panels(11.0, 4.4, 2)
    ax1.plot(KS, size_k[:, 0], "o-", label="every prompt (identical)")
    ax1.plot(KS, np.minimum(KS, vocab), "k:", label="min(k, V)")
    ax1.set(
        **log_scale("k"), **log_scale("kept tokens", "y"), title="Top-k: kept-set size against k"
    )
    ax1.legend()
    for j, p in enumerate(PROMPTS):
        ax2.plot(KS, mass_k[:, j], "o-", ms=3, label=f'"{p}"')
    ax2.set(
        **log_scale("k"),
        ylabel="kept probability mass at tau = 1",
        title="Top-k: kept mass against k",
        ylim=(0, 1.02),
    )
    save_with_legend(fig, ax2, report.path("kept_vs_k.png"), fontsize=8)


def _plot_kept_vs_p(
    report: LabReport, size_p: np.ndarray[Any, Any], mass_p: np.ndarray[Any, Any]
) -> None:
    fig, (ax1, ax2) = panels(11.0, 4.4, 2)
    for j, p in enumerate(PROMPTS):
        ax1.step(PS, size_p[:, j], where="post", marker="o", ms=3, label=f'"{p}"')
        ax2.plot(PS, mass_p[:, j], "o-", ms=3, label=f'"{p}"')
    ax1.set(
        **log_scale("kept tokens", "y"),
        xlabel="nucleus mass p",
        title="Top-p: kept-set size against p (tau = 1)",
    )
    ax1.legend(fontsize=8)
    ax2.plot([0, 1], [0, 1], "k:", label="kept mass = p")
    ax2.set(
        xlabel="nucleus mass p",
        ylabel="kept probability mass at tau = 1",
        title="Top-p: kept mass against p (always >= p)",
    )
    save_with_legend(fig, ax2, report.path("kept_vs_p.png"), fontsize=8)


def _plot_heatmaps(
    report: LabReport,
    words: tuple[str, ...],
    q_ref: np.ndarray[Any, Any],
    grid: list[tuple[float, int]],
    q_k: np.ndarray[Any, Any],
    q_p: np.ndarray[Any, Any],
) -> None:
    cols = np.argsort(-q_ref, kind="stable")[:HEATMAP_TOKENS]
    labels = [words[i] for i in cols] + ["(rest)"]
    fig, axes = panels(14.0, 6.6, 2, grid=False)
    for ax, q, name, values in (
        (axes[0], q_k, "k", GRID_KS),
        (axes[1], q_p, "p", GRID_PS),
    ):
        shown = q[:, cols]
        mat = np.concatenate([shown, 1 - shown.sum(-1, keepdims=True)], axis=1)
        mat = np.clip(mat, 0.0, 1.0)
        im = ax.imshow(mat, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=45, ha="right")
        ax.set_yticks(range(len(grid)))
        ax.set_yticklabels([f"tau={t}, {name}={values[i]}" for t, i in grid], fontsize=8)
        cell_text = [[f"{v:.2f}" if v >= 0.005 else None for v in row] for row in mat]
        annotate_cells(ax, cell_text, mat > 0.6, fontsize=6)
        ax.set(
            xlabel=f'next token after "{EXAMPLE}" (most likely at tau = 1 first)',
            title=f'Exact distribution under (tau, {name}) on "{EXAMPLE}"',
        )
        fig.colorbar(im, ax=ax, label="probability", fraction=0.04)
    save_figure(fig, report.path("grid_distributions.png"))


def _plot_grid_entropy(
    report: LabReport,
    grid: list[tuple[float, int]],
    h_k: np.ndarray[Any, Any],
    n_k: np.ndarray[Any, Any],
    h_p: np.ndarray[Any, Any],
    n_p: np.ndarray[Any, Any],
) -> None:
    fig, axes = panels(11.0, 4.4, 2, grid=False)
    vmax = float(max(h_k.max(), h_p.max()))
    for ax, h, n, name, values in (
        (axes[0], h_k, n_k, "k", GRID_KS),
        (axes[1], h_p, n_p, "p", GRID_PS),
    ):
        mat = h.reshape(len(GRID_TAUS), len(values))
        cnt = n.reshape(len(GRID_TAUS), len(values))
        im = ax.imshow(mat, cmap="magma", vmin=0.0, vmax=vmax, aspect="auto", origin="lower")
        cell_text = [
            [f"{mat[r, c]:.2f} b\n{cnt[r, c]} kept" for c in range(mat.shape[1])]
            for r in range(mat.shape[0])
        ]
        annotate_cells(ax, cell_text, ~(mat < 0.6 * vmax))
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels([str(v) for v in values])
        ax.set_yticks(range(len(GRID_TAUS)))
        ax.set_yticklabels([str(t) for t in GRID_TAUS])
        ax.set(
            xlabel=name,
            ylabel="temperature tau",
            title=f'Entropy (bits) and kept tokens, (tau, {name}), "{EXAMPLE}"',
        )
        fig.colorbar(im, ax=ax, label="entropy (bits)", fraction=0.05)
    save_figure(fig, report.path("grid_entropy.png"))


def _plot_order(
    report: LabReport,
    words: tuple[str, ...],
    before: np.ndarray[Any, Any],
    after: np.ndarray[Any, Any],
    ref: np.ndarray[Any, Any],
) -> None:
    fig, axes = panels(12.0, 5.6, len(ORDER_SHOWN))
    for ax, t in zip(axes, ORDER_SHOWN, strict=True):
        i = ORDER_TAUS.index(t)
        order = np.argsort(-ref[i], kind="stable")
        kept = int(max((before[i] > 0).sum(), (after[i] > 0).sum()))
        # Every kept token (up to 24), then two dropped ones for contrast: no empty slot.
        n_show = min(kept + 2, 24)
        cols = order[:n_show]
        shown = np.concatenate([before[i, cols], after[i, cols], ref[i, cols]])
        floor = float(shown[shown > 0].min()) / 3
        xs = np.arange(n_show)
        ax.bar(
            xs - 0.2,
            before[i, cols],
            0.4,
            label=f"TopP({ORDER_P}, tau={t}): {(before[i] > 0).sum()} kept",
        )
        ax.bar(
            xs + 0.2,
            after[i, cols],
            0.4,
            label=f"chain(TopP({ORDER_P}), Temperature({t})): {(after[i] > 0).sum()} kept",
        )
        ax.plot(xs, ref[i, cols], "k.", ms=7, label=f"Temperature({t}), untruncated")
        ax.set_xticks(xs)
        ax.set_xticklabels([words[c] for c in cols], rotation=60, ha="right", fontsize=8)
        more = f"; {kept - n_show} more kept, not shown" if kept > n_show else ""
        ax.set(
            **log_scale("probability", "y"),
            ylim=(floor, 1.5),
            xlim=(-0.7, n_show - 0.3),
            xlabel=f"next token, most likely first ({n_show} shown{more})",
            title=f'Temperature before vs after the nucleus, tau = {t}, "{EXAMPLE}"',
        )
        ax.title.set_fontsize(10)
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.32), frameon=False)
    save_figure(fig, report.path("temperature_order.png"))
