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

from pathlib import Path

from jaxsample.labs._report import LabReport
from jaxsample.labs.diversity._settings import (
    HOT_LADDER,
    SETTINGS,
    Setting,
    family_strategy,
    lab_prompts,
)
from jaxsample.labs.diversity._steps import check, measure, save
from jaxsample.model import Pretrained, load_pretrained

__all__ = ["HOT_LADDER", "SETTINGS", "Setting", "family_strategy", "lab_prompts", "run"]


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
    measured = measure(model, seed, quick)
    save(report, measured, model, seed, quick)
    check(report, measured)
    report.write_manifest()
    report.print_checks()
    return report
