r"""Lab: temperature theory, shown numerically.

* The three limits: :math:`\tau \to 0` gives the argmax (uniform over tied maxima),
  :math:`\tau = 1` the model's distribution, :math:`\tau \to \infty` the uniform one.
* :math:`dH/d\tau = \mathrm{Var}_q[z] / \tau^3` (nats): autodiff against the formula.
* The wrong stage: :math:`\mathrm{softmax}(z)^{1/\tau}` against
  :math:`\mathrm{softmax}(z/\tau)` at :math:`\tau = 2`.
* Calibration temperature: one :math:`\tau` fitted on the Mini-GPT's validation set
  by minimising the cross-entropy with ``jax.grad`` (Guo et al., On Calibration of
  Modern Neural Networks, ICML 2017), a different use of the same formula.

Every numbered item above is a check of the software (it decides the exit status);
the source text's remark that neural networks are typically over-confident is
reported as a finding about the Mini-GPT (fitted tau above 1), never a failure.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.data import encode_sentences, generate_corpus
from jaxsample.labs._model import model_forward, model_identity
from jaxsample.labs._plotting import log_scale, new_figure, save_with_legend
from jaxsample.labs._report import LabReport, print_table
from jaxsample.model import Pretrained, load_pretrained
from jaxsample.samplers import GREEDY_TAU, Temperature, entropy, probs

__all__ = ["LOGITS", "TIED_LOGITS", "fit_temperature", "run", "validation_logits"]

LOGITS = (3.0, 2.0, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0)
TIED_LOGITS = (2.0, 0.5, 2.0, -1.0, 2.0, 0.0)
SMALL_TAUS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003)
LARGE_TAUS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
GRID = tuple(float(t) for t in np.geomspace(0.1, 10.0, 25))


def _tv(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    tv: np.ndarray = 0.5 * np.sum(np.abs(p - q), axis=-1)
    return tv


@jax.jit
def _sweep(z: jax.Array, taus: jax.Array) -> jax.Array:
    return jax.vmap(lambda t: probs(z, Temperature(t)))(taus)


def _entropy_nats(z: jax.Array, tau: jax.Array) -> jax.Array:
    return entropy(probs(z, Temperature(tau)), base=math.e)


@jax.jit
def entropy_derivative(z: jax.Array, taus: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(autodiff dH/dtau, Var_q[z] / tau^3)`` in nats, each float32 [len(taus)]."""
    grads = jax.vmap(jax.grad(lambda t: _entropy_nats(z, t)))(taus)

    def formula(t: jax.Array) -> jax.Array:
        q = probs(z, Temperature(t))
        mean = jnp.sum(q * z)
        return jnp.sum(q * (z - mean) ** 2) / t**3

    return grads, jax.vmap(formula)(taus)


def validation_logits(
    model: Pretrained, batch: int = 256, max_sentences: int | None = None
) -> tuple[jax.Array, jax.Array]:
    """Next-token logits float32 ``[M, V]`` and targets int32 ``[M]`` over the validation split.

    Uses the corpus the model was trained on (its manifest's corpus seed); padding
    targets are dropped. ``max_sentences`` keeps only the first sentences (for quick runs).
    """
    corpus_seed = int(model.manifest.get("train_config", {}).get("corpus_seed", 0))
    corpus = generate_corpus(seed=corpus_seed)
    rows = encode_sentences(corpus.val[:max_sentences], model.tokenizer, model.config.n_ctx)
    logits, targets = [], []
    for i in range(0, len(rows), batch):
        chunk = jnp.asarray(rows[i : i + batch])
        out = np.asarray(model_forward(model.params, chunk[:, :-1], model.config))
        tgt = np.asarray(chunk[:, 1:])
        keep = tgt != model.tokenizer.pad_id
        logits.append(out[keep])
        targets.append(tgt[keep])
    return jnp.asarray(np.concatenate(logits)), jnp.asarray(np.concatenate(targets))


def _nll(logits: jax.Array, targets: jax.Array, tau: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits / tau, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=-1))


