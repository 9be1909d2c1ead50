"""Lab: the sampling simulator (ten workflow tokens, temperature isolated).

Six temperatures with top-k and top-p off; for each: the exact distribution and its
entropy (bits), 10,000 draws made in one vmapped call, the empirical frequencies
against the exact ones with the largest deviation, and the simulator's claims about
the probability of "approve" set against the exact values.

Checks (they decide the exit status): the entropy rises with tau, the order of the
tokens never changes, and every empirical frequency lies within ``MAX_Z`` standard
errors of the exact probability (a cell of probability exactly 0 or 1 must match
exactly). Findings (reported, never a failure): the simulator's claims about
"approve" at tau 0.1 and 2.0 and about how many tokens stay viable.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.labs._plotting import log_scale, new_figure, save_with_legend
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.samplers import Strategy, TopK, TopP, chain, entropy, probs, sample

__all__ = ["LOGITS", "TEMPERATURES", "TOKENS", "run"]

TOKENS = (
    "approve",
    "reject",
    "review",
    "escalate",
    "delay",
    "audit",
    "optimize",
    "notify",
    "assign",
    "close",
)
LOGITS = (2.2, 1.8, 1.4, 0.9, 0.2, 0.1, -0.3, -0.6, -0.8, -1.0)
TEMPERATURES = (0.1, 0.2, 0.5, 1.0, 1.5, 2.0)
N_DRAWS = 10_000
#: Largest allowed |empirical - exact| in standard errors (Bonferroni over 60 cells).
MAX_Z = 5.0
#: A token is "viable" (the simulator's word) when its probability is at least this.
VIABLE = 0.01
#: The simulator's claims: P(approve) range at a temperature, and viable-token counts.
APPROVE_CLAIMS: dict[float, tuple[float, float]] = {0.1: (0.95, 1.0), 2.0: (0.30, 0.40)}
VIABLE_CLAIMS: dict[float, tuple[int, int]] = {0.1: (2, 3), 2.0: (7, 8)}


@jax.jit
def exact_and_draws(
    key: jax.Array, logits: jax.Array, taus: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions float32 [S, V] and draws int32 [S, N] for every setting, in one call."""

    def setting(tau: jax.Array) -> Strategy:
        return chain(TopK(0, tau=tau), TopP(1.0))  # top-k and top-p off, as in the simulator

    q = jax.vmap(lambda t: probs(logits, setting(t)))(taus)
    rows = jnp.broadcast_to(logits, (N_DRAWS, logits.shape[-1]))
    draws = jax.vmap(lambda t, i: sample(jax.random.fold_in(key, i), rows, setting(t)))(
        taus, jnp.arange(taus.shape[0], dtype=jnp.uint32)
    )
    return q, draws


@dataclasses.dataclass(frozen=True)
class _Measures:
    """The exact distributions, the draws and their agreement, per temperature."""

    q: np.ndarray[Any, Any]
    h: np.ndarray[Any, Any]
    freq: np.ndarray[Any, Any]
    zscores: np.ndarray[Any, Any]
    n_exact_cells: int
    viable: np.ndarray[Any, Any]


def _measure(seed: int) -> _Measures:
    """Compute the exact distributions and draw from them (one call)."""
    z = jnp.asarray(LOGITS, jnp.float32)
    taus = jnp.asarray(TEMPERATURES, jnp.float32)
    q, draws = exact_and_draws(jax.random.key(seed), z, taus)
    q = np.asarray(q, np.float64)
    h = np.asarray(jax.vmap(entropy)(jnp.asarray(q, jnp.float32)), np.float64)
    freq = np.stack([np.bincount(r, minlength=len(TOKENS)) for r in np.asarray(draws)]) / N_DRAWS
    se = np.sqrt(q * (1 - q) / N_DRAWS)
    zscores = np.abs(
        np.vectorize(z_score)(freq - q, se)
    )  # a cell of exact probability 0 or 1 has se 0: any deviation is infinitely far
    n_exact_cells = int(np.sum(se == 0))
    viable = (q >= VIABLE).sum(axis=1)
    return _Measures(
        q=q, h=h, freq=freq, zscores=zscores, n_exact_cells=n_exact_cells, viable=viable
    )


