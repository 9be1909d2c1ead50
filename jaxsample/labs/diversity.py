"""Lab: diversity against correctness of sampled verb completions.

Twenty-four verb-completion prompts (every time marker, every subject twice) are
completed ``N`` times by the shipped Mini-GPT under a grid of strategies: greedy,
six temperatures, top-k, top-p (nucleus; Holtzman et al., 2019), compositions of
the two, and min-p (Nguyen et al., 2024), locally typical sampling (Meister et al.,
2022) and top-n-sigma (Tang et al., 2024) at temperatures 1 to 3. Strategies of one
family share one decoding call: their parameters are per-row arrays, so the whole
grid takes seven jitted ``lax.scan`` generations.

For each strategy the lab measures

* correctness: the share of completions the grammar checker accepts
  (:func:`jaxsample.data.check_completion`);
* diversity, per prompt and then averaged over the prompts: distinct-1 and
  distinct-2 of the ``N`` completions (Li et al., 2016) and the number of
  distinct completions;

and plots one point per strategy, distinct-2 against correctness, with the Pareto
front (no other strategy is both at least as diverse and at least as correct)
marked.

Checks (they decide the exit status): greedy gives one completion per prompt
whatever the key, and along the temperature ladder neither diversity falls nor
correctness rises by more than ``Z_NOISE`` standard errors. Findings (reported,
never a failure): greedy is the most correct and the least diverse strategy,
diversity rises strictly with temperature, a high temperature costs correctness,
truncation restores correctness at tau = 1, a truncated strategy lies on the
Pareto front, and, the min-p paper's claim, min-p keeps correctness at a high
temperature (tau 3) where top-p collapses.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from jaxsample.analysis import distinct_completions, distinct_n, pareto_front
from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    SUBJECTS,
    TIME_MARKERS,
    check_completion,
    generate_corpus,
    heldout_prompts,
)
from jaxsample.decoding import completion_ids, generate_ids
from jaxsample.labs._model import model_identity
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.plotting import new_figure, place_labels, save_figure
from jaxsample.progress import Progress
from jaxsample.samplers import (
    MinP,
    Strategy,
    Temperature,
    TopK,
    TopNSigma,
    TopP,
    Typical,
    chain,
)
from jaxsample.training import Pretrained, load_pretrained

__all__ = ["SETTINGS", "Setting", "family_strategy", "lab_prompts", "run"]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One point of the grid.

    Attributes:
        label: name shown in tables and plots.
        family: which decoding call it joins: one of ``FAMILIES``.
        tau: temperature (0 is greedy), applied before any truncation.
        k: top-k (0 disables it).
        p: nucleus mass (1 disables it).
        q: the parameter of the families ``"min-p"`` (min_p), ``"typical"`` (the
            mass) and ``"top-n-sigma"`` (n).
    """

    label: str
    family: str
    tau: float
    k: int = 0
    p: float = 1.0
    q: float = 0.0


#: Temperatures of the min-p, typical and top-n-sigma curves (and of top-p 0.9).
HOT_LADDER = (1.0, 1.5, 2.0, 3.0)

