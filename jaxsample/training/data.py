"""The training data: the encoded corpus, its evaluation sets and the batch order.

The batch of step ``s`` is a pure function of ``(seed, s)`` (see :func:`batch_indices`),
so the data position of a run is just its step number.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import numpy as np

from jaxsample.data import Tokenizer, build_tokenizer, encode_sentences, generate_corpus
from jaxsample.training.config import TrainConfig

__all__ = ["TrainData", "batch_indices", "prepare_data"]


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray[Any, Any]:
    """Row indices of the training batch used at a step.

    Epoch ``e = step // (n // batch_size)`` uses the permutation
    ``np.random.default_rng([seed, e]).permutation(n)``, cut into consecutive batches.

    Args:
        n: Number of training sentences.
        batch_size: Rows per batch; must satisfy ``1 <= batch_size <= n``.
        seed: Data-order seed.
        step: Zero-based step number.

    Returns:
        int64 array of shape ``(batch_size,)`` with distinct indices in ``[0, n)``.

    Raises:
        ValueError: If ``batch_size`` is not in ``[1, n]`` or ``step < 0``.

    """
    if not 1 <= batch_size <= n:
        raise ValueError(
            f"batch_size must be in [1, {n}] (the training set size), got {batch_size}"
        )
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    per_epoch = n // batch_size
    epoch, index = divmod(step, per_epoch)
    perm = _epoch_permutation(n, seed, epoch)
    return perm[index * batch_size : (index + 1) * batch_size].copy()


@functools.lru_cache(maxsize=2)
def _epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng([seed, epoch]).permutation(n)


@dataclasses.dataclass(frozen=True)
class TrainData:
    """The encoded corpus of a run, as :func:`prepare_data` builds it.

    Attributes:
        tokenizer: The vocabulary.
        tokenizer_json: ``tokenizer.to_json()`` parsed, as recorded in checkpoints.
        corpus_sha256: The corpus fingerprint recorded in checkpoints.
        train_inputs: int32 ``[N, W - 1]`` training inputs (right-padded).
        train_targets: int32 ``[N, W - 1]`` next-token targets.
        eval_sets: ``{"train" | "val": (inputs, targets)}``, the first ``eval_size``
            sentences of each split.

    """

    tokenizer: Tokenizer
    tokenizer_json: Any
    corpus_sha256: str
    train_inputs: np.ndarray[Any, Any]
    train_targets: np.ndarray[Any, Any]
    eval_sets: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]


def _split(
    seqs: np.ndarray[Any, Any], width: int
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    seqs = np.asarray(seqs, dtype=np.int32)[:, :width]
    return seqs[:, :-1], seqs[:, 1:]


def prepare_data(config: TrainConfig) -> TrainData:
    """Generate and encode the corpus of a run, cut to the columns that hold tokens.

    Args:
        config: The run's settings (``corpus_seed``, ``n_ctx``, ``eval_size``,
            ``batch_size``).

    Returns:
        The training arrays and the evaluation sets.

    Raises:
        ValueError: If the batch is larger than the training set, or the corpus has
            no validation sentences.

    """
    corpus = generate_corpus(seed=config.corpus_seed)
    tokenizer = build_tokenizer()
    train_seqs = np.asarray(encode_sentences(corpus.train, tokenizer, config.n_ctx))
    eval_train = train_seqs[: config.eval_size]
    eval_val = np.asarray(encode_sentences(corpus.val[: config.eval_size], tokenizer, config.n_ctx))
    if train_seqs.shape[0] < config.batch_size:
        raise ValueError(
            f"batch_size {config.batch_size} exceeds the {train_seqs.shape[0]} training sentences"
        )
    if eval_val.shape[0] == 0:
        raise ValueError("the corpus has no validation sentences")
    # Drop the columns that are padding in every sequence: batches keep a fixed width,
    # and the model never sees positions the data cannot reach.
    pad = tokenizer.pad_id
    width = 2
    for seqs in (train_seqs, eval_val):
        real = np.nonzero(np.any(seqs != pad, axis=0))[0]
        if real.size:
            width = max(width, int(real[-1]) + 1)
    train_inputs, train_targets = _split(train_seqs, width)
    return TrainData(
        tokenizer=tokenizer,
        tokenizer_json=json.loads(tokenizer.to_json()),
        corpus_sha256=str(corpus.sha256),
        train_inputs=train_inputs,
        train_targets=train_targets,
        eval_sets={"train": _split(eval_train, width), "val": _split(eval_val, width)},
    )
