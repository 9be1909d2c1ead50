"""Sampling strategies and the functions that apply them to logits.

The semantics of every built-in strategy is written once, in
:mod:`jaxsample.samplers._reference`; :func:`probs` is that definition and
:func:`sample` draws from it exactly (see :mod:`jaxsample.samplers._sampling`).
"""

from jaxsample.samplers._entropy import entropy, entropy_sweep, tempered_entropy
from jaxsample.samplers._history import History
from jaxsample.samplers._ids import Allow, Ban, LogitBias
from jaxsample.samplers._layout import BLOCKS, VOCAB_MULTIPLE
from jaxsample.samplers._penalties import (
    DRY,
    FrequencyPenalty,
    MinNewTokens,
    Mirostat2,
    NoRepeatNGram,
    PresencePenalty,
    RepetitionPenalty,
)
from jaxsample.samplers._reference import TOP_P_SLACK
from jaxsample.samplers._sampling import Known, known_from, probs, sample, sample_known, valid_rows
from jaxsample.samplers._stepping import advance, bind, init_history, needs_history, sample_step
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
from jaxsample.samplers._vocabulary import (
    XTC,
    Epsilon,
    Eta,
    MinP,
    TopNSigma,
    Typical,
    check_rows,
)

#: The most devices the vocabulary of a row may be split over (a divisor of it).
MAX_VOCAB_SHARDS = BLOCKS

__all__ = [
    "DRY",
    "GREEDY_TAU",
    "MAX_VOCAB_SHARDS",
    "TOP_P_SLACK",
    "VOCAB_MULTIPLE",
    "XTC",
    "Allow",
    "Ban",
    "Chain",
    "Epsilon",
    "Eta",
    "FrequencyPenalty",
    "Greedy",
    "History",
    "Known",
    "LogitBias",
    "MinNewTokens",
    "MinP",
    "Mirostat2",
    "NoRepeatNGram",
    "PresencePenalty",
    "RepetitionPenalty",
    "Strategy",
    "Temperature",
    "TopK",
    "TopNSigma",
    "TopP",
    "Typical",
    "advance",
    "bind",
    "chain",
    "check_rows",
    "entropy",
    "entropy_sweep",
    "init_history",
    "known_from",
    "needs_history",
    "probs",
    "sample",
    "sample_known",
    "sample_step",
    "tempered_entropy",
    "valid_rows",
]
