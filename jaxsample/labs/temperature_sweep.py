"""Lab: temperature sweep (entropy against tau, synthetic and Mini-GPT logits).

Sweeps the temperature over a synthetic 8-token logit vector and over the shipped
Mini-GPT's first-step logits after "Tomorrow she", checks that the entropy (bits)
never decreases with tau, and counts the distinct first tokens in 100 draws at
tau = 0.5, 1.0 and 2.0. Every sweep is one vmapped, jitted call.

Checks (they decide the exit status): the draws repeat under a fixed seed, both
entropy curves are non-decreasing, and every distinct-token count agrees with its
exact expectation (from ``softmax(z / tau)``) within ``Z_TOL`` standard errors.
Findings (reported, never a failure): the expected ranges of distinct tokens
(1-3, 5-15, 20 or more), their increase with tau, and the model curve starting
below the synthetic one.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpy.typing as npt

from jaxsample.labs._model import first_step_logits, model_identity
from jaxsample.labs._plotting import log_scale, new_figure, save_with_legend
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.model import Pretrained, load_pretrained
from jaxsample.samplers import Temperature, entropy_sweep, probs, sample

__all__ = [
    "DRAW_TAUS",
    "EXPECTED_DISTINCT",
    "SWEEP_TAUS",
    "SYNTHETIC_LOGITS",
    "distinct_count_moments",
    "run",
]

SYNTHETIC_LOGITS = (3.0, 2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0)
SWEEP_TAUS = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 5.0, 10.0)
DRAW_TAUS = (0.5, 1.0, 2.0)
#: Expected distinct first tokens in 100 draws: (low, high), high None for "or more".
EXPECTED_DISTINCT: dict[float, tuple[int, int | None]] = {
    0.5: (1, 3),
    1.0: (5, 15),
    2.0: (20, None),
}
PROMPT = "Tomorrow she"
N_DRAWS = 100
MONOTONE_TOL = 1e-9
#: Largest allowed |measured - expected| distinct count, in standard errors (three counts).
Z_TOL = 4.0
#: Temperatures of the smooth curves drawn behind the sweep's markers.
DENSE_TAUS = tuple(float(t) for t in np.geomspace(0.05, 20.0, 160))


@jax.jit
def draw_first_tokens(
    key: jax.Array, logits: jax.Array, taus: jax.Array, seeds: jax.Array
) -> jax.Array:
    """Token ids int32 [len(taus), len(seeds)]: draw s at tau t uses ``fold_in(key, s)``."""

    def one(t: jax.Array, s: jax.Array) -> jax.Array:
        return sample(jax.random.fold_in(key, s), logits, Temperature(t))

    return jax.vmap(lambda t: jax.vmap(lambda s: one(t, s))(seeds))(taus)


def distinct_count_moments(q: npt.ArrayLike, n: int) -> tuple[float, float]:
    r"""Mean and standard deviation of the number of distinct tokens in ``n`` draws from ``q``.

    With :math:`a_i = (1 - q_i)^n` (token ``i`` never drawn) and
    :math:`a_{ij} = (1 - q_i - q_j)^n` (neither drawn), the count
    :math:`D = \sum_i 1[i \text{ drawn}]` has :math:`E[D] = \sum_i (1 - a_i)` and
    :math:`\mathrm{Var}[D] = \sum_i a_i (1 - a_i) + \sum_{i \ne j} (a_{ij} - a_i a_j)`.

    Args:
        q: a probability vector ``[V]`` (any float dtype; computed in float64). Tokens
            of probability 0 contribute nothing.
        n: number of independent draws, ``>= 1``.

    Returns:
        ``(mean, sd)`` as floats; ``sd`` is 0 when the count cannot vary.

    Raises:
        ValueError: if ``q`` is not 1-D, has a negative or non-finite entry, or
            ``n < 1``.
    """
    p = np.asarray(q, np.float64)
    if p.ndim != 1 or not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("q must be a 1-D vector of finite, non-negative probabilities")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    p = p[p > 0]
    a = (1.0 - p) ** n
    pair = np.clip(1.0 - p[:, None] - p[None, :], 0.0, 1.0) ** n
    cov = pair - a[:, None] * a[None, :]
    np.fill_diagonal(cov, 0.0)
    var = float(np.sum(a * (1.0 - a)) + np.sum(cov))
    return float(np.sum(1.0 - a)), math.sqrt(max(var, 0.0))


def _within(count: int, bounds: tuple[int, int | None]) -> bool:
    low, high = bounds
    return count >= low and (high is None or count <= high)


def _bounds_text(bounds: tuple[int, int | None]) -> str:
    low, high = bounds
    return f"{low}-{high}" if high is not None else f"{low} or more"


def _weakly_increasing(counts: list[int]) -> bool:
    steps = np.diff(counts)
    return bool(np.all(steps >= 0) and np.sum(steps == 0) <= 1)


@dataclasses.dataclass(frozen=True)
class _Measures:
    """The entropy curves and the first-token draws of the lab (NumPy values)."""

    vocab: int
    h_syn: np.ndarray[Any, Any]
    h_model: np.ndarray[Any, Any]
    ids: np.ndarray[Any, Any]
    again: np.ndarray[Any, Any]
    distinct: list[int]
    moments: list[tuple[float, float]]
    z_distinct: list[float]
    h_dense: np.ndarray[Any, Any]
    h_dense_syn: np.ndarray[Any, Any]
    in_range: list[bool]
    words: tuple[str, ...]


def _measure(model: Pretrained, seed: int) -> _Measures:
    """Entropy sweeps on both logit sets, and the draws at each temperature."""
    taus = jnp.asarray(SWEEP_TAUS, jnp.float32)
    z_syn = jnp.asarray(SYNTHETIC_LOGITS, jnp.float32)
    z_model = first_step_logits(model, PROMPT)
    vocab = model.tokenizer.vocab_size

    h_syn = np.asarray(entropy_sweep(z_syn, taus), np.float64)
    h_model = np.asarray(entropy_sweep(z_model, taus), np.float64)

    key = jax.random.key(seed)
    draw_taus = jnp.asarray(DRAW_TAUS, jnp.float32)
    seeds = jnp.arange(N_DRAWS, dtype=jnp.uint32)
    ids = np.asarray(draw_first_tokens(key, z_model, draw_taus, seeds))
    again = np.asarray(draw_first_tokens(key, z_model, draw_taus, seeds))
    distinct = [len(set(row.tolist())) for row in ids]
    q_draw = np.asarray(jax.vmap(lambda t: probs(z_model, Temperature(t)))(draw_taus), np.float64)
    moments = [distinct_count_moments(q, N_DRAWS) for q in q_draw]
    z_distinct = [z_score(d - m, sd) for d, (m, sd) in zip(distinct, moments, strict=True)]
    h_dense = np.asarray(entropy_sweep(z_model, jnp.asarray(DENSE_TAUS, jnp.float32)), np.float64)
    h_dense_syn = np.asarray(entropy_sweep(z_syn, jnp.asarray(DENSE_TAUS, jnp.float32)), np.float64)
    in_range = [_within(d, EXPECTED_DISTINCT[t]) for t, d in zip(DRAW_TAUS, distinct, strict=True)]
    words = model.tokenizer.vocab

    return _Measures(
        vocab=vocab,
        h_syn=h_syn,
        h_model=h_model,
        ids=ids,
        again=again,
        distinct=distinct,
        moments=moments,
        z_distinct=z_distinct,
        h_dense=h_dense,
        h_dense_syn=h_dense_syn,
        in_range=in_range,
        words=words,
    )


def run(
    out_dir: Path, seed: int = 0, model: Pretrained | None = None, quick: bool = False
) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the draws; draw ``s`` uses ``fold_in(key(seed), s)``.
        model: the model to use; the shipped Mini-GPT when ``None``.
        quick: accepted for a uniform interface; the lab is already small (a few
            seconds), so the quick run is the full run.

    Returns:
        The :class:`LabReport` with the checks (``manifest.json`` written).
    """
    report = LabReport("temperature-sweep", out_dir, seed)
    model = load_pretrained() if model is None else model
    measured = _measure(model, seed)
    _print_tables(measured, model, seed)
    _save_data(report, measured, model, seed, quick)
    _plot(report, measured, model)
    _check(report, measured)
    return report.finish()


