"""Lab: the sampling simulator (ten workflow tokens, temperature isolated).

Six temperatures with top-k and top-p off; for each: the exact distribution and its
entropy (bits), 10,000 draws made in one vmapped call, the empirical frequencies
against the exact ones with the largest deviation, and the simulator's claims about
the probability of "approve" checked against the exact values.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.labs._report import LabReport, print_table
from jaxsample.plotting import new_figure, save_figure
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


def run(out_dir: Path, seed: int = 0) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the draws: setting ``i``, draw ``n`` uses
            ``fold_in(fold_in(key(seed), i), n)``.

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("simulator", out_dir, seed)
    z = jnp.asarray(LOGITS, jnp.float32)
    taus = jnp.asarray(TEMPERATURES, jnp.float32)
    q, draws = exact_and_draws(jax.random.key(seed), z, taus)
    q = np.asarray(q, np.float64)
    h = np.asarray(jax.vmap(entropy)(jnp.asarray(q, jnp.float32)), np.float64)
    freq = np.stack([np.bincount(r, minlength=len(TOKENS)) for r in np.asarray(draws)]) / N_DRAWS
    se = np.sqrt(np.maximum(q * (1 - q), 1e-12) / N_DRAWS)
    zscores = np.abs(freq - q) / se

    print(
        f"Sampling simulator: {len(TOKENS)} tokens, top-k 0 and top-p 1.0 (off), "
        f"{N_DRAWS} draws per setting in one call"
    )
    rows = []
    for i, t in enumerate(TEMPERATURES):
        order = np.argsort(-q[i], kind="stable")
        top = ", ".join(f"{TOKENS[j]} {q[i, j]:.3f}" for j in order[:4])
        worst = int(np.argmax(np.abs(freq[i] - q[i])))
        viable = int(np.sum(q[i] >= 0.01))
        rows.append(
            [
                t,
                float(h[i]),
                float(q[i, 0]),
                float(freq[i, 0]),
                viable,
                top,
                f"{TOKENS[worst]} {freq[i, worst] - q[i, worst]:+.4f}",
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

    report.parameters = {
        "tokens": list(TOKENS),
        "logits": list(LOGITS),
        "temperatures": list(TEMPERATURES),
        "top_k": 0,
        "top_p": 1.0,
        "n_draws": N_DRAWS,
        "max_z": MAX_Z,
    }
    report.save_json(
        "settings.json",
        [
            {
                "temperature": t,
                "entropy_bits": float(h[i]),
                "exact": dict(zip(TOKENS, q[i].tolist(), strict=True)),
                "empirical": dict(zip(TOKENS, freq[i].tolist(), strict=True)),
                "sorted": [TOKENS[j] for j in np.argsort(-q[i], kind="stable")],
                "largest_abs_deviation": float(np.max(np.abs(freq[i] - q[i]))),
            }
            for i, t in enumerate(TEMPERATURES)
        ],
    )

    fig, ax = new_figure()
    ax.plot(TEMPERATURES, h, "o-", label="exact entropy")
    h_emp = [-np.sum(f[f > 0] * np.log2(f[f > 0])) for f in freq]
    ax.plot(TEMPERATURES, h_emp, "x", ms=9, label=f"plug-in estimate from {N_DRAWS} draws")
    ax.axhline(np.log2(len(TOKENS)), ls="--", c="gray", label="log2(10) (uniform)")
    ax.set(
        xlabel="temperature tau",
        ylabel="entropy H (bits)",
        title="How temperature spreads the simulator's distribution",
    )
    ax.legend()
    save_figure(fig, report.path("entropy_vs_temperature.png"))

    fig, ax = new_figure(8.0, 4.6)
    width = 0.8 / len(TEMPERATURES)
    xs = np.arange(len(TOKENS))
    for i, t in enumerate(TEMPERATURES):
        ax.bar(xs + i * width, q[i], width, label=f"tau = {t}")
        ax.plot(xs + i * width, freq[i], "k.", ms=3)
    ax.set(
        xticks=xs + 0.4 - width / 2,
        ylabel="probability (bars exact, dots empirical)",
        title="Token probabilities by temperature",
    )
    ax.set_xticklabels(TOKENS, rotation=30)
    ax.legend(ncol=2, fontsize=8)
    save_figure(fig, report.path("probabilities_by_temperature.png"))

    report.check(
        "entropy increases with temperature",
        f"{np.round(h, 3).tolist()} bits",
        "strictly increasing",
        bool(np.all(np.diff(h) > 0)),
    )
    report.check(
        "empirical frequencies match the exact distribution",
        f"largest deviation {np.max(zscores):.2f} standard errors",
        f"<= {MAX_Z} standard errors in every cell",
        bool(np.max(zscores) <= MAX_Z),
    )
    report.check(
        "'approve' at tau = 0.1 (claim: about 95% or more)",
        f"{q[0, 0]:.4f} exact",
        ">= 0.95",
        bool(q[0, 0] >= 0.95),
    )
    p2 = float(q[TEMPERATURES.index(2.0), 0])
    report.check(
        "'approve' at tau = 2.0 (claim: 30-40%)", f"{p2:.4f} exact", "0.30-0.40", 0.30 <= p2 <= 0.40
    )
    if not 0.30 <= p2 <= 0.40:
        print(
            f"\nNote: with these logits softmax(z / 2) gives 'approve' {p2:.3f} exactly, so the "
            f"simulator's 30-40% claim cannot hold at tau = 2.0 (it is "
            f"{float(q[TEMPERATURES.index(1.0), 0]):.3f} at tau = 1.0)."
        )
    report.write_manifest()
    report.print_checks()
    return report
