"""Sampling strategies and the functions that apply them to logits.

The semantics of every built-in strategy is written once, in
:mod:`jaxsample.samplers._reference`; :func:`probs` is that definition and
:func:`sample` draws from it exactly (see :mod:`jaxsample.samplers._sampling`).
"""

from jaxsample.samplers._entropy import entropy, entropy_sweep, tempered_entropy
from jaxsample.samplers._reference import TOP_P_SLACK
from jaxsample.samplers._sampling import probs, sample, valid_rows
from jaxsample.samplers._strategies import (
    GREEDY_TAU,
    Chain,
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    chain,
)

__all__ = [
    "GREEDY_TAU",
    "TOP_P_SLACK",
    "Chain",
    "Greedy",
    "Strategy",
    "Temperature",
    "TopK",
    "TopP",
    "chain",
    "entropy",
    "entropy_sweep",
    "probs",
    "sample",
    "tempered_entropy",
    "valid_rows",
]
