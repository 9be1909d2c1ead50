"""The lab's tables, JSON files and acceptance checks, from its measurements."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxsample.labs._model import model_identity
from jaxsample.labs._report import LabReport, print_table
from jaxsample.labs.top_k_top_p._measure import (
    EQUIV_TAUS,
    EXAMPLE,
    GRID_KS,
    GRID_PS,
    GRID_TAUS,
    KS,
    MASS_TOL,
    N_DRAWS,
    ORDER_P,
    ORDER_SHOWN,
    ORDER_TAUS,
    PROMPTS,
    PS,
    Array,
    Measures,
)
from jaxsample.model import Pretrained


def _top_words(words: tuple[str, ...], q: np.ndarray[Any, Any], n: int) -> list[list[Any]]:
    order = np.argsort(-q, kind="stable")[:n]
    return [[words[i], float(q[i])] for i in order if q[i] > 0]


def print_tables(m: Measures) -> None:
    """Print the per-prompt table, the grid and the temperature-order table."""
    vocab = len(m.words)
    ex = PROMPTS.index(EXAMPLE)
    n_prompts = len(PROMPTS)
    print(f"Top-k and top-p on the Mini-GPT's first-step logits ({n_prompts} prompts, V = {vocab})")
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
                float(m.h1[j]),
                f"{m.words[m.argmax[j]]} {m.q1[j, m.argmax[j]]:.3f}",
                int(m.size_p[pi[0.5], j]),
                int(m.size_p[pi[0.9], j]),
                int(m.size_p[pi[0.99], j]),
                float(m.mass_k[ki[1], j]),
                float(m.mass_k[ki[5], j]),
                float(m.mass_k[ki[20], j]),
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
                    f"{m.h_gk[g, ex]:.3f} ({m.n_gk[g, ex]})"
                    for g, (tt, _) in enumerate(m.grid)
                    if tt == t
                ],
                *[
                    f"{m.h_gp[g, ex]:.3f} ({m.n_gp[g, ex]})"
                    for g, (tt, _) in enumerate(m.grid)
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
                int(m.size_before[i, ex]),
                int(m.size_after[i, ex]),
                float(m.mass_before[i, ex]),
                float(m.mass_after[i, ex]),
                bool(np.array_equal(m.keep_before[i, ex], m.keep_after[i, ex])),
            ]
            for i, t in enumerate(ORDER_TAUS)
        ],
    )


def _grid_entries(
    m: Measures, name: str, values: tuple[Any, ...], h: Array, n: Array, q: Array
) -> list[dict[str, Any]]:
    """One JSON entry per grid setting: tau, the k or p value, entropies, sizes, top words."""
    return [
        {
            "tau": t,
            name: values[i],
            "entropy_bits": h[g].tolist(),
            "kept_size": n[g].tolist(),
            "top_tokens": [_top_words(m.words, q[g, j], 20) for j in range(len(PROMPTS))],
        }
        for g, (t, i) in enumerate(m.grid)
    ]


def save_data(report: LabReport, m: Measures, model: Pretrained, quick: bool) -> None:
    """Record the parameters and write the JSON files."""
    seed = report.seed
    ex = PROMPTS.index(EXAMPLE)
    n_draws = N_DRAWS
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
            "kept_size": m.size_k.T.tolist(),
            "kept_mass": m.mass_k.T.tolist(),
        },
    )
    report.save_json(
        "kept_vs_p.json",
        {
            "tau": 1.0,
            "p": list(PS),
            "prompts": list(PROMPTS),
            "kept_size": m.size_p.T.tolist(),
            "kept_mass": m.mass_p.T.tolist(),
        },
    )
    report.save_json(
        "grids.json",
        {
            "prompts": list(PROMPTS),
            "top_k": _grid_entries(m, "k", GRID_KS, m.h_gk, m.n_gk, m.q_gk_np),
            "top_p": _grid_entries(m, "p", GRID_PS, m.h_gp, m.n_gp, m.q_gp_np),
        },
    )
    report.save_json(
        "temperature_order.json",
        {
            "p": ORDER_P,
            "tau": list(ORDER_TAUS),
            "prompts": list(PROMPTS),
            "kept_size_before": m.size_before.T.tolist(),
            "kept_size_after": m.size_after.T.tolist(),
            "kept_mass_before": m.mass_before.T.tolist(),
            "kept_mass_after": m.mass_after.T.tolist(),
            "example": {
                str(t): {
                    "before": _top_words(m.words, m.before_np[i, ex], 40),
                    "after": _top_words(m.words, m.after_np[i, ex], 40),
                }
                for i, t in enumerate(ORDER_TAUS)
            },
        },
    )


def check(report: LabReport, m: Measures) -> None:
    """Add the acceptance checks."""
    vocab = len(m.words)
    ex = PROMPTS.index(EXAMPLE)
    n_draws = N_DRAWS
    diff_p1 = float(np.max(np.abs(m.eq["q_top_p_1"] - m.eq["q_temperature"])))
    same_draws_p1 = bool(np.array_equal(m.eq["d_top_p_1"], m.eq["d_temperature"]))
    report.check(
        f"top-p 1.0 equals plain temperature sampling on every prompt (tau in {list(EQUIV_TAUS)})",
        f"max |q_top-p - q_temp| = {diff_p1:.1e}; {n_draws} draws per prompt "
        f"{'identical' if same_draws_p1 else 'differ'}",
        "0 and identical",
        diff_p1 == 0.0 and same_draws_p1,
    )
    diff_k1 = float(np.max(np.abs(m.eq["q_top_k_1"] - m.one_hot[None])))
    diff_greedy = float(np.max(np.abs(m.eq["q_greedy"] - m.one_hot)))
    draws_k1 = bool(np.all(m.eq["d_top_k_1"] == m.argmax[None, :, None]))
    draws_greedy = bool(np.all(m.eq["d_greedy"] == m.argmax[:, None]))
    report.check(
        f"top-k 1 equals greedy on every prompt (tau in {list(EQUIV_TAUS)})",
        f"max |q_top-1 - onehot(argmax)| = {diff_k1:.1e}, greedy {diff_greedy:.1e}; draws "
        f"{'all argmax' if draws_k1 and draws_greedy else 'not all argmax'}",
        "0 and every draw the argmax",
        diff_k1 == 0.0 and diff_greedy == 0.0 and draws_k1 and draws_greedy,
    )
    expected_size = np.minimum(np.asarray(m.ks_used), vocab)[:, None]
    report.check(
        "top-k keeps exactly min(k, V) tokens on every prompt",
        f"{int(np.sum(m.size_k == expected_size))}/{m.size_k.size} (k, prompt) pairs",
        f"{m.size_k.size}/{m.size_k.size}",
        bool(np.all(m.size_k == expected_size)),
    )
    worst_k = float(np.min(np.diff(m.mass_k, axis=0)))
    report.check(
        "top-k kept mass is non-decreasing in k and 1 at k = V",
        f"smallest step {worst_k:+.1e}; mass at k = V: {float(np.min(m.mass_k[-1])):.6f}",
        f">= -{MASS_TOL:g}; 1 within {MASS_TOL:g}",
        worst_k >= -MASS_TOL and bool(np.all(np.abs(m.mass_k[-1] - 1) <= MASS_TOL)),
    )
    ps_col = np.asarray(PS)[:, None]
    short = m.mass_p - ps_col
    surplus = m.mass_p - m.smallest_p - ps_col
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
    steps_before = np.diff(m.size_before, axis=0)
    report.check(
        f"temperature before the cut: nucleus size (p = {ORDER_P}) never shrinks as tau grows, "
        "on every prompt",
        f'sizes on "{EXAMPLE}": {m.size_before[:, ex].tolist()}; smallest step '
        f"{int(steps_before.min())}",
        "every step >= 0",
        bool(np.all(steps_before >= 0)),
    )
    i_one = ORDER_TAUS.index(1.0)
    invariant = bool(np.all(m.keep_after == m.keep_after[i_one][None]))
    report.check(
        "temperature after the cut: the kept set is the tau = 1 nucleus at every tau",
        f'sizes on "{EXAMPLE}": {m.size_after[:, ex].tolist()}',
        "identical sets",
        invariant,
    )
    shown = [ORDER_TAUS.index(t) for t in ORDER_SHOWN]
    differ = [not np.array_equal(m.keep_before[i, ex], m.keep_after[i, ex]) for i in shown]
    report.check(
        f'before vs after differ on "{EXAMPLE}" at tau = {list(ORDER_SHOWN)} (p = {ORDER_P})',
        ", ".join(
            f"tau {ORDER_TAUS[i]}: {m.size_before[i, ex]} vs {m.size_after[i, ex]} tokens"
            for i in shown
        ),
        "different kept sets at both",
        all(differ),
    )
