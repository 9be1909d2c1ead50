"""Sampling strategies and the functions that apply them to logits.

The semantics of every built-in strategy is written once, in
:mod:`jaxsample.samplers._reference`; :func:`probs` is that definition and
:func:`sample` draws from it exactly (see :mod:`jaxsample.samplers._sampling`).
"""

from jaxsample.samplers._entropy import entropy, entropy_sweep, tempered_entropy
from jaxsample.samplers._reference import BLOCKS, TOP_P_SLACK, VOCAB_MULTIPLE
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

#: The most devices the vocabulary of a row may be split over (a divisor of it).
MAX_VOCAB_SHARDS = BLOCKS

__all__ = [
    "GREEDY_TAU",
    "MAX_VOCAB_SHARDS",
    "TOP_P_SLACK",
    "VOCAB_MULTIPLE",
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
