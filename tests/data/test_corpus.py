"""Tests of jaxsample.data's corpus: determinism, the train/val split, held-out pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    SUBJECTS,
    TIME_MARKERS,
    Corpus,
    check_completion,
    generate_corpus,
    heldout_prompts,
    next_word_counts,
)
from jaxsample.data.grammar import FUTURE_FORMS, TENSE_NAMES, Subject, verb_group
from jaxsample.data.lexicon import VERBS, Verb
from tests.data.words import SUBJECT, VERB


def test_corpus_is_deterministic(corpus: Corpus) -> None:
    again = generate_corpus(seed=0)
    assert again == corpus
    assert again.sha256 == corpus.sha256
    assert len(corpus.sha256) == 64 and int(corpus.sha256, 16) >= 0
    other = generate_corpus(seed=1)
    assert other.train != corpus.train
    assert other.sha256 != corpus.sha256


def test_corpus_ignores_global_numpy_state() -> None:
    np.random.seed(1)
    first = generate_corpus(seed=5, n_sentences=2000)
    np.random.seed(2)
    np.random.random(10)
    assert generate_corpus(seed=5, n_sentences=2000) == first


def test_corpus_size_and_split(corpus: Corpus) -> None:
    assert len(corpus.train) + len(corpus.val) == 50_000
    assert 0.03 < len(corpus.val) / 50_000 < 0.15
    assert set(corpus.train).isdisjoint(corpus.val)
    assert corpus.seed == 0
    assert len(corpus.heldout_pairs) == 24
    assert len({verb for verb, _ in corpus.heldout_pairs}) == 24
    assert max(len(s.split(" ")) for s in corpus.train) <= MAX_SENTENCE_WORDS


def pair_prefixes(verb: Verb, subject: Subject) -> set[str]:
    """Every "marker subject verb-group" prefix a sentence of the pair starts with."""
    prefixes = set()
    for marker in TIME_MARKERS:
        futures = FUTURE_FORMS if marker.tense == "future" else (None,)
        for future in futures:
            group = verb_group(marker.tense, subject, verb, future)
            prefixes.add(" ".join((*marker.words, subject.word, *group)))
    return prefixes


def word_prefixes(text: str) -> list[str]:
    words = text.split(" ")
    return [" ".join(words[:n]) for n in range(1, len(words) + 1)]


def test_heldout_pairs_are_only_in_val(corpus: Corpus) -> None:
    held: dict[str, tuple[str, str]] = {}
    for verb_base, subject_word in corpus.heldout_pairs:
        for prefix in pair_prefixes(VERB[verb_base], SUBJECT[subject_word]):
            held[prefix] = (verb_base, subject_word)
    for text in corpus.train:
        assert not any(p in held for p in word_prefixes(text)), text
    seen_in_val = {held[p] for text in corpus.val for p in word_prefixes(text) if p in held}
    assert seen_in_val == set(corpus.heldout_pairs)
    # Both halves of every held-out pair still occur in train, with other partners.
    train_words = [set(text.split(" ")) for text in corpus.train]
    for verb_base, subject_word in corpus.heldout_pairs:
        forms = set(VERB[verb_base].forms)
        assert any(forms & words for words in train_words), verb_base
        assert any(subject_word in words for words in train_words), subject_word


def test_tomorrow_she_has_a_skewed_next_word_distribution(corpus: Corpus) -> None:
    counts = next_word_counts(corpus, "Tomorrow she")
    total = sum(counts.values())
    assert total > 500
    assert len(counts) >= 10
    assert next(iter(counts)) == "will"
    assert 0.5 <= counts["will"] / total <= 0.8
    assert sum(1 for c in counts.values() if c / total < 0.02) >= 8
    allowed = {form.words("third_singular")[0] for form in FUTURE_FORMS}
    assert set(counts) <= allowed


def test_next_word_counts_details(corpus: Corpus) -> None:
    text = corpus.train[0]
    first, rest = text.split(" ", 1)
    assert next_word_counts(corpus, text) == {"<eos>": corpus.train.count(text)}
    assert next_word_counts(corpus, "Tomorrow nobody") == {}
    val = next_word_counts(corpus, "Yesterday she", split="val")
    assert sum(val.values()) == sum(1 for s in corpus.val if s.startswith("Yesterday she "))
    assert rest.split(" ", 1)[0] in next_word_counts(corpus, first)
    for bad in ("", " Tomorrow she", "Tomorrow  she", "Tomorrow she "):
        with pytest.raises(ValueError, match="single spaces"):
            next_word_counts(corpus, bad)
    with pytest.raises(ValueError, match="split must be"):
        next_word_counts(corpus, "Tomorrow she", split="test")  # type: ignore[arg-type]


def test_heldout_prompts(corpus: Corpus) -> None:
    prompts = heldout_prompts(corpus)
    n_grid = len(TIME_MARKERS) * len(SUBJECTS)
    assert len(prompts) == n_grid + len(TENSE_NAMES) * len(corpus.heldout_pairs)
    assert len(set(prompts)) == len(prompts)
    for marker, subject in itertools.product(TIME_MARKERS, SUBJECTS):
        assert f"{marker.text} {subject.word}" in prompts[:n_grid]
    assert {"Tomorrow she", "Yesterday they", "Right now I", "Every day Tom"} <= set(prompts)
    train_prefixes = {p for text in corpus.train for p in word_prefixes(text)}
    pairs = [pair for pair in corpus.heldout_pairs for _ in TENSE_NAMES]
    for prompt, (verb_base, subject_word) in zip(prompts[n_grid:], pairs, strict=True):
        assert prompt.split(" ")[-1] in VERB[verb_base].forms
        assert subject_word in prompt.split(" ")
        assert prompt not in train_prefixes, prompt
        assert check_completion(prompt, VERB[verb_base].complements[-1]).ok, prompt
        assert not check_completion(prompt, "").ok


def test_generate_corpus_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed must be >= 0"):
        generate_corpus(seed=-1)
    with pytest.raises(ValueError, match="seed must be an integer"):
        generate_corpus(seed=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_sentences must be >= 1"):
        generate_corpus(n_sentences=0)
    with pytest.raises(ValueError, match="val_fraction"):
        generate_corpus(n_sentences=10, val_fraction=1.0)
    with pytest.raises(ValueError, match="n_heldout_pairs must be in"):
        generate_corpus(n_sentences=10, n_heldout_pairs=len(VERBS) + 1)