def run(out_dir: Path, seed: int = 0, quick: bool = False) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the draws: setting ``i``, draw ``n`` uses
            ``fold_in(fold_in(key(seed), i), n)``.
        quick: accepted for a uniform interface; the lab takes a few seconds, so the
            quick run is the full run.

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("simulator", out_dir, seed)
    measured = _measure(seed)
    _print_table(measured)
    _save_data(report, measured, seed, quick)
    _check(report, measured)
    return report.finish()


def _print_table(measured: _Measures) -> None:
    """Print one row per temperature."""
    print(
        f"Sampling simulator: {len(TOKENS)} tokens, top-k 0 and top-p 1.0 (off), "
        f"{N_DRAWS} draws per setting in one call"
    )
    rows = []
    for i, t in enumerate(TEMPERATURES):
        order = np.argsort(-measured.q[i], kind="stable")
        top = ", ".join(f"{TOKENS[j]} {measured.q[i, j]:.3f}" for j in order[:4])
        worst = int(np.argmax(np.abs(measured.freq[i] - measured.q[i])))
        rows.append(
            [
                t,
                float(measured.h[i]),
                float(measured.q[i, 0]),
                float(measured.freq[i, 0]),
                int(measured.viable[i]),
                top,
                f"{TOKENS[worst]} {measured.freq[i, worst] - measured.q[i, worst]:+.4f}",
            ]
        )
    print_table(
        "Per setting (entropy in bits; 'approve' exact and empirical)",
        [
            "tau",
            "H bits",
            "approve",
            "approve emp.",
            "p>=1%",
            "most likely (exact)",
            "largest deviation",
        ],
        rows,
    )


def _save_data(report: LabReport, measured: _Measures, seed: int, quick: bool) -> None:
    """Record the parameters and write the JSON file."""
    report.parameters = {
        "tokens": list(TOKENS),
        "logits": list(LOGITS),
        "temperatures": list(TEMPERATURES),
        "top_k": 0,
        "top_p": 1.0,
        "n_draws": N_DRAWS,
        "max_z": MAX_Z,
        "viable_probability": VIABLE,
        "quick": quick,
    }
    report.save_json(
        "settings.json",
        [
            {
                "temperature": t,
                "entropy_bits": float(measured.h[i]),
                "exact": dict(zip(TOKENS, measured.q[i].tolist(), strict=True)),
                "empirical": dict(zip(TOKENS, measured.freq[i].tolist(), strict=True)),
                "sorted": [TOKENS[j] for j in np.argsort(-measured.q[i], kind="stable")],
                "largest_abs_deviation": float(np.max(np.abs(measured.freq[i] - measured.q[i]))),
            }
            for i, t in enumerate(TEMPERATURES)
        ],
    )


