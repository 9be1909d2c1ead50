"""The training corpus: sentences drawn from the grammar, split into train and val.

:func:`generate_corpus` draws sentences independently: a time marker (the tense
shares are :data:`~jaxsample.data.grammar.TENSE_WEIGHTS`), a subject and a verb
uniformly, one of the verb's complements uniformly and, for future markers, a
future form by its weight (``will`` 70 %, then a long tail), so that a prompt
such as ``"Tomorrow she"`` has a skewed next-word distribution with many
alternatives.

The validation split measures generalisation in two ways: it holds (a) a random
share of the distinct sentences, every copy of each, and (b) every sentence of a
set of held-out (verb, subject) pairs, e.g. ``("bake", "Tom")``: the train split
never shows that subject with that verb, although it shows both elsewhere.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from jaxsample.data.grammar import (
    FUTURE_FORMS,
    SUBJECTS,
    TENSE_NAMES,
    TENSE_WEIGHTS,
    TIME_MARKERS,
    canonical_marker,
    compose_sentence,
    verb_group,
)
from jaxsample.data.lexicon import VERBS
from jaxsample.data.tokenizer import EOS_TOKEN

DEFAULT_N_SENTENCES: Final[int] = 50_000
"""Default number of sentences drawn (before the train/val split)."""

DEFAULT_VAL_FRACTION: Final[float] = 0.05
"""Default share of distinct non-held-out sentences moved to the val split."""

DEFAULT_N_HELDOUT_PAIRS: Final[int] = 24
"""Default number of held-out (verb, subject) pairs, each with a different verb."""

_VERB_BY_BASE = {verb.base: verb for verb in VERBS}
_SUBJECT_BY_WORD = {subject.word: subject for subject in SUBJECTS}


@dataclass(frozen=True)
class Corpus:
    """A generated corpus and its train/val split.

    Attributes:
        train: Training sentences in generation order (repeats kept, so that
            frequencies follow the grammar's weights).
        val: Validation sentences in generation order; no string in ``val``
            occurs in ``train``.
        seed: The seed the corpus was generated from.
        heldout_pairs: Sorted ``(verb base, subject)`` pairs whose sentences are
            all in ``val``.

    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    seed: int
    heldout_pairs: tuple[tuple[str, str], ...]

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the content (train, val and held-out pairs; not the seed)."""
        payload = json.dumps(
            {"train": self.train, "val": self.val, "heldout_pairs": self.heldout_pairs},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _check_count(name: str, value: int, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")


def generate_corpus(
    seed: int = 0,
    n_sentences: int = DEFAULT_N_SENTENCES,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    n_heldout_pairs: int = DEFAULT_N_HELDOUT_PAIRS,
) -> Corpus:
    """Generate a corpus deterministically from ``seed``.

    All randomness comes from ``numpy.random.default_rng(seed)``, so the same
    arguments always give the same corpus (and the same :attr:`Corpus.sha256`).
    The default size (50 000 sentences, about 47 000 in train) generates in a
    fraction of a second.

    Args:
        seed: Non-negative random seed.
        n_sentences: Number of sentences to draw, at least 1.
        val_fraction: Share of the distinct sentences of non-held-out pairs that
            go to ``val``, in ``[0, 1)``.
        n_heldout_pairs: Number of (verb, subject) pairs held out of train, from
            0 to the number of verbs; each uses a different verb.

    Returns:
        The :class:`Corpus`.

    Raises:
        ValueError: If ``seed`` is negative or not an integer, ``n_sentences``
            is below 1, ``val_fraction`` is outside ``[0, 1)`` or
            ``n_heldout_pairs`` is outside ``[0, len(VERBS)]``.

    """
    _check_count("seed", seed, 0)
    _check_count("n_sentences", n_sentences, 1)
    _check_count("n_heldout_pairs", n_heldout_pairs, 0, len(VERBS))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)

    heldout_verbs = rng.choice(len(VERBS), size=n_heldout_pairs, replace=False)
    heldout_subjects = rng.integers(len(SUBJECTS), size=n_heldout_pairs)
    heldout = frozenset(zip(heldout_verbs.tolist(), heldout_subjects.tolist(), strict=True))

    marker_p = np.array([TENSE_WEIGHTS[m.tense] * m.weight for m in TIME_MARKERS])
    future_p = np.array([form.weight for form in FUTURE_FORMS], dtype=np.float64)
    markers = rng.choice(len(TIME_MARKERS), size=n_sentences, p=marker_p / marker_p.sum())
    subjects = rng.integers(len(SUBJECTS), size=n_sentences)
    verbs = rng.integers(len(VERBS), size=n_sentences)
    complements = rng.random(n_sentences)
    futures = rng.choice(len(FUTURE_FORMS), size=n_sentences, p=future_p / future_p.sum())

    sentences: list[str] = []
    held: list[bool] = []
    draws = zip(
        markers.tolist(),
        subjects.tolist(),
        verbs.tolist(),
        complements.tolist(),
        futures.tolist(),
        strict=True,
    )
    for m, s, v, c, f in draws:
        marker, verb = TIME_MARKERS[m], VERBS[v]
        complement = verb.complements[int(c * len(verb.complements))]
        future = FUTURE_FORMS[f] if marker.tense == "future" else None
        sentences.append(compose_sentence(marker, SUBJECTS[s], verb, complement, future))
        held.append((v, s) in heldout)

    candidates = sorted({s for s, h in zip(sentences, held, strict=True) if not h})
    n_val = round(val_fraction * len(candidates))
    picked = rng.choice(len(candidates), size=n_val, replace=False)
    val_set = {candidates[i] for i in picked.tolist()}
    train = tuple(s for s, h in zip(sentences, held, strict=True) if not h and s not in val_set)
    val = tuple(s for s, h in zip(sentences, held, strict=True) if h or s in val_set)
    pairs = tuple(sorted((VERBS[v].base, SUBJECTS[s].word) for v, s in heldout))
    return Corpus(train=train, val=val, seed=seed, heldout_pairs=pairs)


def heldout_prompts(corpus: Corpus) -> list[str]:
    """Return prompts whose greedy completions should be grammatical.

    The list has two parts, in this order:

    1. every time marker with every subject (``"Tomorrow she"``,
       ``"Yesterday they"``, ``"Right now I"``, ``"Every day Tom"``, ...), in
       the order of ``TIME_MARKERS`` then ``SUBJECTS``;
    2. for each held-out (verb, subject) pair, one prompt per tense ending with
       the verb group, with the canonical marker and ``will`` for the future
       (``"Tomorrow Tom will bake"``, ``"Yesterday Tom baked"``,
       ``"Every day Tom bakes"``, ``"Right now Tom is baking"``). These
       prefixes never occur in the train split; only the complement is left
       to complete.

    Args:
        corpus: The corpus whose held-out pairs are used.

    Returns:
        The prompts, ``len(TIME_MARKERS) * len(SUBJECTS) + 4 * len(corpus.heldout_pairs)``
        of them.

    Raises:
        ValueError: If a held-out pair names an unknown verb or subject.

    """
    prompts = [f"{marker.text} {subject.word}" for marker in TIME_MARKERS for subject in SUBJECTS]
    for verb_base, subject_word in corpus.heldout_pairs:
        verb = _VERB_BY_BASE.get(verb_base)
        subject = _SUBJECT_BY_WORD.get(subject_word)
        if verb is None or subject is None:
            raise ValueError(
                f"held-out pair {(verb_base, subject_word)!r} names an unknown verb or subject"
            )
        for tense in TENSE_NAMES:
            marker = canonical_marker(tense)
            future = FUTURE_FORMS[0] if tense == "future" else None
            group = verb_group(tense, subject, verb, future)
            prompts.append(" ".join((*marker.words, subject.word, *group)))
    return prompts


def next_word_counts(
    corpus: Corpus, prompt: str, *, split: Literal["train", "val"] = "train"
) -> dict[str, int]:
    """Count the words that follow ``prompt`` at the start of sentences of a split.

    Args:
        corpus: The corpus.
        prompt: The start of a sentence, words separated by single spaces,
            e.g. ``"Tomorrow she"``.
        split: Which split to count in.

    Returns:
        ``{next word: count}``, most frequent first (ties alphabetical). A
        sentence equal to the prompt counts as ``"<eos>"``. Empty if no
        sentence starts with the prompt.

    Raises:
        ValueError: If ``prompt`` is empty or not single-spaced, or ``split``
            is neither ``"train"`` nor ``"val"``.

    """
    if not prompt or prompt != " ".join(prompt.split()):
        raise ValueError(
            f"prompt must be non-empty words separated by single spaces, got {prompt!r}"
        )
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    sentences = corpus.train if split == "train" else corpus.val
    prefix = prompt + " "
    counts: Counter[str] = Counter()
    for sentence in sentences:
        if sentence.startswith(prefix):
            counts[sentence[len(prefix) :].split(" ", 1)[0]] += 1
        elif sentence == prompt:
            counts[EOS_TOKEN] += 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
