"""Lab: temperature sweep (entropy against tau, synthetic and Mini-GPT logits).

Sweeps the temperature over a synthetic 8-token logit vector and over the shipped
Mini-GPT's first-step logits after "Tomorrow she", checks that the entropy (bits)
never decreases with tau, and counts the distinct first tokens in 100 draws at
tau = 0.5, 1.0 and 2.0. Every sweep is one vmapped, jitted call.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.labs._model import first_step_logits, model_identity
from jaxsample.labs._report import LabReport, print_table
from jaxsample.plotting import new_figure, save_figure
from jaxsample.samplers import Temperature, sample
from jaxsample.samplers._sampling import tempered_entropy
from jaxsample.training import Pretrained, load_pretrained

__all__ = ["DRAW_TAUS", "EXPECTED_DISTINCT", "SWEEP_TAUS", "SYNTHETIC_LOGITS", "run"]

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


@jax.jit
def entropy_sweep(logits: jax.Array, taus: jax.Array) -> jax.Array:
    """Entropy in bits of ``probs(logits, Temperature(tau))`` for every tau.

    One call vmapped over ``taus`` ``[T]``; ``logits`` ``[..., V]`` of any real dtype.
    Each entropy is :func:`~jaxsample.samplers._sampling.tempered_entropy`: two
    sums from one pass over the row, so no ``[T, V]`` distribution is stored.
    Agrees with ``entropy(probs(logits, Temperature(tau)))`` to float32 rounding.
    Returns float32 ``[T, ...]``.
    """
    return jax.vmap(lambda t: tempered_entropy(logits, t))(taus)


@jax.jit
def draw_first_tokens(
    key: jax.Array, logits: jax.Array, taus: jax.Array, seeds: jax.Array
) -> jax.Array:
    """Token ids int32 [len(taus), len(seeds)]: draw s at tau t uses ``fold_in(key, s)``."""

    def one(t: jax.Array, s: jax.Array) -> jax.Array:
        return sample(jax.random.fold_in(key, s), logits, Temperature(t))

    return jax.vmap(lambda t: jax.vmap(lambda s: one(t, s))(seeds))(taus)


def _within(count: int, bounds: tuple[int, int | None]) -> bool:
    low, high = bounds
    return count >= low and (high is None or count <= high)


def _bounds_text(bounds: tuple[int, int | None]) -> str:
    low, high = bounds
    return f"{low}-{high}" if high is not None else f"{low} or more"


def _weakly_increasing(counts: list[int]) -> bool:
    steps = np.diff(counts)
    return bool(np.all(steps >= 0) and np.sum(steps == 0) <= 1)


def run(out_dir: Path, seed: int = 0, model: Pretrained | None = None) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of the draws; draw ``s`` uses ``fold_in(key(seed), s)``.
        model: the model to use; the shipped Mini-GPT when ``None``.

    Returns:
        The :class:`LabReport` with the checks (``manifest.json`` written).
    """
    report = LabReport("temperature-sweep", out_dir, seed)
    model = load_pretrained() if model is None else model
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

    # Tables and JSON.
    print(
        f'Temperature sweep: synthetic 8-token logits and the Mini-GPT after "{PROMPT}" '
        f"(V = {vocab})"
    )
    print_table(
        "Entropy H(softmax(z / tau)) in bits",
        ["tau", "H synthetic", "H Mini-GPT"],
        [[t, float(a), float(b)] for t, a, b in zip(SWEEP_TAUS, h_syn, h_model, strict=True)],
    )
    words = model.tokenizer.vocab
    top_words = []
    for row in ids:
        vals, counts = np.unique(row, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:4]
        top_words.append(", ".join(f"{words[vals[i]]} x{counts[i]}" for i in order))
    print_table(
        f"Distinct first tokens in {N_DRAWS} draws (seed {seed})",
        ["tau", "distinct", "expected", "most drawn"],
        [
            [t, d, _bounds_text(EXPECTED_DISTINCT[t]), w]
            for t, d, w in zip(DRAW_TAUS, distinct, top_words, strict=True)
        ],
    )
    print(
        f"\nAt tau = {SWEEP_TAUS[0]} the Mini-GPT curve starts at {h_model[0]:.3f} bits "
        f"against {h_syn[0]:.3f} for the synthetic logits; at tau = {SWEEP_TAUS[-1]} it reaches "
        f"{h_model[-1]:.3f} of at most log2(V) = {np.log2(vocab):.3f} bits."
    )

    report.parameters = {
        "synthetic_logits": list(SYNTHETIC_LOGITS),
        "sweep_taus": list(SWEEP_TAUS),
        "draw_taus": list(DRAW_TAUS),
        "n_draws": N_DRAWS,
        "prompt": PROMPT,
        "draw_keys": f"fold_in(jax.random.key({seed}), s) for s in 0..{N_DRAWS - 1}",
        "monotone_tolerance": MONOTONE_TOL,
    }
    report.extra["model"] = model_identity(model)
    report.save_json(
        "entropy_curves.json",
        {
            "tau": list(SWEEP_TAUS),
            "entropy_bits_synthetic": h_syn.tolist(),
            "entropy_bits_model": h_model.tolist(),
        },
    )
    report.save_json(
        "unique_tokens_by_tau.json",
        {
            "tau": list(DRAW_TAUS),
            "distinct": distinct,
            "expected": {str(t): list(EXPECTED_DISTINCT[t]) for t in DRAW_TAUS},
            "tokens": [[words[i] for i in row] for row in ids.tolist()],
        },
    )

    # Plots.
    fig, ax = new_figure()
    ax.plot(SWEEP_TAUS, h_syn, "o-", label="synthetic 8-token logits")
    ax.axhline(
        np.log2(len(SYNTHETIC_LOGITS)), ls="--", c="gray", label="log2(8) = 3 bits (uniform)"
    )
    ax.set(
        xscale="log",
        xlabel="temperature tau (log scale)",
        ylabel="entropy H (bits)",
        title="Entropy of softmax(z / tau), synthetic logits",
    )
    ax.legend()
    save_figure(fig, report.path("entropy_curve_synthetic.png"))

    fig, ax = new_figure()
    ax.plot(SWEEP_TAUS, h_model, "o-", label=f'Mini-GPT after "{PROMPT}" (V = {vocab})')
    ax.plot(SWEEP_TAUS, h_syn, "s--", alpha=0.7, label="synthetic 8-token logits")
    ax.axhline(np.log2(vocab), ls=":", c="gray", label=f"log2(V) = {np.log2(vocab):.2f} bits")
    ax.set(
        xscale="log",
        xlabel="temperature tau (log scale)",
        ylabel="entropy H (bits)",
        title="Entropy against temperature: Mini-GPT first step vs synthetic",
    )
    ax.legend()
    save_figure(fig, report.path("entropy_curve_model.png"))

    fig, ax = new_figure()
    xs = np.arange(len(DRAW_TAUS))
    bars = ax.bar(xs, distinct, color="tab:blue", label=f"measured ({N_DRAWS} draws)")
    for x, t in zip(xs, DRAW_TAUS, strict=True):
        low, high = EXPECTED_DISTINCT[t]
        top = high if high is not None else max(max(distinct), low) * 1.15
        ax.fill_between(
            [x - 0.45, x + 0.45],
            low,
            top,
            color="tab:green",
            alpha=0.2,
            label="expected range" if x == 0 else None,
        )
    ax.bar_label(bars)
    ax.set(
        xticks=xs,
        xticklabels=[f"tau = {t}" for t in DRAW_TAUS],
        ylabel="distinct first tokens",
        title=f'Distinct first tokens after "{PROMPT}"',
    )
    ax.legend()
    save_figure(fig, report.path("unique_tokens_by_tau.png"))

    # Acceptance.
    report.check(
        "draws are deterministic under a fixed seed",
        "identical on a second call" if np.array_equal(ids, again) else "differ",
        "identical",
        np.array_equal(ids, again),
    )
    for name, h in [("synthetic", h_syn), ("Mini-GPT", h_model)]:
        worst = float(np.min(np.diff(h)))
        report.check(
            f"{name} entropy curve is monotone non-decreasing",
            f"smallest step {worst:+.3e} bits",
            f">= -{MONOTONE_TOL:g}",
            bool(np.all(np.diff(h) >= -MONOTONE_TOL)),
        )
    report.check(
        "distinct tokens increase with tau (weakly, at most one equality)",
        str(distinct),
        "non-decreasing, <= 1 tie",
        _weakly_increasing(distinct),
    )
    for t, d in zip(DRAW_TAUS, distinct, strict=True):
        report.check(
            f"distinct tokens at tau = {t}",
            str(d),
            _bounds_text(EXPECTED_DISTINCT[t]),
            _within(d, EXPECTED_DISTINCT[t]),
        )
    report.write_manifest()
    report.print_checks()
    return report