def fit_temperature(logits: jax.Array, targets: jax.Array, steps: int = 30) -> float:
    r"""Fit the calibration temperature :math:`\tau^* = \arg\min_\tau \mathrm{CE}(z/\tau, y)`.

    Newton's method on :math:`\log\tau` with derivatives from ``jax.grad`` (the
    objective is smooth and, in :math:`1/\tau`, convex).

    Args:
        logits: float32 ``[M, V]``.
        targets: int32 ``[M]``.
        steps: Newton iterations.

    Returns:
        The fitted temperature (a Python float).
    """

    def objective(s: jax.Array, z: jax.Array, y: jax.Array) -> jax.Array:
        return _nll(z, y, jnp.exp(s))

    grad = jax.jit(jax.grad(objective))
    curvature = jax.jit(jax.grad(jax.grad(objective)))
    s = jnp.float32(0.0)
    for _ in range(steps):
        g, h = grad(s, logits, targets), curvature(s, logits, targets)
        step = jnp.where(h > 0, g / h, jnp.sign(g) * 0.1)
        s = s - jnp.clip(step, -0.5, 0.5)
    return float(jnp.exp(s))


@dataclasses.dataclass(frozen=True)
class _Measures:
    """The limits, the derivative, the pitfall and the calibration temperature."""

    tv_argmax: np.ndarray[Any, Any]
    tv_ties: np.ndarray[Any, Any]
    tv_uniform: np.ndarray[Any, Any]
    identity_err: float
    auto: np.ndarray[Any, Any]
    formula: np.ndarray[Any, Any]
    rel: np.ndarray[Any, Any]
    tau2: float
    power: np.ndarray[Any, Any]
    h_right: float
    h_power: float
    renorm_err: float
    val_targets: jax.Array
    before: float
    tau_star: float
    after: float
    curve_taus: np.ndarray[Any, Any]
    curve: list[float]


def _measure(model: Pretrained, quick: bool) -> _Measures:
    """Measure the three limits, dH/dtau, the wrong stage and the calibration; print the tables."""
    z = jnp.asarray(LOGITS, jnp.float32)
    zt = jnp.asarray(TIED_LOGITS, jnp.float32)
    v = len(LOGITS)

    # 1. The three limits.
    one_hot = np.eye(v)[int(np.argmax(LOGITS))]
    ties = np.asarray(TIED_LOGITS) == max(TIED_LOGITS)
    tie_uniform = ties / ties.sum()
    q_small = np.asarray(_sweep(z, jnp.asarray(SMALL_TAUS)), np.float64)
    q_tied = np.asarray(_sweep(zt, jnp.asarray(SMALL_TAUS)), np.float64)
    q_large = np.asarray(_sweep(z, jnp.asarray(LARGE_TAUS)), np.float64)
    tv_argmax, tv_ties = _tv(q_small, one_hot), _tv(q_tied, tie_uniform)
    tv_uniform = _tv(q_large, np.full(v, 1 / v))
    identity_err = float(np.max(np.abs(q_small[0] - np.asarray(jax.nn.softmax(z)))))
    print("Temperature theory, numerically")
    print_table(
        "tau -> 0: total-variation distance to the limit",
        ["tau", "TV to argmax (unique max)", "TV to uniform over the 3 tied maxima"],
        [[t, float(a), float(b)] for t, a, b in zip(SMALL_TAUS, tv_argmax, tv_ties, strict=True)],
    )
    print_table(
        "tau -> inf: total-variation distance to uniform",
        ["tau", "TV to uniform"],
        [[t, float(a)] for t, a in zip(LARGE_TAUS, tv_uniform, strict=True)],
    )
    print(f"\ntau = 1: max |softmax(z / 1) - softmax(z)| = {identity_err:.2e}")

    # 2. dH/dtau.
    grid = jnp.asarray(GRID, jnp.float32)
    auto, formula = (np.asarray(a, np.float64) for a in entropy_derivative(z, grid))
    rel = np.abs(auto - formula) / np.maximum(np.abs(formula), 1e-12)

    # 3. The wrong stage at tau = 2.
    tau2 = 2.0
    right = np.asarray(probs(z, Temperature(tau2)), np.float64)
    base = np.asarray(jax.nn.softmax(z), np.float64)
    power = base ** (1 / tau2)
    h_right = float(entropy(jnp.asarray(right, jnp.float32)))
    h_power = float(-np.sum(power * np.log2(power)))
    renorm = power / power.sum()
    renorm_err = float(np.max(np.abs(renorm - right)))
    print_table(
        "The wrong stage at tau = 2 (bits)",
        ["form", "sum of weights", "H (bits)"],
        [
            ["softmax(z / tau)", float(right.sum()), h_right],
            ["softmax(z) ** (1 / tau)", float(power.sum()), h_power],
            [
                "softmax(z) ** (1 / tau), renormalised",
                float(renorm.sum()),
                float(-np.sum(renorm * np.log2(renorm))),
            ],
        ],
    )
    print(
        "  The un-normalised power is not a distribution and its entropy differs; "
        f"renormalising it gives softmax(z / tau) again (max difference {renorm_err:.1e})."
    )

    # 4. Calibration temperature on the Mini-GPT.
    val_logits, val_targets = validation_logits(model, max_sentences=256 if quick else None)
    nll_fn = jax.jit(_nll)

    def nll(t: jax.Array) -> jax.Array:
        value: jax.Array = nll_fn(val_logits, val_targets, t)
        return value

    before = float(nll(jnp.float32(1.0)))
    tau_star = fit_temperature(val_logits, val_targets)
    after = float(nll(jnp.float32(tau_star)))
    curve_taus = np.geomspace(0.5, 2.0, 31)
    curve = [float(nll(jnp.float32(t))) for t in curve_taus]
    print_table(
        "Calibration temperature (Mini-GPT validation set)",
        ["", "tau", "cross-entropy (nats/token)"],
        [["before", 1.0, before], ["fitted", tau_star, after]],
    )
    print(
        f"  {int(val_targets.shape[0])} validation tokens; tau* {'<' if tau_star < 1 else '>'} 1 "
        f"means the model is {'under' if tau_star < 1 else 'over'}-confident on held-out text."
    )

    return _Measures(
        tv_argmax=tv_argmax,
        tv_ties=tv_ties,
        tv_uniform=tv_uniform,
        identity_err=identity_err,
        auto=auto,
        formula=formula,
        rel=rel,
        tau2=tau2,
        power=power,
        h_right=h_right,
        h_power=h_power,
        renorm_err=renorm_err,
        val_targets=val_targets,
        before=before,
        tau_star=tau_star,
        after=after,
        curve_taus=curve_taus,
        curve=curve,
    )