def _print_tables(measured: _Measures, model: Pretrained, seed: int) -> None:
    """Print the entropy table and the distinct-token table."""
    print(
        f'Temperature sweep: synthetic 8-token logits and the Mini-GPT after "{PROMPT}" '
        f"(V = {measured.vocab})"
    )
    print_table(
        "Entropy H(softmax(z / tau)) in bits",
        ["tau", "H synthetic", "H Mini-GPT"],
        [
            [t, float(a), float(b)]
            for t, a, b in zip(SWEEP_TAUS, measured.h_syn, measured.h_model, strict=True)
        ],
    )
    top_words = []
    for row in measured.ids:
        vals, counts = np.unique(row, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:4]
        top_words.append(", ".join(f"{measured.words[vals[i]]} x{counts[i]}" for i in order))
    print_table(
        f"Distinct first tokens in {N_DRAWS} draws (seed {seed})",
        ["tau", "distinct", "exact mean +/- sd", "claimed range", "most drawn"],
        [
            [t, d, f"{m:.1f} +/- {sd:.1f}", _bounds_text(EXPECTED_DISTINCT[t]), w]
            for t, d, (m, sd), w in zip(
                DRAW_TAUS, measured.distinct, measured.moments, top_words, strict=True
            )
        ],
    )
    print(
        f"\nAt tau = {SWEEP_TAUS[0]} the Mini-GPT curve starts at {measured.h_model[0]:.3f} bits "
        f"against {measured.h_syn[0]:.3f} for the synthetic logits; "
        f"at tau = {SWEEP_TAUS[-1]} it reaches "
        f"{measured.h_model[-1]:.3f} of at most log2(V) = {np.log2(measured.vocab):.3f} bits."
    )


