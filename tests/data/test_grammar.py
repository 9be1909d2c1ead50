"""Tests of jaxsample.data's lexicon, grammar and grammar checker."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jaxsample.data import (
    SUBJECTS,
    TIME_MARKERS,
    Corpus,
    Verdict,
    check_completion,
    check_sentence,
    compose_sentence,
    is_grammatical,
)
from jaxsample.data.grammar import (
    FUTURE_FORMS,
    FutureForm,
    Subject,
    Tense,
    canonical_marker,
    verb_group,
)
from jaxsample.data.lexicon import VERBS, Verb
from tests.data.words import SUBJECT, VERB

TENSES: tuple[Tense, ...] = ("future", "past", "habitual", "progressive")


def sentence(tense: Tense, subject: Subject, verb: Verb, marker_tense: Tense | None = None) -> str:
    """Marker of ``marker_tense`` (default: ``tense``) + subject + verb group of ``tense``."""
    marker = canonical_marker(marker_tense or tense)
    future = FUTURE_FORMS[0] if tense == "future" else None
    words = (*marker.words, subject.word, *verb_group(tense, subject, verb, future))
    return " ".join((*words, verb.complements[0]))


# --------------------------------------------------------------------------- lexicon


def test_at_least_150_distinct_verbs() -> None:
    assert len(VERBS) >= 150
    assert len(VERB) == len(VERBS)


@pytest.mark.parametrize(
    ("base", "forms"),
    [
        ("walk", ("walk", "walks", "walked", "walking")),
        ("go", ("go", "goes", "went", "going")),
        ("have", ("have", "has", "had", "having")),
        ("do", ("do", "does", "did", "doing")),
        ("eat", ("eat", "eats", "ate", "eating")),
        ("read", ("read", "reads", "read", "reading")),
        ("make", ("make", "makes", "made", "making")),
        ("see", ("see", "sees", "saw", "seeing")),
        ("swim", ("swim", "swims", "swam", "swimming")),
        ("stop", ("stop", "stops", "stopped", "stopping")),
        ("carry", ("carry", "carries", "carried", "carrying")),
        ("play", ("play", "plays", "played", "playing")),
        ("tie", ("tie", "ties", "tied", "tying")),
        ("fix", ("fix", "fixes", "fixed", "fixing")),
        ("watch", ("watch", "watches", "watched", "watching")),
        ("fly", ("fly", "flies", "flew", "flying")),
        ("ski", ("ski", "skis", "skied", "skiing")),
        ("bring", ("bring", "brings", "brought", "bringing")),
        ("put", ("put", "puts", "put", "putting")),
        ("cut", ("cut", "cuts", "cut", "cutting")),
        ("begin", ("begin", "begins", "began", "beginning")),
        ("visit", ("visit", "visits", "visited", "visiting")),
        ("travel", ("travel", "travels", "traveled", "traveling")),
        ("freeze", ("freeze", "freezes", "froze", "freezing")),
        ("lay", ("lay", "lays", "laid", "laying")),
    ],
)
def test_verb_forms(base: str, forms: tuple[str, str, str, str]) -> None:
    assert VERB[base].forms == forms


def test_transitivity_tags_and_complements() -> None:
    assert VERB["read"].transitive and VERB["walk"].transitive
    assert not VERB["sleep"].transitive and not VERB["go"].transitive
    assert "the dog" in VERB["walk"].objects and "to school" in VERB["walk"].adverbials
    assert {"a book", "the letter"} <= set(VERB["read"].objects)
    for verb in VERBS:
        assert verb.complements, verb.base
        assert verb.transitive == bool(verb.objects)
        assert len(set(verb.complements)) == len(verb.complements), verb.base
        split = [tuple(c.split(" ")) for c in verb.complements]
        for a, b in itertools.permutations(split, 2):
            # A complement that is a prefix of another would make truncation undetectable.
            assert b[: len(a)] != a, (verb.base, a, b)


def test_verb_forms_are_unambiguous() -> None:
    owner: dict[str, str] = {}
    for verb in VERBS:
        for form in set(verb.forms):
            assert owner.setdefault(form, verb.base) == verb.base, form
    function_words = {w for form in FUTURE_FORMS for v in form.variants() for w in v}
    function_words |= {"am", "is", "are"} | {s.word for s in SUBJECTS}
    function_words |= {w for m in TIME_MARKERS for w in m.words}
    assert set(owner) & function_words == {"going"}  # "going" is go's -ing form


def test_future_forms_are_skewed_with_a_long_tail() -> None:
    weights = [form.weight for form in FUTURE_FORMS]
    assert sum(weights) == 1000
    assert weights == sorted(weights, reverse=True)
    assert FUTURE_FORMS[0].label == "will"
    first_words = {form.words("third_singular")[0] for form in FUTURE_FORMS}
    assert len(first_words) == len(FUTURE_FORMS) >= 15
    # Expected distinct first words in 100 draws at temperature T, from the weights.
    p = np.array(weights, dtype=np.float64) / 1000

    def expected_distinct(temperature: float) -> float:
        q = p ** (1 / temperature)
        q /= q.sum()
        return float(np.sum(1 - (1 - q) ** 100))

    assert expected_distinct(0.5) <= 3.0
    assert 5.0 <= expected_distinct(1.0) <= 15.0
    assert expected_distinct(2.0) >= 15.0


# --------------------------------------------------------------------------- grammar


def test_example_pair() -> None:
    assert check_completion("Tomorrow she", "will walk the dog") == Verdict(True, "grammatical")
    verdict = check_completion("Tomorrow she", "walked the dog")
    assert not verdict.ok
    assert "tense mismatch" in verdict.reason
    assert "'walked'" in verdict.reason and "simple past" in verdict.reason


@pytest.mark.parametrize(
    "text",
    [
        "Tomorrow she will walk the dog",
        "Next week I am going to read a book",
        "Soon they plan to visit the zoo",
        "Tomorrow Tom plans to visit the zoo",
        "Tomorrow she ought to fix the car",
        "Tomorrow we probably will go home",
        "Yesterday she ate an apple",
        "Last week they read the letter",
        "Every day she walks to school",
        "Usually they walk to school",
        "Every day they read the newspaper",
        "Right now she is walking the dog",
        "Right now they are walking in the park",
        "Right now I am eating lunch",
        "Right now Anna is going to school",
        "Tomorrow she is going to go to school",
    ],
)
def test_grammatical_sentences(text: str) -> None:
    assert check_sentence(text) == Verdict(True, "grammatical")
    assert is_grammatical(text)


@pytest.mark.parametrize(
    ("prompt", "completion", "reason"),
    [
        ("Tomorrow she", "will blorf the dog", "unknown verb 'blorf'"),
        ("Yesterday she", "blorfed the dog", "unknown verb 'blorfed'"),
        ("Tomorrow she", "will read the dog", "'the dog' is not an allowed object"),
        ("Tomorrow she", "will walk the dog now", "unexpected words after the complete sentence"),
        ("Tomorrow she", "will walk the dog xyzzy", "unexpected words after the complete sentence"),
        ("Every day she", "walk the dog", "agreement error: subject 'she' takes 'walks'"),
        ("Every day they", "walks the dog", "agreement error: subject 'they' takes 'walk'"),
        ("Right now I", "is walking the dog", "agreement error: subject 'I' takes 'am'"),
        ("Tomorrow they", "plans to walk the dog", "takes 'plan to', not 'plans to'"),
        ("Tomorrow she", "will walked the dog", "base form 'walk', not 'walked'"),
        ("Tomorrow she", "is walking the dog", "tense mismatch"),
        ("Right now she", "is going to walk the dog", "tense mismatch"),
        ("Yesterday she", "will walk the dog", "tense mismatch"),
        ("Every day she", "walked the dog", "tense mismatch"),
        ("Right now she", "walking the dog", "needs a form of 'be'"),
        ("Tomorrow she", "will", "stops after 'will'"),
        ("Tomorrow she", "will walk", "stops after 'will walk'"),
        ("Tomorrow she", "will walk the", "incomplete complement 'the'"),
        ("Tomorrow she", "", "stops after the subject 'she'"),
        ("Tomorrow", "", "stops after the time marker 'Tomorrow'"),
        ("Tomorrow the", "dog will walk", "expected a subject"),
        ("Later she", "will walk the dog", "must start with a time marker"),
        ("", "", "empty sentence"),
    ],
)
def test_rejections_name_the_problem(prompt: str, completion: str, reason: str) -> None:
    verdict = check_completion(prompt, completion)
    assert not verdict.ok
    assert reason in verdict.reason


def test_spacing_is_strict_for_sentences_and_normalised_for_completions() -> None:
    assert not is_grammatical("Tomorrow she will walk the dog ")
    assert not is_grammatical("Tomorrow she  will walk the dog")
    assert "single spaces" in check_sentence("Tomorrow\tshe will walk the dog").reason
    assert not is_grammatical("")
    assert check_completion("Tomorrow she ", " will walk the dog").ok


def test_base_equal_past_verbs_are_ambiguous_only_without_third_person() -> None:
    assert is_grammatical("Yesterday they read a book")
    assert is_grammatical("Every day they read a book")
    assert is_grammatical("Yesterday she read a book")
    assert "agreement" in check_sentence("Every day she read a book").reason


def test_checker_accepts_the_whole_corpus(corpus: Corpus) -> None:
    rejected = [s for s in (*corpus.train, *corpus.val) if not is_grammatical(s)]
    assert rejected == []


def test_checker_rejects_swapped_tense() -> None:
    checked = 0
    for verb, subject, tense, marker_tense in itertools.product(VERBS, SUBJECTS, TENSES, TENSES):
        text = sentence(tense, subject, verb, marker_tense)
        ambiguous = (
            {tense, marker_tense} == {"past", "habitual"}
            and subject.person != "third_singular"
            and verb.base == verb.past
        )
        verdict = check_sentence(text)
        if tense == marker_tense or ambiguous:
            assert verdict.ok, (text, verdict)
            continue
        assert not verdict.ok, text
        # "Every day he cut ..." reads best as a present with a missing -s.
        present_without_s = (marker_tense, tense) == ("habitual", "past") and verb.base == verb.past
        expected = "agreement error" if present_without_s else "tense mismatch"
        assert expected in verdict.reason, (text, verdict)
        checked += 1
    assert checked > 10 * len(VERBS) * len(SUBJECTS)


def test_checker_rejects_wrong_agreement() -> None:
    agreeing = [form for form in FUTURE_FORMS if len(form.variants()) > 1]
    assert {form.label for form in agreeing} >= {"be going to", "plan to", "want to"}
    checked = 0
    for verb in VERBS:
        for right, wrong in itertools.permutations(SUBJECTS, 2):
            cases: list[tuple[Tense, FutureForm | None]] = [
                ("habitual", None),
                ("progressive", None),
                *(("future", form) for form in agreeing),
            ]
            for tense, future in cases:
                group = verb_group(tense, right, verb, future)
                if group == verb_group(tense, wrong, verb, future):
                    continue
                marker = canonical_marker(tense)
                words = (*marker.words, wrong.word, *group, verb.complements[0])
                verdict = check_sentence(" ".join(words))
                assert not verdict.ok, words
                assert "agreement error" in verdict.reason, (words, verdict)
                checked += 1
    assert checked > 1000


def unique_sentences(corpus: Corpus) -> list[str]:
    return sorted({*corpus.train, *corpus.val})


def test_checker_rejects_truncated_sentences(corpus: Corpus) -> None:
    for text in unique_sentences(corpus):
        words = text.split(" ")
        for cut in range(len(words)):
            truncated = " ".join(words[:cut])
            assert not is_grammatical(truncated), truncated


def test_checker_rejects_duplicated_words(corpus: Corpus) -> None:
    for text in unique_sentences(corpus)[::10]:
        words = text.split(" ")
        for i in range(len(words)):
            doubled = " ".join((*words[: i + 1], *words[i:]))
            assert not is_grammatical(doubled), doubled


def test_compose_sentence_validates_its_parts() -> None:
    she, walk = SUBJECT["she"], VERB["walk"]
    tomorrow, yesterday = canonical_marker("future"), canonical_marker("past")
    assert compose_sentence(tomorrow, she, walk, "the dog", FUTURE_FORMS[0]) == (
        "Tomorrow she will walk the dog"
    )
    with pytest.raises(ValueError, match="not an allowed complement of 'walk'"):
        compose_sentence(yesterday, she, walk, "a book")
    with pytest.raises(ValueError, match="needs a future form"):
        compose_sentence(tomorrow, she, walk, "the dog")
    with pytest.raises(ValueError, match="future form was given"):
        compose_sentence(yesterday, she, walk, "the dog", FUTURE_FORMS[0])
    with pytest.raises(ValueError, match="unknown tense"):
        canonical_marker("pluperfect")  # type: ignore[arg-type]
