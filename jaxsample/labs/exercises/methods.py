"""Exercise 5.6 (methods): the notebook's decoding methods on the five-token example.

Greedy, plain sampling, nucleus, and nucleus then top-k, with their diversity
(distinct / total) and coherence (most common share), computed exactly and by
sampling. Nucleus sampling: Holtzman et al., The Curious Case of Neural Text
Degeneration, 2019.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.analysis import (
    expected_coherence,
    expected_distinct_fraction,
)
from jaxsample.labs._plotting import panels, save_figure
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.labs.exercises._common import FOOD, FOOD_LOGITS, MAX_Z
from jaxsample.samplers import (
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    chain,
    probs,
    sample,
)

DECODING_P, DECODING_K, DECODING_TAU = 0.9, 3, 1.0
NUM_SAMPLES_56 = 10
REPEATS_56 = 20_000
REPEATS_56_QUICK = 2_000
NUCLEUS_TAUS = (0.7, 1.0)
NUCLEUS_PS = (0.8, 0.9, 0.95)
HYBRID_PS = (0.8, 0.9)
HYBRID_KS = (2, 3)
METHODS = ("greedy", "stochastic", "nucleus", "hybrid")


def _decoding_strategy(tau: jax.Array, p: jax.Array, k: jax.Array, vocab: int) -> Strategy:
    """The notebook's methods as one structure: nucleus at ``tau``, then top-k.

    ``tau = 0`` is greedy, ``p = 1`` turns the nucleus off and ``k = 0`` the top-k.
    """
    return chain(TopP(p, tau=tau), TopK(k, k_max=vocab))


@functools.partial(jax.jit, static_argnames=("repeats", "num_samples"))
def decoding_methods(
    key: jax.Array,
    z: jax.Array,
    taus: jax.Array,
    ps: jax.Array,
    ks: jax.Array,
    repeats: int,
    num_samples: int,
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions [M, V] and draws int32 [M, repeats, num_samples] of each method.

    Method ``m`` is ``chain(TopP(ps[m], tau=taus[m]), TopK(ks[m]))``; it draws with
    ``fold_in(key, m)``.
    """
    vocab = z.shape[0]
    rows = jnp.broadcast_to(z, (repeats, num_samples, vocab))

    def one(m: jax.Array, t: jax.Array, p: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        s = _decoding_strategy(t, p, k, vocab)
        return probs(z, s), sample(jax.random.fold_in(key, m), rows, s)

    return jax.vmap(one)(jnp.arange(taus.shape[0], dtype=jnp.uint32), taus, ps, ks)


@jax.jit
def _nucleus_grids(
    z: jax.Array,
    n_taus: jax.Array,
    n_ps: jax.Array,
    h_taus: jax.Array,
    h_ps: jax.Array,
    h_ks: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    vocab = z.shape[0]
    nucleus = jax.vmap(lambda t, p: probs(z, TopP(p, tau=t)))(n_taus, n_ps)
    hybrid = jax.vmap(lambda t, p, k: probs(z, _decoding_strategy(t, p, k, vocab)))(
        h_taus, h_ps, h_ks
    )
    return nucleus, hybrid


def exercise(report: LabReport, key: jax.Array, quick: bool) -> dict[str, Any]:
    """Run exercise 5.6 (methods) and add its checks, table and figure to ``report``."""
    z = jnp.asarray(FOOD_LOGITS, jnp.float32)
    vocab = len(FOOD)
    repeats = REPEATS_56_QUICK if quick else REPEATS_56
    # greedy, stochastic, nucleus, nucleus then top-k: one structure, four parameter sets.
    taus = jnp.asarray([0.0, DECODING_TAU, DECODING_TAU, DECODING_TAU], jnp.float32)
    ps = jnp.asarray([1.0, 1.0, DECODING_P, DECODING_P], jnp.float32)
    ks = jnp.asarray([0, 0, 0, DECODING_K], jnp.int32)
    q, draws = decoding_methods(key, z, taus, ps, ks, repeats, NUM_SAMPLES_56)
    q = np.asarray(q, np.float64)
    draws = np.asarray(draws)
    direct = [
        Greedy(),
        Temperature(DECODING_TAU),
        TopP(DECODING_P, tau=DECODING_TAU),
        chain(TopP(DECODING_P, tau=DECODING_TAU), TopK(DECODING_K)),
    ]
    q_direct = np.stack([np.asarray(probs(z, s), np.float64) for s in direct])
    counts = np.stack([np.eye(vocab, dtype=np.int32)[d].sum(-2) for d in draws])  # [M, R, V]
    div = (counts > 0).sum(-1) / NUM_SAMPLES_56
    coh = counts.max(-1) / NUM_SAMPLES_56
    exact_div = [expected_distinct_fraction(qm, NUM_SAMPLES_56) for qm in q]
    exact_coh = [expected_coherence(qm, NUM_SAMPLES_56) for qm in q]
    mean_div, mean_coh = div.mean(-1), coh.mean(-1)
    se_div = div.std(-1, ddof=1) / math.sqrt(repeats)
    se_coh = coh.std(-1, ddof=1) / math.sqrt(repeats)
    # Greedy's batches are all alike: mean and spread differ from exact only by rounding.
    gaps = zip(mean_div - exact_div, se_div, mean_coh - exact_coh, se_coh, strict=True)
    z_pairs = [(z_score(a, b, atol=1e-12), z_score(c, d, atol=1e-12)) for a, b, c, d in gaps]
    z_div = np.abs([zd for zd, _ in z_pairs])
    z_coh = np.abs([zc for _, zc in z_pairs])

    # The notebook's nucleus and hybrid grids, exactly.
    n_set = [(t, p) for t in NUCLEUS_TAUS for p in NUCLEUS_PS]
    h_set = [(t, p, k) for t in NUCLEUS_TAUS for p in HYBRID_PS for k in HYBRID_KS]
    qn, qh = _nucleus_grids(
        z,
        jnp.asarray([t for t, _ in n_set], jnp.float32),
        jnp.asarray([p for _, p in n_set], jnp.float32),
        jnp.asarray([t for t, _, _ in h_set], jnp.float32),
        jnp.asarray([p for _, p, _ in h_set], jnp.float32),
        jnp.asarray([k for _, _, k in h_set], jnp.int32),
    )
    qn, qh = np.asarray(qn, np.float64), np.asarray(qh, np.float64)

    def kept(qrow: np.ndarray[Any, Any]) -> str:
        return ", ".join(f"{FOOD[i]} {qrow[i]:.3f}" for i in np.flatnonzero(qrow > 0))

    print(
        f"\n=== 5.6  Decoding methods on the five-token example (p = {DECODING_P}, k = "
        f"{DECODING_K}, tau = {DECODING_TAU}, {NUM_SAMPLES_56} samples per batch)"
    )
    print_table(
        f"Diversity = distinct / total and coherence = most common share of {NUM_SAMPLES_56} "
        f"samples: exact expectation vs mean of {repeats:,} sampled batches",
        [
            "method",
            "kept tokens (exact probability)",
            "E[div]",
            "sampled",
            "E[coh]",
            "sampled",
            "one batch",
        ],
        [
            [
                m,
                kept(q[i]),
                exact_div[i],
                f"{mean_div[i]:.4f} +/- {se_div[i]:.4f}",
                exact_coh[i],
                f"{mean_coh[i]:.4f} +/- {se_coh[i]:.4f}",
                " ".join(FOOD[j][:3] for j in draws[i, 0]),
            ]
            for i, m in enumerate(METHODS)
        ],
    )
    print_table(
        "The notebook's nucleus grid: kept tokens and their probabilities",
        ["tau", "p", "kept"],
        [[t, p, kept(qn[i])] for i, (t, p) in enumerate(n_set)],
    )
    print_table(
        "The notebook's nucleus-then-top-k grid",
        ["tau", "p", "k", "kept"],
        [[t, p, k, kept(qh[i])] for i, (t, p, k) in enumerate(h_set)],
    )
    print(
        "  A batch of 10 samples is a noisy measure: the sampled diversity and coherence of one\n"
        "  batch scatter widely around the exact expectations above."
    )
    report.check(
        "5.6 the methods' exact distributions equal the direct strategies",
        f"max difference {float(np.max(np.abs(q - q_direct))):.1e}",
        "<= 1e-6",
        bool(np.max(np.abs(q - q_direct)) <= 1e-6),
    )
    report.check(
        "5.6 sampled diversity and coherence match their exact expectations",
        f"largest deviation {float(max(z_div.max(), z_coh.max())):.2f} standard errors",
        f"<= {MAX_Z:g}",
        bool(max(z_div.max(), z_coh.max()) <= MAX_Z),
    )
    order_div = bool(np.all(np.diff([exact_div[i] for i in (0, 3, 2, 1)]) > 0))
    order_coh = bool(np.all(np.diff([exact_coh[i] for i in (0, 3, 2, 1)]) < 0))
    report.check(
        "5.6 exact diversity rises and coherence falls: greedy, hybrid, nucleus, stochastic",
        "diversity "
        + ", ".join(f"{exact_div[i]:.3f}" for i in (0, 3, 2, 1))
        + "; coherence "
        + ", ".join(f"{exact_coh[i]:.3f}" for i in (0, 3, 2, 1)),
        "strictly monotone",
        order_div and order_coh,
    )
    report.check(
        "5.6 greedy: diversity 1/10 and coherence 1 in every batch",
        f"diversity {set(div[0].tolist())}, coherence {set(coh[0].tolist())}",
        "{0.1} and {1.0}",
        bool(np.all(div[0] == 0.1) and np.all(coh[0] == 1.0)),
    )

    fig, axes = panels(11.0, 4.2, 2)
    xs = np.arange(len(METHODS))
    for ax, exact, mean, se, name in (
        (axes[0], exact_div, mean_div, se_div, "diversity (distinct / total)"),
        (axes[1], exact_coh, mean_coh, se_coh, "coherence (most common share)"),
    ):
        ax.bar(xs - 0.2, exact, 0.4, label="exact expectation")
        ax.bar(xs + 0.2, mean, 0.4, yerr=1.96 * se, capsize=3, label=f"mean of {repeats:,} batches")
        ax.plot(
            xs + 0.2, np.stack([div, coh])[0 if "div" in name else 1][:, 0], "kx", label="one batch"
        )
        ax.set_xticks(xs)
        ax.set_xticklabels(METHODS)
        ax.set(
            xlabel="decoding method",
            ylabel=f"{name}, {NUM_SAMPLES_56} samples",
            title=f"5.6: {name.split(' (')[0]}",
            ylim=(0, 1.1),
        )
        ax.legend(fontsize=8)
    save_figure(fig, report.path("ex5_6_methods.png"))
    return {
        "methods": list(METHODS),
        "p": DECODING_P,
        "k": DECODING_K,
        "tau": DECODING_TAU,
        "num_samples": NUM_SAMPLES_56,
        "repeats": repeats,
        "exact": q.tolist(),
        "expected_diversity": exact_div,
        "expected_coherence": exact_coh,
        "sampled_diversity": mean_div.tolist(),
        "sampled_coherence": mean_coh.tolist(),
        "one_batch": [[FOOD[j] for j in draws[i, 0]] for i in range(len(METHODS))],
        "nucleus_grid": [{"tau": t, "p": p, "q": qn[i].tolist()} for i, (t, p) in enumerate(n_set)],
        "hybrid_grid": [
            {"tau": t, "p": p, "k": k, "q": qh[i].tolist()} for i, (t, p, k) in enumerate(h_set)
        ],
    }