def _save_data(
    report: LabReport, measured: _Measures, model: Pretrained, seed: int, quick: bool
) -> None:
    """Record the parameters and write the JSON files."""
    report.parameters = {
        "synthetic_logits": list(SYNTHETIC_LOGITS),
        "sweep_taus": list(SWEEP_TAUS),
        "draw_taus": list(DRAW_TAUS),
        "n_draws": N_DRAWS,
        "prompt": PROMPT,
        "draw_keys": f"fold_in(jax.random.key({seed}), s) for s in 0..{N_DRAWS - 1}",
        "monotone_tolerance": MONOTONE_TOL,
        "distinct_z_tolerance": Z_TOL,
        "quick": quick,
    }
    report.extra["model"] = model_identity(model)
    report.save_json(
        "entropy_curves.json",
        {
            "tau": list(SWEEP_TAUS),
            "entropy_bits_synthetic": measured.h_syn.tolist(),
            "entropy_bits_model": measured.h_model.tolist(),
        },
    )
    report.save_json(
        "unique_tokens_by_tau.json",
        {
            "tau": list(DRAW_TAUS),
            "distinct": measured.distinct,
            "exact_mean": [m for m, _ in measured.moments],
            "exact_sd": [sd for _, sd in measured.moments],
            "expected": {str(t): list(EXPECTED_DISTINCT[t]) for t in DRAW_TAUS},
            "in_claimed_range": measured.in_range,
            "tokens": [[measured.words[i] for i in row] for row in measured.ids.tolist()],
        },
    )


