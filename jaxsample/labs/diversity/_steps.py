"""The lab's steps: decode and measure, save, check."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.analysis import distinct_completions, distinct_n, pareto_front
from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    check_completion,
)
from jaxsample.decoding import completion_ids, generate_ids
from jaxsample.labs._model import model_identity
from jaxsample.labs._report import LabReport, print_table
from jaxsample.labs.diversity._figures import (
    plot_curve,
    plot_hot,
    plot_ladder,
    plot_measures,
)
from jaxsample.labs.diversity._settings import (
    FAMILIES,
    HOT_LADDER,
    HOT_PAIRS,
    K_MAX,
    N_COMPLETIONS,
    N_PROMPTS_QUICK,
    N_QUICK,
    SETTINGS,
    TRUNCATION_PAIRS,
    Z_NOISE,
    Z_SIGNIFICANT,
    binomial_se,
    family_strategy,
    gap_in_se,
    lab_prompts,
    paired_step_in_se,
    row_keys,
)
from jaxsample.model import Pretrained
from jaxsample.progress import Progress


@dataclasses.dataclass(frozen=True)
class Measures:
    """The completions of every setting and their measures (one point per setting)."""

    prompts: list[str]
    n: int
    max_new: int
    texts: dict[int, list[list[str]]]
    points: list[dict[str, Any]]
    front: list[int]
    hot: list[dict[str, object]]
    by_label: dict[Any, dict[str, Any]]
    hot_curves: dict[str, list[float]]


def measure(model: Pretrained, seed: int, quick: bool) -> Measures:
    """Decode every setting (one call per family), measure each and print the tables."""
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
                row_keys(key, s_idx, j_idx, i_idx),
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
                "correctness_se": binomial_se(rate, len(prompts) * n),
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
        z = gap_in_se(a, b)
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

    return Measures(
        prompts=prompts,
        n=n,
        max_new=max_new,
        texts=texts,
        points=points,
        front=front,
        hot=hot,
        by_label=by_label,
        hot_curves=hot_curves,
    )


def save(report: LabReport, measured: Measures, model: Pretrained, seed: int, quick: bool) -> None:
    """Record the parameters, write the JSON files and draw the figures."""
    report.parameters = {
        "prompts": measured.prompts,
        "n_completions": measured.n,
        "max_new_tokens": measured.max_new,
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
            "points": measured.points,
            "pareto_front": [measured.points[i]["label"] for i in measured.front],
            "truncation_at_tau_2": measured.hot,
            "correctness_against_tau": {"taus": list(HOT_LADDER), "curves": measured.hot_curves},
        },
    )
    report.save_json(
        "completions.json",
        {
            st.label: {
                measured.prompts[j]: measured.texts[s][j] for j in range(len(measured.prompts))
            }
            for s, st in enumerate(SETTINGS)
        },
    )
    plot_curve(report, measured.points, measured.front, len(measured.prompts), measured.n)
    plot_measures(report, measured.points, measured.n)
    plot_ladder(report, measured.points)
    plot_hot(report, measured.hot_curves)


def check(report: LabReport, measured: Measures) -> None:
    """Add the acceptance checks and the findings."""
    greedy = measured.points[0]
    others = measured.points[1:]
    ladder = [pt for pt in measured.points if pt["family"] == "temperature"]
    report.check(
        "greedy repeats itself: one distinct completion per prompt",
        f"at most {greedy['max_distinct_completions_per_prompt']} distinct of {measured.n}",
        "1",
        greedy["max_distinct_completions_per_prompt"] == 1,
    )
    d2_steps = [
        paired_step_in_se(a["distinct_2_by_prompt"], b["distinct_2_by_prompt"])
        for a, b in itertools.pairwise(ladder)
    ]
    report.check(
        "diversity (distinct-2) never falls with temperature beyond sampling noise",
        ", ".join(f"{pt['tau']:g}: {pt['distinct_2']:.3f}" for pt in ladder)
        + f"; largest fall {max(-zv for _, zv in d2_steps):+.2f} se (paired by prompt)",
        f"every fall <= {Z_NOISE:g} se",
        all(-zv <= Z_NOISE for _, zv in d2_steps),
    )
    rises = [gap_in_se(b, a) for a, b in itertools.pairwise(ladder)]
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
    drop = gap_in_se(greedy, hottest)
    report.finding(
        f"high temperature costs correctness (tau {hottest['tau']:g} vs greedy)",
        f"{hottest['correctness']:.3f} vs {greedy['correctness']:.3f} ({drop:.1f} se)",
        f"lower by > {Z_SIGNIFICANT:g} se",
        drop > Z_SIGNIFICANT,
    )
    for truncated, plain in TRUNCATION_PAIRS:
        a, b = measured.by_label[truncated], measured.by_label[plain]
        gain = gap_in_se(a, b)
        report.finding(
            f"truncation restores correctness at the same temperature ({truncated} vs {plain})",
            f"{a['correctness']:.3f} vs {b['correctness']:.3f} ({gain:+.1f} se)",
            f"higher by > {Z_SIGNIFICANT:g} se",
            gain > Z_SIGNIFICANT,
        )
    truncated_on_front = [
        measured.points[i]["label"]
        for i in measured.front
        if measured.points[i]["family"] != "temperature"
    ]
    report.finding(
        "a truncated strategy (top-k, top-p or both) lies on the Pareto front",
        ", ".join(truncated_on_front) if truncated_on_front else "none",
        "at least one",
        bool(truncated_on_front),
    )
    by_label = measured.by_label
    hottest_tau = HOT_LADDER[-1]
    min_p_hot = by_label[f"min-p 0.1, tau {hottest_tau:g}"]
    top_p_hot = by_label[f"top-p 0.9, tau {hottest_tau:g}"]
    min_p_cool = by_label["min-p 0.1, tau 1"]
    gap = gap_in_se(min_p_hot, top_p_hot)
    report.finding(
        f"min-p keeps correctness at tau {hottest_tau:g} where top-p collapses "
        "(the min-p paper's claim: min-p 0.1 vs top-p 0.9)",
        f"min-p {min_p_hot['correctness']:.3f} vs top-p {top_p_hot['correctness']:.3f} at tau "
        f"{hottest_tau:g} ({gap:+.1f} se); min-p at tau 1: {min_p_cool['correctness']:.3f}",
        f"min-p higher by > {Z_SIGNIFICANT:g} se",
        gap > Z_SIGNIFICANT,
    )
    held = gap_in_se(min_p_cool, min_p_hot)
    report.finding(
        f"min-p's correctness holds from tau 1 to tau {hottest_tau:g} (the stronger form of "
        "the claim)",
        f"{min_p_cool['correctness']:.3f} at tau 1, {min_p_hot['correctness']:.3f} at tau "
        f"{hottest_tau:g} (a fall of {held:.1f} se); top-n-sigma 1 at tau {hottest_tau:g}: "
        f"{by_label[f'top-n-sigma 1, tau {hottest_tau:g}']['correctness']:.3f}",
        f"a fall of at most {Z_SIGNIFICANT:g} se",
        held <= Z_SIGNIFICANT,
    )


def _hot_curves(by_label: dict[Any, dict[str, Any]]) -> dict[str, list[float]]:
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
