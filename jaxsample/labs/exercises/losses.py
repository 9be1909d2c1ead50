"""Exercise 5.5: the shipped model's training and validation losses.

From its manifest, and recomputed on the corpus with training's evaluator.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    encode_sentences,
    generate_corpus,
)
from jaxsample.labs._report import LabReport, print_table
from jaxsample.model import Pretrained
from jaxsample.training.steps import make_evaluator

# 5.5
LOSS_TOL = 1e-4
N_TRAIN_SAMPLE = 3000
N_LARGER_QUICK = 300
LOSS_BATCH = 256


def split_loss(model: Pretrained, sentences: list[str] | tuple[str, ...]) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``sentences``.

    Each sentence is encoded as ``<bos> words <eos>`` and padded; every non-pad
    target counts once (training's evaluator,
    :func:`jaxsample.training.steps.make_evaluator`, in batches of 256 rows), and
    the sum is divided by the number of targets. (GPT-2 pads with its end token, so
    its final ``<|endoftext|>`` target is not counted.)

    Args:
        model: a loaded model.
        sentences: the sentences (words of the model's vocabulary).

    Returns:
        The loss in nats per token.

    Raises:
        ValueError: if ``sentences`` is empty or holds unknown words.
    """
    if len(sentences) == 0:
        raise ValueError("split_loss needs at least one sentence")
    tok = model.tokenizer
    rows = encode_sentences(list(sentences), tok, model.config.n_ctx)
    # Columns that are padding in every row change nothing (causal attention, pad
    # targets ignored); one fixed width keeps a single compilation. Subword tokens can
    # need more columns than words: the width then grows to the last non-pad column.
    used = np.flatnonzero(np.any(rows != tok.pad_id, axis=0))
    width = min(rows.shape[1], MAX_SENTENCE_WORDS + 2)
    rows = rows[:, : max(width, int(used[-1]) + 1 if used.size else 1)]
    pad = (-len(rows)) % LOSS_BATCH
    rows = np.concatenate([rows, np.full((pad, rows.shape[1]), tok.pad_id, np.int32)])
    evaluate = make_evaluator(model.config, tok.pad_id, batch=LOSS_BATCH)
    return evaluate(model.params, (rows[:, :-1], rows[:, 1:]))


def exercise(report: LabReport, model: Pretrained, quick: bool) -> dict[str, Any]:
    """Run exercise 5.5 on ``model`` and add its checks to ``report``; return its data."""
    m = model.manifest
    tc = m.get("train_config", {})
    eval_size = int(tc.get("eval_size", 512))
    corpus = generate_corpus(seed=int(tc.get("corpus_seed", 0)))
    first_train = split_loss(model, corpus.train[:eval_size])
    first_val = split_loss(model, corpus.val[:eval_size])
    val_set = corpus.val[:N_LARGER_QUICK] if quick else corpus.val
    full_val = split_loss(model, val_set)
    rng = np.random.default_rng(0)
    n_pick = min(N_LARGER_QUICK if quick else N_TRAIN_SAMPLE, len(corpus.train))
    pick = rng.choice(len(corpus.train), size=n_pick, replace=False)
    sample_train = split_loss(model, [corpus.train[i] for i in sorted(pick.tolist())])
    recorded = m.get("final_train_loss") is not None and m.get("final_val_loss") is not None
    manifest_train: float | None = float(m["final_train_loss"]) if recorded else None
    manifest_val: float | None = float(m["final_val_loss"]) if recorded else None
    uniform = math.log(model.tokenizer.vocab_size)
    print("\n=== 5.5  Training and validation loss of the model (nats per token)")
    print_table(
        "Manifest vs recomputed",
        ["split", "manifest", f"recomputed, first {eval_size}", "recomputed, larger set"],
        [
            [
                "train",
                "n/a" if manifest_train is None else manifest_train,
                first_train,
                f"{sample_train:.4f} ({len(pick)} random sentences)",
            ],
            [
                "validation",
                "n/a" if manifest_val is None else manifest_val,
                first_val,
                f"{full_val:.4f} ({len(val_set)} sentences)",
            ],
        ],
    )
    print(
        f"  Uniform guessing costs log(V) = {uniform:.3f} nats. The validation split holds\n"
        "  sentences never seen in training, including every sentence of the held-out\n"
        "  (verb, subject) pairs, so its loss is the generalisation measure."
    )
    if manifest_train is None or manifest_val is None:
        print(
            "  This model's folder records no training losses (e.g. a Hugging Face GPT-2), so\n"
            "  there is nothing to compare; its losses are per token of its own tokenizer."
        )
    else:
        worst = max(abs(first_train - manifest_train), abs(first_val - manifest_val))
        report.check(
            "5.5 recomputed losses equal the manifest's (same sentences)",
            f"train {first_train:.5f} vs {manifest_train:.5f}, val {first_val:.5f} vs "
            f"{manifest_val:.5f}",
            f"|difference| <= {LOSS_TOL:g}",
            worst <= LOSS_TOL,
        )
    return {
        "eval_size": eval_size,
        "manifest": {"train": manifest_train, "val": manifest_val},
        "recomputed_first": {"train": first_train, "val": first_val},
        "recomputed_larger": {
            "train_random_sample": sample_train,
            "train_sample_size": len(pick),
            "val_larger": full_val,
            "val_larger_size": len(val_set),
        },
        "uniform_loss": uniform,
    }
