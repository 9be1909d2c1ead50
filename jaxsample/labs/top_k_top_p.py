"""Lab: top-k and top-p (nucleus) truncation on the Mini-GPT's first-step logits.

For several prompts (different time markers and subjects, and one mid-sentence
prompt whose next word is a verb) the lab measures, each sweep in one vmapped and
jitted call:

* the kept-set size and kept mass against k and against p;
* the exact distributions over a grid of (tau, k) and of (tau, p) settings
  (heatmaps, with the entropy and kept size of every setting);
* that top-p 1.0 is plain temperature sampling and top-k 1 is greedy, exactly
  (bitwise-equal distributions and identical draws) on every prompt;
* what changes when the temperature is applied before the nucleus is cut
  (``TopP(p, tau)``, the usual order) or after it
  (``chain(TopP(p), Temperature(tau))``).

Nucleus sampling: Holtzman, Buys, Du, Forbes, Choi. The Curious Case of Neural Text
Degeneration. ICLR 2020 (arXiv:1904.09751, 2019).
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.analysis import kept_mass, kept_set_size
from jaxsample.labs._model import first_step_logits, model_identity
from jaxsample.labs._plotting import panels, save_figure
from jaxsample.labs._report import LabReport, print_table
from jaxsample.model import Pretrained, load_pretrained
from jaxsample.samplers import Greedy, Temperature, TopK, TopP, chain, entropy, probs, sample

__all__ = [
    "GRID_KS",
    "GRID_PS",
    "GRID_TAUS",
    "KS",
    "ORDER_P",
    "ORDER_TAUS",
    "PROMPTS",
    "PS",
    "kept_against_k",
    "kept_against_p",
    "run",
    "temperature_order",
    "truncation_grid",
]

#: Prompts: every tense, several subjects, and a prompt whose next word is the verb.
PROMPTS = (
    "Tomorrow she",
    "Yesterday Tom",
    "Every day I",
    "Right now they",
    "Next week we",
    "Usually Anna",
    "Tomorrow she will",
)
#: The prompt of the heatmaps and of the temperature-order example.
EXAMPLE = "Tomorrow she"
KS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 995)
PS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
GRID_TAUS = (0.5, 1.0, 1.5, 2.0)
GRID_KS = (1, 3, 10, 50)
GRID_PS = (0.3, 0.6, 0.9, 0.99)
#: Temperatures of the before/after comparison and the nucleus mass used there.
ORDER_TAUS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ORDER_P = 0.9
#: The two temperatures shown in the before/after figure.
ORDER_SHOWN = (0.5, 2.0)
#: Temperatures at which top-p 1.0 and top-k 1 are compared with their equivalents.
EQUIV_TAUS = (0.5, 1.0, 2.0)
N_DRAWS = 500
#: Float32 rounding allowed when a kept mass is re-summed (the filter itself decides
#: boundaries within 1e-6 of p).
MASS_TOL = 1e-5
#: Columns of the distribution heatmaps: this many most likely tokens, then "rest".
HEATMAP_TOKENS = 12


@functools.partial(jax.jit, static_argnames=("k_max",))
def kept_against_k(z: jax.Array, ks: jax.Array, k_max: int) -> tuple[jax.Array, jax.Array]:
    """Kept-set size int32 [K, P] and kept mass float32 [K, P] of top-k at tau = 1.

    Args:
        z: logits float32 [P, V].
        ks: int32 [K].
        k_max: static bound on k (the vocabulary size here).
    """
    ref = probs(z, Temperature(1.0))

    def one(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        q = probs(z, TopK(k, k_max=k_max))
        return kept_set_size(q), kept_mass(q, ref)

    return jax.vmap(one)(ks)


@jax.jit
def kept_against_p(z: jax.Array, ps: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Kept size int32 [S, P], kept mass float32 [S, P] and the smallest kept probability.

    The third output, float32 [S, P], is the untruncated probability of the least
    likely kept token (used to check that the nucleus is minimal).

    Args:
        z: logits float32 [P, V].
        ps: float32 [S].
    """
    ref = probs(z, Temperature(1.0))

    def one(p: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        q = probs(z, TopP(p))
        smallest = jnp.min(jnp.where(q > 0, ref, jnp.inf), axis=-1)
        return kept_set_size(q), kept_mass(q, ref), smallest

    return jax.vmap(one)(ps)


@functools.partial(jax.jit, static_argnames=("k_max",))
def truncation_grid(
    z: jax.Array, taus: jax.Array, ks: jax.Array, ps: jax.Array, k_max: int
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions under every (tau, k) and every (tau, p) pair.

    Args:
        z: logits float32 [P, V].
        taus: float32 [G], paired element-wise with ``ks`` and with ``ps``.
        ks: int32 [G].
        ps: float32 [G].
        k_max: static bound on k.

    Returns:
        ``(q_topk, q_topp)``, each float32 [G, P, V].
    """
    q_k = jax.vmap(lambda t, k: probs(z, TopK(k, tau=t, k_max=k_max)))(taus, ks)
    q_p = jax.vmap(lambda t, p: probs(z, TopP(p, tau=t)))(taus, ps)
    return q_k, q_p


@jax.jit
def temperature_order(
    z: jax.Array, taus: jax.Array, p: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Nucleus with the temperature before and after the cut, for every tau.

    Args:
        z: logits float32 [P, V].
        taus: float32 [T].
        p: float32 scalar nucleus mass.

    Returns:
        ``(before, after, reference)``, each float32 [T, P, V]: ``TopP(p, tau)``,
        ``chain(TopP(p), Temperature(tau))`` and ``Temperature(tau)``.
    """
    before = jax.vmap(lambda t: probs(z, TopP(p, tau=t)))(taus)
    after = jax.vmap(lambda t: probs(z, chain(TopP(p), Temperature(t))))(taus)
    reference = jax.vmap(lambda t: probs(z, Temperature(t)))(taus)
    return before, after, reference


@jax.jit
def _equivalences(
    key: jax.Array, z: jax.Array, taus: jax.Array, seeds: jax.Array
) -> dict[str, jax.Array]:
    """Distributions [T, P, V] and draws [T, P, D] of the strategies compared exactly."""
    rows = jnp.broadcast_to(z[:, None, :], (z.shape[0], seeds.shape[0], z.shape[1]))
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    keys = jnp.broadcast_to(keys[None, :], rows.shape[:2])

    def per_tau(t: jax.Array) -> dict[str, jax.Array]:
        return {
            "q_top_p_1": probs(z, TopP(1.0, tau=t)),
            "q_temperature": probs(z, Temperature(t)),
            "q_top_k_1": probs(z, TopK(1, tau=t)),
            "d_top_p_1": sample(keys, rows, TopP(1.0, tau=t)),
            "d_temperature": sample(keys, rows, Temperature(t)),
            "d_top_k_1": sample(keys, rows, TopK(1, tau=t)),
        }

    out: dict[str, jax.Array] = jax.vmap(per_tau)(taus)
    out["q_greedy"] = probs(z, Greedy())
    out["d_greedy"] = sample(keys, rows, Greedy())
    return out


def _top_words(words: tuple[str, ...], q: np.ndarray[Any, Any], n: int) -> list[list[Any]]:
    order = np.argsort(-q, kind="stable")[:n]
    return [[words[i], float(q[i])] for i in order if q[i] > 0]


def run(
    out_dir: Path, seed: int = 0, model: Pretrained | None = None, quick: bool = False
) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the draws in the equivalence checks; draw ``d`` of every
            prompt uses ``fold_in(key(seed), d)``.
        model: the model; the shipped Mini-GPT when ``None``.
        quick: accepted for a uniform interface. The quick run is the full run: its
            time is compilation, and the equivalence checks need all their draws to
            catch a sampler that differs from another on a few draws in a thousand.

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("top-k-top-p", out_dir, seed)
    model = load_pretrained() if model is None else model
    words = tuple(model.tokenizer.vocab)
    vocab = len(words)
    z = jnp.stack([first_step_logits(model, p) for p in PROMPTS])  # [P, V]
    n_prompts = len(PROMPTS)
    ex = PROMPTS.index(EXAMPLE)
    ks_used = tuple(min(k, vocab) for k in KS)

    # 1. Kept set against k and against p (tau = 1).
    size_k, mass_k = (
        np.asarray(a) for a in kept_against_k(z, jnp.asarray(ks_used, jnp.int32), vocab)
    )
    size_p, mass_p, smallest_p = (
        np.asarray(a, np.float64) for a in kept_against_p(z, jnp.asarray(PS, jnp.float32))
    )
    size_p = size_p.astype(np.int64)
    mass_k = mass_k.astype(np.float64)

    # 2. The (tau, k) and (tau, p) grids.
    grid = list(itertools.product(GRID_TAUS, range(len(GRID_KS))))
    g_taus = jnp.asarray([t for t, _ in grid], jnp.float32)
    g_ks = jnp.asarray([GRID_KS[i] for _, i in grid], jnp.int32)
    g_ps = jnp.asarray([GRID_PS[i] for _, i in grid], jnp.float32)
    q_gk, q_gp = truncation_grid(z, g_taus, g_ks, g_ps, vocab)
    h_gk = np.asarray(entropy(q_gk), np.float64) + 0.0  # [G, P]; + 0.0 turns -0.0 into 0.0
    h_gp = np.asarray(entropy(q_gp), np.float64) + 0.0
    n_gk = np.asarray(kept_set_size(q_gk))
    n_gp = np.asarray(kept_set_size(q_gp))
    q_gk_np = np.asarray(q_gk, np.float64)
    q_gp_np = np.asarray(q_gp, np.float64)

    # 3. Temperature before / after the nucleus.
    before, after, ref = temperature_order(
        z, jnp.asarray(ORDER_TAUS, jnp.float32), jnp.float32(ORDER_P)
    )
    keep_before = np.asarray(before) > 0  # [T, P, V]
    keep_after = np.asarray(after) > 0
    size_before = keep_before.sum(-1)
    size_after = keep_after.sum(-1)
    mass_before = np.asarray(kept_mass(before, ref), np.float64)
    mass_after = np.asarray(kept_mass(after, ref), np.float64)
    before_np, after_np = np.asarray(before, np.float64), np.asarray(after, np.float64)

    # 4. Exact equivalences.
    n_draws = N_DRAWS
    eq = {
        k: np.asarray(v)
        for k, v in _equivalences(
            jax.random.key(seed),
            z,
            jnp.asarray(EQUIV_TAUS, jnp.float32),
            jnp.arange(n_draws, dtype=jnp.uint32),
        ).items()
    }
    argmax = np.argmax(np.asarray(z), axis=-1)
    one_hot = np.eye(vocab, dtype=np.float32)[argmax]

    # Tables.
    print(f"Top-k and top-p on the Mini-GPT's first-step logits ({n_prompts} prompts, V = {vocab})")
    q1 = np.asarray(probs(z, Temperature(1.0)), np.float64)
    h1 = np.asarray(entropy(jnp.asarray(q1, jnp.float32)), np.float64)
    pi = {p: PS.index(p) for p in (0.5, 0.9, 0.99)}
    ki = {k: KS.index(k) for k in (1, 5, 20)}
    print_table(
        "Per prompt at tau = 1: entropy, nucleus size at p, top-k mass at k",
        [
            "prompt",
            "H bits",
            "most likely",
            "|p=0.5|",
            "|p=0.9|",
            "|p=0.99|",
            "mass k=1",
            "mass k=5",
            "mass k=20",
        ],
        [
            [
                f'"{p}"',
                float(h1[j]),
                f"{words[argmax[j]]} {q1[j, argmax[j]]:.3f}",
                int(size_p[pi[0.5], j]),
                int(size_p[pi[0.9], j]),
                int(size_p[pi[0.99], j]),
                float(mass_k[ki[1], j]),
                float(mass_k[ki[5], j]),
                float(mass_k[ki[20], j]),
            ]
            for j, p in enumerate(PROMPTS)
        ],
    )
    print_table(
        f'Grid on "{EXAMPLE}": entropy in bits (kept tokens)',
        ["tau", *[f"k={k}" for k in GRID_KS], *[f"p={p}" for p in GRID_PS]],
        [
            [
                t,
                *[
                    f"{h_gk[g, ex]:.3f} ({n_gk[g, ex]})"
                    for g, (tt, _) in enumerate(grid)
                    if tt == t
                ],
                *[
                    f"{h_gp[g, ex]:.3f} ({n_gp[g, ex]})"
                    for g, (tt, _) in enumerate(grid)
                    if tt == t
                ],
            ]
            for t in GRID_TAUS
        ],
    )
    print_table(
        f'Nucleus p = {ORDER_P} on "{EXAMPLE}": temperature before vs after the cut',
        ["tau", "kept before", "kept after", "mass before", "mass after", "same set"],
        [
            [
                t,
                int(size_before[i, ex]),
                int(size_after[i, ex]),
                float(mass_before[i, ex]),
                float(mass_after[i, ex]),
                bool(np.array_equal(keep_before[i, ex], keep_after[i, ex])),
            ]
            for i, t in enumerate(ORDER_TAUS)
        ],
    )

    # JSON.
    report.parameters = {
        "prompts": list(PROMPTS),
        "example_prompt": EXAMPLE,
        "ks": list(KS),
        "ps": list(PS),
        "grid_taus": list(GRID_TAUS),
        "grid_ks": list(GRID_KS),
        "grid_ps": list(GRID_PS),
        "order_taus": list(ORDER_TAUS),
        "order_p": ORDER_P,
        "equivalence_taus": list(EQUIV_TAUS),
        "n_draws": n_draws,
        "draw_keys": f"fold_in(jax.random.key({seed}), d) for d in 0..{n_draws - 1}",
        "mass_tolerance": MASS_TOL,
        "quick": quick,
    }
    report.extra["model"] = model_identity(model)
    report.save_json(
        "kept_vs_k.json",
        {
            "tau": 1.0,
            "k": list(KS),
            "prompts": list(PROMPTS),
            "kept_size": size_k.T.tolist(),
            "kept_mass": mass_k.T.tolist(),
        },
    )
    report.save_json(
        "kept_vs_p.json",
        {
            "tau": 1.0,
            "p": list(PS),
            "prompts": list(PROMPTS),
            "kept_size": size_p.T.tolist(),
            "kept_mass": mass_p.T.tolist(),
        },
    )
    report.save_json(
        "grids.json",
        {
            "prompts": list(PROMPTS),
            "top_k": [
                {
                    "tau": t,
                    "k": GRID_KS[i],
                    "entropy_bits": h_gk[g].tolist(),
                    "kept_size": n_gk[g].tolist(),
                    "top_tokens": [_top_words(words, q_gk_np[g, j], 20) for j in range(n_prompts)],
                }
                for g, (t, i) in enumerate(grid)
            ],
            "top_p": [
                {
                    "tau": t,
                    "p": GRID_PS[i],
                    "entropy_bits": h_gp[g].tolist(),
                    "kept_size": n_gp[g].tolist(),
                    "top_tokens": [_top_words(words, q_gp_np[g, j], 20) for j in range(n_prompts)],
                }
                for g, (t, i) in enumerate(grid)
            ],
        },
    )
    report.save_json(
        "temperature_order.json",
        {
            "p": ORDER_P,
            "tau": list(ORDER_TAUS),
            "prompts": list(PROMPTS),
            "kept_size_before": size_before.T.tolist(),
            "kept_size_after": size_after.T.tolist(),
            "kept_mass_before": mass_before.T.tolist(),
            "kept_mass_after": mass_after.T.tolist(),
            "example": {
                str(t): {
                    "before": _top_words(words, before_np[i, ex], 40),
                    "after": _top_words(words, after_np[i, ex], 40),
                }
                for i, t in enumerate(ORDER_TAUS)
            },
        },
    )

    # Plots.
    _plot_kept_vs_k(report, size_k, mass_k, vocab)
    _plot_kept_vs_p(report, size_p, mass_p)
    _plot_heatmaps(report, words, q1[ex], grid, q_gk_np[:, ex], q_gp_np[:, ex])
    _plot_grid_entropy(report, grid, h_gk[:, ex], n_gk[:, ex], h_gp[:, ex], n_gp[:, ex])
    _plot_order(report, words, before_np[:, ex], after_np[:, ex], np.asarray(ref)[:, ex])

    # Acceptance.
    diff_p1 = float(np.max(np.abs(eq["q_top_p_1"] - eq["q_temperature"])))
    same_draws_p1 = bool(np.array_equal(eq["d_top_p_1"], eq["d_temperature"]))
    report.check(
        f"top-p 1.0 equals plain temperature sampling on every prompt (tau in {list(EQUIV_TAUS)})",
        f"max |q_top-p - q_temp| = {diff_p1:.1e}; {n_draws} draws per prompt "
        f"{'identical' if same_draws_p1 else 'differ'}",
        "0 and identical",
        diff_p1 == 0.0 and same_draws_p1,
    )
    diff_k1 = float(np.max(np.abs(eq["q_top_k_1"] - one_hot[None])))
    diff_greedy = float(np.max(np.abs(eq["q_greedy"] - one_hot)))
    draws_k1 = bool(np.all(eq["d_top_k_1"] == argmax[None, :, None]))
    draws_greedy = bool(np.all(eq["d_greedy"] == argmax[:, None]))
    report.check(
        f"top-k 1 equals greedy on every prompt (tau in {list(EQUIV_TAUS)})",
        f"max |q_top-1 - onehot(argmax)| = {diff_k1:.1e}, greedy {diff_greedy:.1e}; draws "
        f"{'all argmax' if draws_k1 and draws_greedy else 'not all argmax'}",
        "0 and every draw the argmax",
        diff_k1 == 0.0 and diff_greedy == 0.0 and draws_k1 and draws_greedy,
    )
    expected_size = np.minimum(np.asarray(ks_used), vocab)[:, None]
    report.check(
        "top-k keeps exactly min(k, V) tokens on every prompt",
        f"{int(np.sum(size_k == expected_size))}/{size_k.size} (k, prompt) pairs",
        f"{size_k.size}/{size_k.size}",
        bool(np.all(size_k == expected_size)),
    )
    worst_k = float(np.min(np.diff(mass_k, axis=0)))
    report.check(
        "top-k kept mass is non-decreasing in k and 1 at k = V",
        f"smallest step {worst_k:+.1e}; mass at k = V: {float(np.min(mass_k[-1])):.6f}",
        f">= -{MASS_TOL:g}; 1 within {MASS_TOL:g}",
        worst_k >= -MASS_TOL and bool(np.all(np.abs(mass_k[-1] - 1) <= MASS_TOL)),
    )
    ps_col = np.asarray(PS)[:, None]
    short = mass_p - ps_col
    surplus = mass_p - smallest_p - ps_col
    report.check(
        "the nucleus reaches p: kept mass >= p for every (p, prompt)",
        f"smallest (mass - p) = {float(np.min(short)):+.2e}",
        f">= -{MASS_TOL:g}",
        bool(np.all(short >= -MASS_TOL)),
    )
    report.check(
        "the nucleus is minimal: dropping its least likely token falls below p",
        f"largest (mass - smallest kept - p) = {float(np.max(surplus)):+.2e}",
        f"< {MASS_TOL:g}",
        bool(np.all(surplus < MASS_TOL)),
    )
    steps_before = np.diff(size_before, axis=0)
    report.check(
        f"temperature before the cut: nucleus size (p = {ORDER_P}) never shrinks as tau grows, "
        "on every prompt",
        f'sizes on "{EXAMPLE}": {size_before[:, ex].tolist()}; smallest step '
        f"{int(steps_before.min())}",
        "every step >= 0",
        bool(np.all(steps_before >= 0)),
    )
    i_one = ORDER_TAUS.index(1.0)
    invariant = bool(np.all(keep_after == keep_after[i_one][None]))
    report.check(
        "temperature after the cut: the kept set is the tau = 1 nucleus at every tau",
        f'sizes on "{EXAMPLE}": {size_after[:, ex].tolist()}',
        "identical sets",
        invariant,
    )
    shown = [ORDER_TAUS.index(t) for t in ORDER_SHOWN]
    differ = [not np.array_equal(keep_before[i, ex], keep_after[i, ex]) for i in shown]
    report.check(
        f'before vs after differ on "{EXAMPLE}" at tau = {list(ORDER_SHOWN)} (p = {ORDER_P})',
        ", ".join(
            f"tau {ORDER_TAUS[i]}: {size_before[i, ex]} vs {size_after[i, ex]} tokens"
            for i in shown
        ),
        "different kept sets at both",
        all(differ),
    )
    report.write_manifest()
    report.print_checks()
    return report


def _plot_kept_vs_k(
    report: LabReport, size_k: np.ndarray[Any, Any], mass_k: np.ndarray[Any, Any], vocab: int
) -> None:
    fig, (ax1, ax2) = panels(11.0, 4.4, 2)
    ax1.plot(KS, size_k[:, 0], "o-", label="every prompt (identical)")
    ax1.plot(KS, np.minimum(KS, vocab), "k:", label="min(k, V)")
    ax1.set(
        xscale="log",
        yscale="log",
        xlabel="k (log scale)",
        ylabel="kept tokens (log scale)",
        title="Top-k: kept-set size against k",
    )
    ax1.legend()
    for j, p in enumerate(PROMPTS):
        ax2.plot(KS, mass_k[:, j], "o-", ms=3, label=f'"{p}"')
    ax2.set(
        xscale="log",
        xlabel="k (log scale)",
        ylabel="kept probability mass at tau = 1",
        title="Top-k: kept mass against k",
        ylim=(0, 1.02),
    )
    ax2.legend(fontsize=8)
    save_figure(fig, report.path("kept_vs_k.png"))


def _plot_kept_vs_p(
    report: LabReport, size_p: np.ndarray[Any, Any], mass_p: np.ndarray[Any, Any]
) -> None:
    fig, (ax1, ax2) = panels(11.0, 4.4, 2)
    for j, p in enumerate(PROMPTS):
        ax1.step(PS, size_p[:, j], where="post", marker="o", ms=3, label=f'"{p}"')
        ax2.plot(PS, mass_p[:, j], "o-", ms=3, label=f'"{p}"')
    ax1.set(
        yscale="log",
        xlabel="nucleus mass p",
        ylabel="kept tokens (log scale)",
        title="Top-p: kept-set size against p (tau = 1)",
    )
    ax1.legend(fontsize=8)
    ax2.plot([0, 1], [0, 1], "k:", label="kept mass = p")
    ax2.set(
        xlabel="nucleus mass p",
        ylabel="kept probability mass at tau = 1",
        title="Top-p: kept mass against p (always >= p)",
    )
    ax2.legend(fontsize=8)
    save_figure(fig, report.path("kept_vs_p.png"))


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
        for r in range(mat.shape[0]):
            for c in range(mat.shape[1]):
                v = mat[r, c]
                if v >= 0.005:
                    ax.text(
                        c,
                        r,
                        f"{v:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="black" if v > 0.6 else "white",
                    )
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
        for r in range(mat.shape[0]):
            for c in range(mat.shape[1]):
                ax.text(
                    c,
                    r,
                    f"{mat[r, c]:.2f} b\n{cnt[r, c]} kept",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if mat[r, c] < 0.6 * vmax else "black",
                )
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
            yscale="log",
            ylim=(floor, 1.5),
            xlim=(-0.7, n_show - 0.3),
            xlabel=f"next token, most likely first ({n_show} shown{more})",
            ylabel="probability (log scale)",
            title=f'Temperature before vs after the nucleus, tau = {t}, "{EXAMPLE}"',
        )
        ax.title.set_fontsize(10)
        ax.legend(fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.32), frameon=False)
    save_figure(fig, report.path("temperature_order.png"))
