"""Tests for jaxsample.data: lexicon, grammar checker, corpus and tokenizer."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    SUBJECTS,
    TIME_MARKERS,
    Corpus,
    Tokenizer,
    Verdict,
    build_tokenizer,
    check_completion,
    check_sentence,
    compose_sentence,
    encode_sentences,
    generate_corpus,
    heldout_prompts,
    is_grammatical,
    next_word_counts,
    vocabulary,
)
from jaxsample.data.grammar import (
    FUTURE_FORMS,
    TENSE_NAMES,
    FutureForm,
    Subject,
    Tense,
    canonical_marker,
    verb_group,
)
from jaxsample.data.lexicon import VERBS, Verb
from jaxsample.data.tokenizer import SPECIAL_TOKENS

VERB = {verb.base: verb for verb in VERBS}
SUBJECT = {subject.word: subject for subject in SUBJECTS}
TENSES: tuple[Tense, ...] = ("future", "past", "habitual", "progressive")


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus()


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return build_tokenizer()


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


# --------------------------------------------------------------------------- corpus


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


# --------------------------------------------------------------------------- tokenizer


def test_vocabulary(tokenizer: Tokenizer) -> None:
    assert tokenizer.vocab[:4] == SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>", "<unk>")
    assert (tokenizer.pad_id, tokenizer.bos_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2, 3)
    assert tokenizer.vocab[4:] == vocabulary() == tuple(sorted(vocabulary()))
    assert 500 <= tokenizer.vocab_size <= 1024
    assert build_tokenizer() == tokenizer


def test_round_trip_on_every_corpus_sentence(corpus: Corpus, tokenizer: Tokenizer) -> None:
    for text in (*corpus.train, *corpus.val):
        ids = tokenizer.encode(text, bos=True, eos=True)
        assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
        assert tokenizer.unk_id not in ids
        assert tokenizer.decode(ids) == text
    text = corpus.train[0]
    ids = tokenizer.encode(text, bos=True, eos=True)
    assert tokenizer.decode(ids, skip_special=False) == f"<bos> {text} <eos>"
    assert tokenizer.decode(np.array(ids, dtype=np.int32)) == text


def test_encode_unknown_words(tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match=r"\['blorf', 'zorp'\]"):
        tokenizer.encode("Tomorrow she will blorf the zorp blorf")
    ids = tokenizer.encode("Tomorrow she will blorf the zorp", unknown="unk")
    assert ids[3] == ids[5] == tokenizer.unk_id
    assert tokenizer.decode(ids) == "Tomorrow she will <unk> the <unk>"
    assert tokenizer.encode("") == []
    with pytest.raises(ValueError, match="unknown must be"):
        tokenizer.encode("she", unknown="skip")  # type: ignore[arg-type]


def test_decode_out_of_range(tokenizer: Tokenizer) -> None:
    n = tokenizer.vocab_size
    with pytest.raises(ValueError, match=rf"token id {n} is out of range \[0, {n}\)"):
        tokenizer.decode([5, n])
    with pytest.raises(ValueError, match=r"token id -1 is out of range"):
        tokenizer.decode([-1])
    with pytest.raises(TypeError):
        tokenizer.decode([1.5])  # type: ignore[list-item]


def test_json_save_and_load(tokenizer: Tokenizer, tmp_path: Path) -> None:
    assert Tokenizer.from_json(tokenizer.to_json()) == tokenizer
    path = tmp_path / "tokenizer.json"
    tokenizer.save(path)
    assert Tokenizer.load(path) == tokenizer
    assert Tokenizer.load(str(path)).vocab == tokenizer.vocab
    with pytest.raises(FileNotFoundError):
        Tokenizer.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="malformed"):
        Tokenizer.from_json("{not json")
    with pytest.raises(ValueError, match="not a jaxsample-word-tokenizer"):
        Tokenizer.from_json(json.dumps({"vocab": list(tokenizer.vocab)}))
    document = json.loads(tokenizer.to_json())
    document["version"] = 99
    with pytest.raises(ValueError, match="unsupported tokenizer version 99"):
        Tokenizer.from_json(json.dumps(document))


@pytest.mark.parametrize(
    ("vocab", "message"),
    [
        (("<pad>", "<bos>", "<eos>", "a"), "must start with the special tokens"),
        ((*SPECIAL_TOKENS, "a", "a"), "'a' appears twice"),
        ((*SPECIAL_TOKENS, "two words"), "no whitespace"),
        ((*SPECIAL_TOKENS, ""), "non-empty"),
    ],
)
def test_invalid_vocabularies(vocab: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Tokenizer(vocab=vocab)


def test_encode_sentences(corpus: Corpus, tokenizer: Tokenizer) -> None:
    texts = corpus.train[:100]
    rows = encode_sentences(texts, tokenizer, n_ctx=16)
    assert rows.shape == (100, 17) and rows.dtype == np.int32
    for row, text in zip(rows, texts, strict=True):
        n = len(text.split(" ")) + 2
        assert row[0] == tokenizer.bos_id and row[n - 1] == tokenizer.eos_id
        assert np.all(row[n:] == tokenizer.pad_id)
        assert tokenizer.decode(row.tolist()) == text
    # The longest grammatical sentence fits n_ctx = MAX_SENTENCE_WORDS + 1.
    assert encode_sentences(corpus.train, tokenizer, MAX_SENTENCE_WORDS + 1).shape[1] == (
        MAX_SENTENCE_WORDS + 2
    )
    assert encode_sentences([], tokenizer, 4).shape == (0, 5)
    with pytest.raises(ValueError, match=r"needs 8 tokens .* n_ctx \+ 1 = 5: 'Tomorrow she"):
        encode_sentences(["Tomorrow she will walk the dog"], tokenizer, n_ctx=4)
    with pytest.raises(ValueError, match=r"sentence 1 .*'blorf'"):
        encode_sentences(["Tomorrow she will walk the dog", "blorf"], tokenizer, n_ctx=16)
    with pytest.raises(ValueError, match="n_ctx must be >= 1"):
        encode_sentences(texts, tokenizer, n_ctx=0)