def _check(report: LabReport, measured: _Measures) -> None:
    """Add the findings (with their figures) and the checks."""
    approve = {t: float(measured.q[TEMPERATURES.index(t), 0]) for t in APPROVE_CLAIMS}
    approve_holds = {t: lo <= approve[t] <= hi for t, (lo, hi) in APPROVE_CLAIMS.items()}
    n_viable = {t: int(measured.viable[TEMPERATURES.index(t)]) for t in VIABLE_CLAIMS}
    viable_holds = {t: lo <= n_viable[t] <= hi for t, (lo, hi) in VIABLE_CLAIMS.items()}

    fig, ax = new_figure()
    ax.plot(TEMPERATURES, measured.h, "o-", label="exact entropy")
    h_emp = [-np.sum(f[f > 0] * np.log2(f[f > 0])) for f in measured.freq]
    ax.plot(TEMPERATURES, h_emp, "x", ms=9, label=f"plug-in estimate from {N_DRAWS} draws")
    h_max = float(np.log2(len(TOKENS)))
    ax.axhline(h_max, ls="--", c="gray", label=f"log2(10) = {h_max:.2f} bits (uniform)")
    ax.set(
        xlabel="temperature tau",
        ylabel="entropy H (bits)",
        title="How temperature spreads the simulator's distribution",
        ylim=(0, h_max * 1.08),
    )
    save_with_legend(fig, ax, report.path("entropy_vs_temperature.png"), loc="lower right")

    fig, ax = new_figure(8.0, 4.6)
    width = 0.8 / len(TEMPERATURES)
    xs = np.arange(len(TOKENS))
    for i, t in enumerate(TEMPERATURES):
        ax.bar(xs + i * width, measured.q[i], width, label=f"tau = {t}")
        ax.plot(
            xs + i * width,
            measured.freq[i],
            "o",
            ms=4.5,
            mfc="white",
            mec="black",
            mew=0.9,
            label=f"empirical ({N_DRAWS} draws)" if i == 0 else None,
        )
    ax.set(
        xticks=xs + 0.4 - width / 2,
        ylabel="probability (bars exact, circles empirical)",
        title="Token probabilities by temperature",
    )
    ax.set_xticklabels(TOKENS, rotation=30)
    save_with_legend(fig, ax, report.path("probabilities_by_temperature.png"), ncol=2, fontsize=8)

    fig, ax = new_figure(7.0, 4.4)
    dense = np.geomspace(0.05, 3.0, 200)
    z64 = np.asarray(LOGITS, np.float64)
    approve_dense = [float(np.exp(z64[0] / t - np.logaddexp.reduce(z64 / t))) for t in dense]
    ax.plot(dense, approve_dense, "-", c="tab:blue", label="exact P(approve) = softmax(z / tau)[0]")
    ax.plot(
        TEMPERATURES, measured.freq[:, 0], "o", ms=6, mfc="white", mec="black", label="empirical"
    )
    for j, (t, (lo, hi)) in enumerate(APPROVE_CLAIMS.items()):
        verdict = "holds" if approve_holds[t] else "does not hold"
        ax.fill_between(
            [t * 0.85, t * 1.15],
            lo,
            hi,
            color="tab:green" if approve_holds[t] else "tab:red",
            alpha=0.3,
            label="claimed range" if j == 0 else None,
        )
        claim = f"{lo:.0%} or more" if hi >= 1.0 else f"{lo * 100:.0f}-{hi:.0%}"
        ax.annotate(
            f"claim at tau {t}: {claim}\n{verdict} (exact {approve[t]:.1%})",
            (t, lo if t < 1 else hi),
            xytext=(0.06, 0.7) if t < 1 else (1.6, 0.62),
            textcoords="data",
            ha="left" if t < 1 else "center",
            fontsize=8,
            arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.8},
        )
    ax.set(
        **log_scale("temperature tau"),
        ylabel="P(approve)",
        title="'approve' against temperature, with the simulator's claims",
        ylim=(0, 1.05),
    )
    save_with_legend(fig, ax, report.path("approve_claims.png"), loc="lower left", fontsize=8)

    order = np.argsort(-measured.q, axis=1, kind="stable")
    report.check(
        "entropy increases with temperature",
        f"{np.round(measured.h, 3).tolist()} bits",
        "strictly increasing",
        bool(np.all(np.diff(measured.h) > 0)),
    )
    report.check(
        "temperature keeps the order of the tokens",
        "same order at every tau" if np.all(order == order[0]) else "order changes",
        "the order of the logits at every tau",
        bool(np.all(order == np.argsort(-np.asarray(LOGITS), kind="stable"))),
    )
    report.check(
        "empirical frequencies match the exact distribution",
        f"largest deviation {np.max(measured.zscores):.2f} standard errors over "
        f"{measured.zscores.size} cells "
        f"({measured.n_exact_cells} of exact probability 0 or 1)",
        f"<= {MAX_Z} standard errors in every cell (exact equality where the se is 0)",
        bool(np.max(measured.zscores) <= MAX_Z),
    )
    for t, (lo, hi) in APPROVE_CLAIMS.items():
        claim = f"{lo:.0%} or more" if hi >= 1.0 else f"{lo * 100:.0f}-{hi:.0%}"
        note = ""
        if not approve_holds[t]:
            note = (
                f"softmax(z / {t:g}) gives 'approve' {approve[t]:.4f} exactly with these logits, "
                "so the claim cannot hold (it is "
                f"{float(measured.q[TEMPERATURES.index(1.0), 0]):.4f} "
                "at tau = 1.0)."
            )
        report.finding(
            f"'approve' at tau = {t}", f"{approve[t]:.4f} exact", claim, approve_holds[t], note
        )
    for t, (lo, hi) in VIABLE_CLAIMS.items():
        report.finding(
            f"tokens with probability >= {VIABLE:.0%} at tau = {t}",
            f"{n_viable[t]} of {len(TOKENS)}",
            f"{lo}-{hi}",
            viable_holds[t],
            "the least likely token has probability "
            f"{float(measured.q[TEMPERATURES.index(t)].min()):.3g}",
        )
