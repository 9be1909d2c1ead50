"""The lab's grid of settings, its prompts and the statistics it reports with."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import numpy as np

from jaxsample.data import SUBJECTS, TIME_MARKERS, generate_corpus, heldout_prompts
from jaxsample.labs._report import z_score
from jaxsample.samplers import MinP, Strategy, Temperature, TopK, TopNSigma, TopP, Typical, chain


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
def row_keys(key: jax.Array, setting: jax.Array, prompt: jax.Array, sample: jax.Array) -> jax.Array:
    """Key of completion ``sample`` of ``prompt`` under ``setting``: three nested fold_ins."""

    def one(s: jax.Array, j: jax.Array, i: jax.Array) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(key, s), j), i)

    return jax.vmap(one)(setting, prompt, sample)


def binomial_se(rate: float, n: int) -> float:
    """Standard error of a share of ``n`` trials, with one success and one failure added.

    The adjustment (Agresti and Caffo, 2000) keeps it above 0 when the share is
    exactly 0 or 1, so a difference of two shares is never "infinitely" significant.
    """
    adjusted = (rate * n + 1) / (n + 2)
    return math.sqrt(adjusted * (1 - adjusted) / (n + 2))


def gap_in_se(a: dict[str, Any], b: dict[str, Any]) -> float:
    """(a - b) correctness in standard errors of the difference (independent samples)."""
    return z_score(
        a["correctness"] - b["correctness"], math.hypot(a["correctness_se"], b["correctness_se"])
    )


def paired_step_in_se(a: list[float], b: list[float]) -> tuple[float, float]:
    """Mean of ``b - a`` over prompts and that mean in standard errors (paired by prompt)."""
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0
    return float(d.mean()), z_score(float(d.mean()), se)