SETTINGS: tuple[Setting, ...] = (
    Setting("greedy (tau 0)", "temperature", 0.0),
    Setting("tau 0.5", "temperature", 0.5),
    Setting("tau 0.7", "temperature", 0.7),
    Setting("tau 1.0", "temperature", 1.0),
    Setting("tau 1.5", "temperature", 1.5),
    Setting("tau 2.0", "temperature", 2.0),
    Setting("tau 3.0", "temperature", 3.0),
    Setting("top-k 5", "top-k", 1.0, k=5),
    Setting("top-k 20", "top-k", 1.0, k=20),
    Setting("top-k 20, tau 2", "top-k", 2.0, k=20),
    Setting("top-p 0.5", "top-p", 1.0, p=0.5),
    Setting("top-p 0.9", "top-p", 1.0, p=0.9),
    Setting("top-p 0.9, tau 2", "top-p", 2.0, p=0.9),
    Setting("tau 0.7, k 40, p 0.9", "top-k+top-p", 0.7, k=40, p=0.9),
    Setting("tau 1.5, k 20, p 0.95", "top-k+top-p", 1.5, k=20, p=0.95),
    Setting("tau 2, k 10, p 0.9", "top-k+top-p", 2.0, k=10, p=0.9),
    Setting("top-p 0.9, tau 1.5", "top-p", 1.5, p=0.9),
    Setting("top-p 0.9, tau 3", "top-p", 3.0, p=0.9),
    *(
        Setting(f"{name} {q:g}, tau {tau:g}", family, tau, q=q)
        for family, name, q in (
            ("min-p", "min-p", 0.1),
            ("typical", "typical", 0.9),
            ("top-n-sigma", "top-n-sigma", 1.0),
        )
        for tau in HOT_LADDER
    ),
)
FAMILIES = ("temperature", "top-k", "top-p", "top-k+top-p", "min-p", "typical", "top-n-sigma")
FAMILY_COLORS = {
    "temperature": "tab:blue",
    "top-k": "tab:orange",
    "top-p": "tab:green",
    "top-k+top-p": "tab:purple",
    "min-p": "tab:red",
    "typical": "tab:brown",
    "top-n-sigma": "tab:olive",
}
#: Static top-k bound of the per-row top-k strategies (every k of the grid is below it).
K_MAX = 64
N_COMPLETIONS = 20
N_QUICK = 4
N_PROMPTS_QUICK = 8
#: Pairs (truncated setting, pure-temperature setting at the same tau) whose
#: correctness is compared (at the model's own temperature, tau = 1).
TRUNCATION_PAIRS = (("top-k 20", "tau 1.0"), ("top-p 0.9", "tau 1.0"))
#: The same comparison at a high temperature, reported without a check.
HOT_PAIRS = (("top-k 20, tau 2", "tau 2.0"), ("top-p 0.9, tau 2", "tau 2.0"))
#: Standard errors by which a correctness difference must exceed zero to count.
Z_SIGNIFICANT = 3.0
#: Standard errors of sampling noise tolerated in "correctness falls with temperature".
Z_NOISE = 2.0


def lab_prompts() -> list[str]:
    """The 24 prompts: every time marker with three subjects, each subject used twice.

    They are taken from :func:`jaxsample.data.heldout_prompts` (marker ``m`` with
    subjects ``3m, 3m + 1, 3m + 2`` modulo 12).
    """
    everything = heldout_prompts(generate_corpus())
    n_subj = len(SUBJECTS)
    return [
        everything[m * n_subj + (3 * m + j) % n_subj]
        for m in range(len(TIME_MARKERS))
        for j in range(3)
    ]


def family_strategy(
    family: str, tau: jax.Array, k: jax.Array, p: jax.Array, q: jax.Array | None = None
) -> Strategy:
    """The strategy of a family with per-row parameters (arrays of shape [B]).

    Args:
        family: one of ``FAMILIES``.
        tau: float32 [B] temperatures.
        k: int32 [B] top-k values (used by the top-k families).
        p: float32 [B] nucleus masses (used by the top-p families).
        q: float32 [B] min-p values, typical masses or top-n-sigma ``n`` (used by
            those families).

    Returns:
        ``Temperature(tau)``, ``TopK(k, tau)``, ``TopP(p, tau)``,
        ``chain(TopK(k, tau), TopP(p))``, ``MinP(q, tau)``, ``Typical(q, tau)`` or
        ``TopNSigma(q, tau)`` (temperature first in every family).

    Raises:
        ValueError: for an unknown family, or a missing ``q``.
    """
    if family in ("min-p", "typical", "top-n-sigma"):
        if q is None:
            raise ValueError(f"family {family!r} needs q")
        if family == "min-p":
            return MinP(q, tau=tau)
        if family == "typical":
            return Typical(q, tau=tau)
        return TopNSigma(q, tau=tau)
    if family == "temperature":
        return Temperature(tau)
    if family == "top-k":
        return TopK(k, tau=tau, k_max=K_MAX)
    if family == "top-p":
        return TopP(p, tau=tau)
    if family == "top-k+top-p":
        return chain(TopK(k, tau=tau, k_max=K_MAX), TopP(p))
    raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")


