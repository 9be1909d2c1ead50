"""Sampling strategies and the functions that apply them to logits."""

from jaxsample.samplers._sampling import entropy, probs, sample, valid_rows
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
    "Chain",
    "Greedy",
    "Strategy",
    "Temperature",
    "TopK",
    "TopP",
    "chain",
    "entropy",
    "probs",
    "sample",
    "valid_rows",
]