def _plot(report: LabReport, measured: _Measures, model: Pretrained) -> None:
    """Draw the entropy curves and the distinct-token figure."""
    log2v = float(np.log2(measured.vocab))
    fig, ax = new_figure()
    ax.plot(DENSE_TAUS, measured.h_dense_syn, "-", c="tab:blue", lw=1.5)
    ax.plot(SWEEP_TAUS, measured.h_syn, "o", c="tab:blue", label="synthetic 8-token logits")
    ax.axhline(3.0, ls="--", c="gray", label="log2(8) = 3 bits (uniform)")
    ax.set(
        **log_scale("temperature tau"),
        ylabel="entropy H (bits)",
        title="Entropy of softmax(z / tau), synthetic logits",
        ylim=(0, 3.3),
    )
    save_with_legend(fig, ax, report.path("entropy_curve_synthetic.png"), loc="lower right")

    fig, ax = new_figure(6.8, 4.8)
    ax.plot(DENSE_TAUS, measured.h_dense, "-", c="tab:blue", lw=1.5)
    ax.plot(SWEEP_TAUS, measured.h_model, "o", c="tab:blue", label=f'Mini-GPT after "{PROMPT}"')
    ax.plot(DENSE_TAUS, measured.h_dense_syn, "--", c="tab:orange", lw=1.2)
    ax.plot(SWEEP_TAUS, measured.h_syn, "s", c="tab:orange", label="synthetic 8-token logits")
    ax.axhline(
        log2v, ls=":", c="gray", label=f"log2(V) = {log2v:.2f} bits (uniform, V = {measured.vocab})"
    )
    ax.set(
        **log_scale("temperature tau", more="; markers: the 9 swept values, lines: 160 values"),
        ylabel="entropy H (bits)",
        title="Entropy against temperature: Mini-GPT first step vs synthetic",
        ylim=(0, log2v * 1.05),
    )
    save_with_legend(
        fig,
        ax,
        report.path("entropy_curve_model.png"),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=2,
        fontsize=8,
        frameon=False,
    )

    fig, ax = new_figure(6.8, 4.6)
    xs = np.arange(len(DRAW_TAUS))
    bars = ax.bar(xs, measured.distinct, 0.5, color="tab:blue", label=f"measured ({N_DRAWS} draws)")
    ax.bar_label(bars, padding=3)
    ax.errorbar(
        xs + 0.33,
        [m for m, _ in measured.moments],
        yerr=[Z_TOL * sd for _, sd in measured.moments],
        fmt="D",
        c="black",
        ms=4,
        capsize=4,
        label=f"exact expectation +/- {Z_TOL:g} sd (the check)",
    )
    y_top = max(max(measured.distinct), max(m + Z_TOL * sd for m, sd in measured.moments)) * 1.25
    for x, t in zip(xs, DRAW_TAUS, strict=True):
        low, high = EXPECTED_DISTINCT[t]
        if high is None:
            ax.annotate(
                "",
                xy=(x - 0.33, y_top * 0.97),
                xytext=(x - 0.33, low),
                arrowprops={"arrowstyle": "->", "color": "tab:green", "lw": 2},
            )
        else:
            ax.plot([x - 0.33] * 2, [low, high], "-", c="tab:green", lw=3, solid_capstyle="butt")
    ax.plot([], [], "-", c="tab:green", lw=3, label="claimed range (open-ended: arrow)")
    ax.set(
        xticks=xs,
        xticklabels=[
            f"{t}\nclaim {_bounds_text(EXPECTED_DISTINCT[t])}: {'holds' if ok else 'does not hold'}"
            for t, ok in zip(DRAW_TAUS, measured.in_range, strict=True)
        ],
        xlabel="temperature tau",
        ylabel="distinct first tokens",
        title=f'Distinct first tokens in {N_DRAWS} draws after "{PROMPT}"',
        ylim=(0, y_top),
        xlim=(-0.9, len(DRAW_TAUS) - 0.4),
    )
    save_with_legend(fig, ax, report.path("unique_tokens_by_tau.png"), loc="upper left", fontsize=8)


def _check(report: LabReport, measured: _Measures) -> None:
    """Add the acceptance checks and findings."""
    report.check(
        "draws are deterministic under a fixed seed",
        "identical on a second call" if np.array_equal(measured.ids, measured.again) else "differ",
        "identical",
        np.array_equal(measured.ids, measured.again),
    )
    for name, h in [("synthetic", measured.h_syn), ("Mini-GPT", measured.h_model)]:
        worst = float(np.min(np.diff(h)))
        report.check(
            f"{name} entropy curve is monotone non-decreasing",
            f"smallest step {worst:+.3e} bits",
            f">= -{MONOTONE_TOL:g}",
            bool(np.all(np.diff(h) >= -MONOTONE_TOL)),
        )
    worst_z = max(abs(v) for v in measured.z_distinct)
    report.check(
        "distinct-token counts agree with their exact expectation",
        ", ".join(
            f"tau {t}: {d} vs {m:.1f} ({zv:+.1f} sd)"
            for t, d, (m, _), zv in zip(
                DRAW_TAUS, measured.distinct, measured.moments, measured.z_distinct, strict=True
            )
        ),
        f"within {Z_TOL:g} standard deviations at every tau",
        worst_z <= Z_TOL,
    )
    report.finding(
        "distinct tokens increase with tau (weakly, at most one equality)",
        str(measured.distinct),
        "non-decreasing, at most one tie",
        _weakly_increasing(measured.distinct),
    )
    for t, d, (m, _), ok in zip(
        DRAW_TAUS, measured.distinct, measured.moments, measured.in_range, strict=True
    ):
        report.finding(
            f"distinct tokens at tau = {t}",
            f"{d} (exact expectation {m:.1f})",
            _bounds_text(EXPECTED_DISTINCT[t]),
            ok,
        )
    report.finding(
        "the Mini-GPT curve starts below the synthetic one",
        f"{measured.h_model[0]:.3g} vs {measured.h_syn[0]:.3g} bits at tau = {SWEEP_TAUS[0]}",
        "lower (a sharper peak)",
        bool(measured.h_model[0] < measured.h_syn[0]),
    )