@jax.jit
def _row_keys(
    key: jax.Array, setting: jax.Array, prompt: jax.Array, sample: jax.Array
) -> jax.Array:
    """Key of completion ``sample`` of ``prompt`` under ``setting``: three nested fold_ins."""

    def one(s: jax.Array, j: jax.Array, i: jax.Array) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, s), j), i)

    return jax.vmap(one)(setting, prompt, sample)


def _binomial_se(rate: float, n: int) -> float:
    """Standard error of a share of ``n`` trials, with one success and one failure added.

    The adjustment (Agresti and Caffo, 2000) keeps it above 0 when the share is
    exactly 0 or 1, so a difference of two shares is never "infinitely" significant.
    """
    adjusted = (rate * n + 1) / (n + 2)
    return math.sqrt(adjusted * (1 - adjusted) / (n + 2))


def _gap_in_se(a: dict[str, Any], b: dict[str, Any]) -> float:
    """(a - b) correctness in standard errors of the difference (independent samples)."""
    return z_score(
        a["correctness"] - b["correctness"], math.hypot(a["correctness_se"], b["correctness_se"])
    )


def _paired_step_in_se(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``b - a`` over prompts and that mean in standard errors (paired by prompt)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), z_score(float(d.mean()), se)


def run(
    out_dir: Path, seed: int = 0, model: Pretrained | None = None, quick: bool = False
) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the completions: completion ``i`` of prompt ``j`` under setting
            ``s`` uses the key ``fold_in(fold_in(fold_in(key(seed), s), j), i)``.
        model: the model; the shipped Mini-GPT when ``None``.
        quick: 8 prompts and 4 completions each (for smoke tests).

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("diversity-vs-correctness", out_dir, seed)
    model = load_pretrained() if model is None else model
    tok = model.tokenizer
    prompts = lab_prompts()
    if quick:
        prompts = prompts[:: len(prompts) // N_PROMPTS_QUICK][:N_PROMPTS_QUICK]
    n = N_QUICK if quick else N_COMPLETIONS
    prompt_ids = [tok.encode(p, bos=True) for p in prompts]
    max_new = MAX_SENTENCE_WORDS - min(len(p.split()) for p in prompts) + 1
    key = jax.random.key(seed)

    # One decoding call per family; rows ordered (setting, prompt, sample).
    texts: dict[int, list[list[str]]] = {}
    ids: dict[int, list[list[tuple[int, ...]]]] = {}
    with Progress(len(FAMILIES), "diversity-vs-correctness", "decoding calls") as progress:
        for family in FAMILIES:
            members = [s for s, st in enumerate(SETTINGS) if st.family == family]
            rows = [(s, j, i) for s in members for j in range(len(prompts)) for i in range(n)]
            s_idx, j_idx, i_idx = (jnp.asarray(c, jnp.uint32) for c in zip(*rows, strict=True))
            tau = jnp.asarray([SETTINGS[s].tau for s, _, _ in rows], jnp.float32)
            k = jnp.asarray([SETTINGS[s].k for s, _, _ in rows], jnp.int32)
            p = jnp.asarray([SETTINGS[s].p for s, _, _ in rows], jnp.float32)
            q = jnp.asarray([SETTINGS[s].q for s, _, _ in rows], jnp.float32)
            gen = generate_ids(
                model.params,
                model.config,
                [prompt_ids[j] for _, j, _ in rows],
                _row_keys(key, s_idx, j_idx, i_idx),
                family_strategy(family, tau, k, p, q),
                max_new_tokens=max_new,
                eos_id=tok.eos_id,
                pad_id=tok.pad_id,
            )
            gen = jax.device_get(gen)
            for r, (s, j, _) in enumerate(rows):
                seq = tuple(completion_ids(gen, r))
                ids.setdefault(s, [[] for _ in prompts])[j].append(seq)
                texts.setdefault(s, [[] for _ in prompts])[j].append(tok.decode(seq))
            progress.update(1, last=family)

    # Measures.
    points: list[dict[str, Any]] = []
    for s, st in enumerate(SETTINGS):
        ok = [
            [check_completion(prompts[j], c).ok for c in texts[s][j]] for j in range(len(prompts))
        ]
        rate = float(np.mean(ok))
        points.append(
            {
                "label": st.label,
                "family": st.family,
                "tau": st.tau,
                "k": st.k,
                "p": st.p,
                "q": st.q,
                "correctness": rate,
                "correctness_se": _binomial_se(rate, len(prompts) * n),
                "distinct_1": float(
                    np.mean([distinct_n(ids[s][j], 1) for j in range(len(prompts))])
                ),
                "distinct_2": float(
                    np.mean([distinct_n(ids[s][j], 2) for j in range(len(prompts))])
                ),
                "distinct_2_by_prompt": [distinct_n(ids[s][j], 2) for j in range(len(prompts))],
                "distinct_completions": float(
                    np.mean([distinct_completions(texts[s][j]) for j in range(len(prompts))])
                ),
                "max_distinct_completions_per_prompt": int(
                    max(distinct_completions(texts[s][j]) for j in range(len(prompts)))
                ),
                "correct_by_prompt": [int(sum(o)) for o in ok],
            }
        )
    front = pareto_front([(pt["distinct_2"], pt["correctness"]) for pt in points])
    for i, pt in enumerate(points):
        pt["pareto"] = i in front

    print(
        f"Diversity vs correctness: {len(prompts)} prompts x {n} completions per strategy, "
        f"{len(SETTINGS)} strategies, {len(FAMILIES)} decoding calls (max {max_new} new tokens)"
    )
    print_table(
        "Per strategy (diversity averaged over prompts; * = on the Pareto front)",
        ["strategy", "correct", "+/- se", "distinct-1", "distinct-2", f"distinct / {n}", "front"],
        [
            [
                pt["label"],
                pt["correctness"],
                pt["correctness_se"],
                pt["distinct_1"],
                pt["distinct_2"],
                pt["distinct_completions"],
                "*" if pt["pareto"] else "",
            ]
            for pt in points
        ],
    )
    example = [st.label for st in SETTINGS].index("tau 1.0")
    print(f'\nExample: "{prompts[0]}" at tau 1.0:')
    for c in texts[example][0][:5]:
        v = check_completion(prompts[0], c)
        print(f"  {'ok ' if v.ok else 'BAD'} {c!r}" + ("" if v.ok else f"  ({v.reason})"))
    print("\nTruncation at a high temperature (reported, not checked):")

    hot = []
    by_label = {pt["label"]: pt for pt in points}
    for truncated, plain in HOT_PAIRS:
        a, b = by_label[truncated], by_label[plain]
        z = _gap_in_se(a, b)
        hot.append({"truncated": truncated, "plain": plain, "gain_in_se": z})
        print(
            f"  {truncated}: correctness {a['correctness']:.3f} vs {b['correctness']:.3f} "
            f"for {plain} ({z:+.1f} se)"
        )
    print(
        "  The temperature is applied before the cut, so at a high temperature the nucleus\n"
        "  of mass p is taken from an already flattened distribution and keeps most of the\n"
        "  vocabulary; a fixed k caps the kept set whatever the temperature (see the\n"
        "  top-k-top-p lab)."
    )

    hot_curves = _hot_curves(by_label)
    print("\nCorrectness against temperature, truncation after the temperature:")
    print_table(
        "",
        ["strategy", *(f"tau {t:g}" for t in HOT_LADDER)],
        [[name, *curve] for name, curve in hot_curves.items()],
    )

    report.parameters = {
        "prompts": prompts,
        "n_completions": n,
        "max_new_tokens": max_new,
        "settings": [dataclasses.asdict(st) for st in SETTINGS],
        "k_max": K_MAX,
        "row_keys": f"fold_in(fold_in(fold_in(jax.random.key({seed}), setting), prompt), sample)",
        "diversity_axis": "distinct_2 (mean over prompts of distinct-2 of its completions)",
        "z_significant": Z_SIGNIFICANT,
        "z_noise": Z_NOISE,
        "quick": quick,
    }
    report.extra["model"] = model_identity(model)
    report.save_json(
        "diversity_vs_correctness.json",
        {
            "x": "distinct_2",
            "y": "correctness",
            "points": points,
            "pareto_front": [points[i]["label"] for i in front],
            "truncation_at_tau_2": hot,
            "correctness_against_tau": {"taus": list(HOT_LADDER), "curves": hot_curves},
        },
    )
    report.save_json(
        "completions.json",
        {
            st.label: {prompts[j]: texts[s][j] for j in range(len(prompts))}
            for s, st in enumerate(SETTINGS)
        },
    )
    _plot_curve(report, points, front, len(prompts), n)
    _plot_measures(report, points, n)
    _plot_ladder(report, points)
    _plot_hot(report, hot_curves)

    # Checks.
    greedy = points[0]
    others = points[1:]
    ladder = [pt for pt in points if pt["family"] == "temperature"]
    report.check(
        "greedy repeats itself: one distinct completion per prompt",
        f"at most {greedy['max_distinct_completions_per_prompt']} distinct of {n}",
        "1",
        greedy["max_distinct_completions_per_prompt"] == 1,
    )
    d2_steps = [
        _paired_step_in_se(a["distinct_2_by_prompt"], b["distinct_2_by_prompt"])
        for a, b in itertools.pairwise(ladder)
    ]
    report.check(
        "diversity (distinct-2) never falls with temperature beyond sampling noise",
        ", ".join(f"{pt['tau']:g}: {pt['distinct_2']:.3f}" for pt in ladder)
        + f"; largest fall {max(-zv for _, zv in d2_steps):+.2f} se (paired by prompt)",
        f"every fall <= {Z_NOISE:g} se",
        all(-zv <= Z_NOISE for _, zv in d2_steps),
    )
    rises = [_gap_in_se(b, a) for a, b in itertools.pairwise(ladder)]
    report.check(
        "correctness never rises with temperature beyond sampling noise",
        ", ".join(f"{pt['tau']:g}: {pt['correctness']:.3f}" for pt in ladder)
        + f"; largest rise {max(rises):+.2f} se",
        f"every rise <= {Z_NOISE:g} se",
        max(rises) <= Z_NOISE,
    )

    # Findings.
    best_other = max(pt["correctness"] for pt in others)
    report.finding(
        "greedy has the highest (or tied-highest) correctness",
        f"greedy {greedy['correctness']:.4f}, best other {best_other:.4f}",
        "greedy >= every other strategy",
        greedy["correctness"] >= best_other,
    )
    min_other_d2 = min(pt["distinct_2"] for pt in others)
    min_other_dc = min(pt["distinct_completions"] for pt in others)
    report.finding(
        "greedy has the lowest (or tied-lowest) diversity",
        f"distinct-2 {greedy['distinct_2']:.4f} vs min other {min_other_d2:.4f}; distinct "
        f"completions {greedy['distinct_completions']:.2f} vs {min_other_dc:.2f}",
        "greedy <= every other strategy on both",
        greedy["distinct_2"] <= min_other_d2 and greedy["distinct_completions"] <= min_other_dc,
    )
    d2 = [pt["distinct_2"] for pt in ladder]
    report.finding(
        "diversity (distinct-2) increases with temperature at every step",
        ", ".join(f"{pt['tau']:g}: {pt['distinct_2']:.3f}" for pt in ladder),
        "strictly increasing",
        bool(np.all(np.diff(d2) > 0)),
        ""
        if np.all(np.diff(d2) > 0)
        else "a fall within sampling noise (see the check above) where distinct-2 nears its "
        "ceiling of 1",
    )
    hottest = ladder[-1]
    drop = _gap_in_se(greedy, hottest)
    report.finding(
        f"high temperature costs correctness (tau {hottest['tau']:g} vs greedy)",
        f"{hottest['correctness']:.3f} vs {greedy['correctness']:.3f} ({drop:.1f} se)",
        f"lower by > {Z_SIGNIFICANT:g} se",
        drop > Z_SIGNIFICANT,
    )
    for truncated, plain in TRUNCATION_PAIRS:
        a, b = by_label[truncated], by_label[plain]
        gain = _gap_in_se(a, b)
        report.finding(
            f"truncation restores correctness at the same temperature ({truncated} vs {plain})",
            f"{a['correctness']:.3f} vs {b['correctness']:.3f} ({gain:+.1f} se)",
            f"higher by > {Z_SIGNIFICANT:g} se",
            gain > Z_SIGNIFICANT,
        )
    truncated_on_front = [points[i]["label"] for i in front if points[i]["family"] != "temperature"]
    report.finding(
        "a truncated strategy (top-k, top-p or both) lies on the Pareto front",
        ", ".join(truncated_on_front) if truncated_on_front else "none",
        "at least one",
        bool(truncated_on_front),
    )
    hottest_tau = HOT_LADDER[-1]
    min_p_hot = by_label[f"min-p 0.1, tau {hottest_tau:g}"]
    top_p_hot = by_label[f"top-p 0.9, tau {hottest_tau:g}"]
    min_p_cool = by_label["min-p 0.1, tau 1"]
    gap = _gap_in_se(min_p_hot, top_p_hot)
    report.finding(
        f"min-p keeps correctness at tau {hottest_tau:g} where top-p collapses "
        "(the min-p paper's claim: min-p 0.1 vs top-p 0.9)",
        f"min-p {min_p_hot['correctness']:.3f} vs top-p {top_p_hot['correctness']:.3f} at tau "
        f"{hottest_tau:g} ({gap:+.1f} se); min-p at tau 1: {min_p_cool['correctness']:.3f}",
        f"min-p higher by > {Z_SIGNIFICANT:g} se",
        gap > Z_SIGNIFICANT,
    )
    held = _gap_in_se(min_p_cool, min_p_hot)
    report.finding(
        f"min-p's correctness holds from tau 1 to tau {hottest_tau:g} (the stronger form of "
        "the claim)",
        f"{min_p_cool['correctness']:.3f} at tau 1, {min_p_hot['correctness']:.3f} at tau "
        f"{hottest_tau:g} (a fall of {held:.1f} se); top-n-sigma 1 at tau {hottest_tau:g}: "
        f"{by_label[f'top-n-sigma 1, tau {hottest_tau:g}']['correctness']:.3f}",
        f"a fall of at most {Z_SIGNIFICANT:g} se",
        held <= Z_SIGNIFICANT,
    )
    report.write_manifest()
    report.print_checks()
    return report


def _hot_curves(by_label: dict[str, dict[str, Any]]) -> dict[str, list[float]]:
    """Correctness at each temperature of ``HOT_LADDER``, per truncation family."""
    labels = {
        "temperature": [f"tau {t:.1f}" for t in HOT_LADDER],
        "top-p 0.9": [f"top-p 0.9, tau {t:g}" if t != 1 else "top-p 0.9" for t in HOT_LADDER],
        **{
            name: [f"{name}, tau {t:g}" for t in HOT_LADDER]
            for name in ("min-p 0.1", "typical 0.9", "top-n-sigma 1")
        },
    }
    return {
        name: [float(by_label[label]["correctness"]) for label in row]
        for name, row in labels.items()
    }


def _plot_hot(report: LabReport, curves: dict[str, list[float]]) -> None:
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


def _plot_curve(
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


def _plot_measures(report: LabReport, points: list[dict[str, Any]], n: int) -> None:
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


def _plot_ladder(report: LabReport, points: list[dict[str, Any]]) -> None:
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