def run(
    out_dir: Path, seed: int = 0, model: Pretrained | None = None, *, quick: bool = False
) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: recorded in the manifest (this lab draws no random numbers).
        model: the model for the calibration part; the shipped Mini-GPT when ``None``.
        quick: fit the calibration temperature on 256 validation sentences only.

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("temperature-theory", out_dir, seed)
    model = load_pretrained() if model is None else model
    measured = _measure(model, quick)
    _save_data(report, measured, model, quick)
    _plot(report, measured)
    _check(report, measured)
    return report.finish()


def _save_data(report: LabReport, measured: _Measures, model: Pretrained, quick: bool) -> None:
    """Record the parameters and write ``theory.json``."""
    report.parameters = {
        "logits": list(LOGITS),
        "tied_logits": list(TIED_LOGITS),
        "small_taus": list(SMALL_TAUS),
        "large_taus": list(LARGE_TAUS),
        "derivative_grid": list(GRID),
        "pitfall_tau": measured.tau2,
        "greedy_tau": GREEDY_TAU,
        "quick": quick,
    }
    report.extra["model"] = model_identity(model)
    report.save_json(
        "theory.json",
        {
            "limits": {
                "tv_to_argmax": measured.tv_argmax.tolist(),
                "tv_tied_to_uniform_over_ties": measured.tv_ties.tolist(),
                "tv_to_uniform": measured.tv_uniform.tolist(),
                "tau1_max_abs_error": measured.identity_err,
            },
            "derivative": {
                "tau": list(GRID),
                "autodiff_nats": measured.auto.tolist(),
                "formula_nats": measured.formula.tolist(),
            },
            "pitfall": {
                "tau": measured.tau2,
                "entropy_bits_softmax_z_over_tau": measured.h_right,
                "entropy_bits_power_of_softmax": measured.h_power,
                "power_weights_sum": float(measured.power.sum()),
                "renormalised_power_max_abs_difference": measured.renorm_err,
            },
            "calibration": {
                "tau": measured.tau_star,
                "val_nll_before": measured.before,
                "val_nll_after": measured.after,
                "n_tokens": int(measured.val_targets.shape[0]),
                "curve_tau": measured.curve_taus.tolist(),
                "curve_nll": measured.curve,
            },
        },
    )


