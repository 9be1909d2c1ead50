"""Exercise 5.2: a temperature x top-k grid on the five-token example.

Exact distributions, draws, and which settings suit which uses (from the entropies
and top-token shares).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.labs._plotting import annotate_cells, new_figure, save_figure
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.labs.exercises._common import FOOD, FOOD_LOGITS, MAX_Z
from jaxsample.samplers import (
    TopK,
    entropy,
    probs,
    sample,
)

# 5.2
TAUS_52 = (0.5, 1.0, 1.5)
KS_52 = (2, 3, 5)
N_SHOWN_52 = 5
N_FREQ_52 = 10_000


@functools.partial(jax.jit, static_argnames=("n",))
def food_grid(
    key: jax.Array, z: jax.Array, taus: jax.Array, ks: jax.Array, n: int
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions float32 [G, V] and ``n`` draws int32 [G, n] of ``TopK(k, tau)``.

    Args:
        key: a typed key; setting ``g`` draws with ``fold_in(key, g)``.
        z: logits float32 [V].
        taus: float32 [G], paired with ``ks``.
        ks: int32 [G].
        n: draws per setting (static).
    """
    vocab = z.shape[0]
    rows = jnp.broadcast_to(z, (n, vocab))

    def one(g: jax.Array, t: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        s = TopK(k, tau=t, k_max=vocab)
        return probs(z, s), sample(jax.random.fold_in(key, g), rows, s)

    return jax.vmap(one)(jnp.arange(taus.shape[0], dtype=jnp.uint32), taus, ks)


def exercise(report: LabReport, key: jax.Array) -> dict[str, Any]:
    """Run exercise 5.2 and add its checks, tables and figure to ``report``; return its data."""
    z = jnp.asarray(FOOD_LOGITS, jnp.float32)
    settings = [(t, k) for t in TAUS_52 for k in KS_52]
    taus = jnp.asarray([t for t, _ in settings], jnp.float32)
    ks = jnp.asarray([k for _, k in settings], jnp.int32)
    q, draws = food_grid(key, z, taus, ks, N_FREQ_52)
    q = np.asarray(q, np.float64)
    draws = np.asarray(draws)
    h = np.asarray(entropy(jnp.asarray(q, jnp.float32)), np.float64) + 0.0
    freq = np.stack([np.bincount(d, minlength=len(FOOD)) for d in draws]) / N_FREQ_52
    se = np.sqrt(q * (1 - q) / N_FREQ_52)  # 0 where q is 0 or 1: any deviation is infinite
    zs = np.abs(np.vectorize(z_score)(freq - q, se))
    print("\n=== 5.2  Temperature x top-k on the five-token example")
    print_table(
        f"Exact distributions (entropy in bits; 2^H = effective number of choices); first "
        f"{N_SHOWN_52} of {N_FREQ_52:,} draws",
        ["tau", "k", *FOOD, "H bits", "2^H", "draws"],
        [
            [
                t,
                k,
                *[float(v) for v in q[g]],
                float(h[g]),
                float(2 ** h[g]),
                " ".join(FOOD[i] for i in draws[g, :N_SHOWN_52]),
            ]
            for g, (t, k) in enumerate(settings)
        ],
    )
    lo, hi = int(np.argmin(h)), int(np.argmax(h))
    mid = settings.index((1.0, 3))
    note = [
        f"tau {settings[lo][0]}, k {settings[lo][1]}: H = {h[lo]:.2f} bits, 'pizza' "
        f"{q[lo, 0]:.0%} -> nearly deterministic; suits tasks with one right answer "
        "(extraction, classification, code, factual replies).",
        f"tau {settings[mid][0]}, k {settings[mid][1]}: H = {h[mid]:.2f} bits over 3 options -> "
        "some variety with no unlikely token; suits conversational replies and summaries.",
        f"tau {settings[hi][0]}, k {settings[hi][1]}: H = {h[hi]:.2f} bits, 'pizza' only "
        f"{q[hi, 0]:.0%}, every token possible (least likely {q[hi].min():.0%}) -> suits "
        "brainstorming and creative text, where variety matters more than the top choice.",
    ]
    print("  Which settings suit which uses (from the numbers above):")
    for line in note:
        print("  - " + line)
    kept = (q > 0).sum(-1)
    want = np.minimum([k for _, k in settings], len(FOOD))
    report.check(
        "5.2 top-k keeps exactly k tokens in every setting",
        str(kept.tolist()),
        str(want.tolist()),
        bool(np.array_equal(kept, want)),
    )
    mat = h.reshape(len(TAUS_52), len(KS_52))
    report.check(
        "5.2 entropy rises with tau at fixed k and with k at fixed tau",
        f"smallest step along tau {float(np.diff(mat, axis=0).min()):+.3f}, along k "
        f"{float(np.diff(mat, axis=1).min()):+.3f} bits",
        "> 0",
        bool(np.all(np.diff(mat, axis=0) > 0) and np.all(np.diff(mat, axis=1) > 0)),
    )
    report.check(
        f"5.2 draw frequencies match the exact distributions ({N_FREQ_52:,} per setting)",
        f"largest deviation {float(zs.max()):.2f} standard errors",
        f"<= {MAX_Z:g}",
        bool(zs.max() <= MAX_Z),
    )

    fig, ax = new_figure(7.5, 5.6)
    ax.grid(False)
    im = ax.imshow(q, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    annotate_cells(ax, [[f"{v:.2f}" for v in row] for row in q], q > 0.6)
    ax.set_xticks(range(len(FOOD)))
    ax.set_xticklabels(FOOD)
    ax.set_yticks(range(len(settings)))
    ax.set_yticklabels([f"tau={t}, k={k}  (H={h[g]:.2f} b)" for g, (t, k) in enumerate(settings)])
    ax.set(xlabel="token", title="5.2: exact distribution of TopK(k, tau) on the food logits")
    fig.colorbar(im, ax=ax, label="probability")
    save_figure(fig, report.path("ex5_2_grid.png"))
    return {
        "settings": [{"tau": t, "k": k} for t, k in settings],
        "exact": q.tolist(),
        "entropy_bits": h.tolist(),
        "first_draws": [[FOOD[i] for i in d[:N_SHOWN_52]] for d in draws],
        "frequencies": freq.tolist(),
        "note": note,
    }
