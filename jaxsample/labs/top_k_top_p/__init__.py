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

from pathlib import Path

from jaxsample.labs._report import LabReport
from jaxsample.labs.top_k_top_p._figures import plot
from jaxsample.labs.top_k_top_p._measure import (
    GRID_KS,
    GRID_PS,
    GRID_TAUS,
    KS,
    ORDER_P,
    ORDER_TAUS,
    PROMPTS,
    PS,
    kept_against_k,
    kept_against_p,
    measure,
    temperature_order,
    truncation_grid,
)
from jaxsample.labs.top_k_top_p._outputs import check, print_tables, save_data
from jaxsample.model import Pretrained, load_pretrained

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
    m = measure(model, seed)
    print_tables(m)
    save_data(report, m, model, quick)
    plot(report, m)
    check(report, m)
    report.write_manifest()
    report.print_checks()
    return report