def _plot(report: LabReport, measured: _Measures) -> None:
    """Draw the limits, the derivative and the calibration curve."""
    fig, ax = new_figure()
    floor = 1e-17  # below every non-zero distance here, so only exact zeros sit on it
    any_zero = False
    for taus_, tv, style, label in (
        (SMALL_TAUS, measured.tv_argmax, "o-", "TV to argmax (unique max)"),
        (SMALL_TAUS, measured.tv_ties, "s-", "TV to uniform over tied maxima"),
        (LARGE_TAUS, measured.tv_uniform, "^-", "TV to uniform (tau large)"),
    ):
        (line,) = ax.loglog(taus_, np.maximum(tv, floor), style, label=label)
        zero = np.asarray(tv) == 0
        if np.any(zero):
            any_zero = True
            ax.plot(
                np.asarray(taus_)[zero],
                np.full(int(zero.sum()), floor),
                "o",
                ms=11,
                mfc="none",
                mec=line.get_color(),
            )
    if any_zero:
        ax.axhline(floor, ls=":", c="gray", lw=0.8)
        ax.plot(
            [],
            [],
            "o",
            ms=11,
            mfc="none",
            mec="gray",
            label="exactly 0 in float32 (drawn at 1e-17)",
        )
    ax.set(
        xlabel="temperature tau (log scale)",
        ylabel="total-variation distance (log scale)",
        title="The limits of softmax(z / tau)",
    )
    save_with_legend(fig, ax, report.path("limits.png"), fontsize=8)

    fig, ax = new_figure()
    ax.plot(GRID, measured.formula, "-", lw=3, alpha=0.5, label="Var_q[z] / tau^3 (formula)")
    ax.plot(GRID, measured.auto, "k.", label="jax.grad of H (autodiff)")
    ax.set(
        **log_scale("temperature tau"),
        ylabel="dH/dtau (nats per unit tau)",
        title="Entropy derivative: autodiff against the formula",
    )
    save_with_legend(fig, ax, report.path("entropy_derivative.png"))

    fig, ax = new_figure()
    ax.plot(measured.curve_taus, measured.curve, "-", label="validation cross-entropy")
    ax.axvline(1.0, ls=":", c="gray", label=f"tau = 1: {measured.before:.4f}")
    verdict = "holds" if measured.tau_star > 1.0 else "does not hold"
    ax.plot(
        [measured.tau_star],
        [measured.after],
        "ro",
        label=f"fitted tau = {measured.tau_star:.3f}: {measured.after:.4f}\n"
        f"claim 'over-confident' (tau > 1): {verdict}",
    )
    ax.set(
        xlabel="temperature tau",
        ylabel="cross-entropy (nats per token)",
        title="Calibration temperature of the Mini-GPT",
    )
    save_with_legend(fig, ax, report.path("calibration.png"))


def _check(report: LabReport, measured: _Measures) -> None:
    """Add the checks and the finding."""
    report.check(
        "tau -> 0 gives the argmax",
        f"TV {measured.tv_argmax[-1]:.1e} at tau = {SMALL_TAUS[-1]}",
        "< 1e-6",
        measured.tv_argmax[-1] < 1e-6,
    )
    report.check(
        "tau -> 0 with tied maxima gives uniform over them",
        f"TV {measured.tv_ties[-1]:.1e} at tau = {SMALL_TAUS[-1]}",
        "< 1e-6",
        measured.tv_ties[-1] < 1e-6,
    )
    report.check(
        "tau = 1 is the model's distribution",
        f"max error {measured.identity_err:.1e}",
        "< 1e-6",
        measured.identity_err < 1e-6,
    )
    report.check(
        "tau -> inf gives uniform",
        f"TV {measured.tv_uniform[-1]:.1e} at tau = {LARGE_TAUS[-1]:g}",
        "< 1e-4",
        measured.tv_uniform[-1] < 1e-4,
    )
    report.check(
        "dH/dtau by autodiff equals Var_q[z] / tau^3",
        f"max relative error {measured.rel.max():.1e}",
        "< 1e-3",
        measured.rel.max() < 1e-3,
    )
    report.check(
        "softmax(z)^(1/tau) differs from softmax(z/tau) at tau = 2",
        f"H {measured.h_power:.4f} vs {measured.h_right:.4f} bits",
        "entropies differ by > 0.01",
        abs(measured.h_power - measured.h_right) > 0.01,
    )
    report.check(
        "the fitted temperature lowers the validation cross-entropy",
        f"{measured.before:.4f} -> {measured.after:.4f} at tau = {measured.tau_star:.3f}",
        "after <= before",
        measured.after <= measured.before + 1e-7,
    )
    report.finding(
        "the model is over-confident on held-out text, as neural networks typically are",
        f"fitted tau = {measured.tau_star:.3f} "
        f"({'above' if measured.tau_star > 1 else 'at or below'} 1)",
        "over-confident: the calibration temperature is above 1",
        measured.tau_star > 1.0,
        "a fitted tau below 1 means the model spreads its probability more than its accuracy "
        "warrants (under-confident)"
        if measured.tau_star <= 1.0
        else "",
    )
