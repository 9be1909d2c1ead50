"""The sentence grammar: time markers fix the tense, and a checker enforces it.

Every sentence has the shape ``MARKER SUBJECT VERB-GROUP COMPLEMENT``, with words
separated by single spaces and no punctuation (the tokenizer's end-of-sequence
token marks the end). The time marker decides the tense of the verb group:

* future (``Tomorrow``, ``Next week``, ``Soon``): one of the :data:`FUTURE_FORMS`
  followed by the base verb (``will walk``, ``is going to walk``, ``plans to walk``);
* simple past (``Yesterday``, ``Last week``): the past form (``walked``, ``ate``);
* present simple (``Every day``, ``Usually``): ``walks`` after he, she and names,
  ``walk`` after I, you, we and they;
* present progressive (``Right now``): ``am/is/are`` plus the ``-ing`` form.

The complement is one of the phrases the verb allows (see
:mod:`jaxsample.data.lexicon`). :func:`check_sentence` and
:func:`check_completion` parse a sentence against these rules and return a
:class:`Verdict` whose reason names the first broken rule (tense mismatch,
agreement, unknown verb, disallowed object, trailing words, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from jaxsample.data.lexicon import VERBS, Verb

Tense = Literal["future", "past", "habitual", "progressive"]
"""The four tenses of the grammar; ``habitual`` is the present simple."""

Person = Literal["first_singular", "third_singular", "other"]
"""Agreement class of a subject: ``I``; he, she and names; you, we and they."""

TENSE_NAMES: Final[dict[Tense, str]] = {
    "future": "future",
    "past": "simple past",
    "habitual": "present simple",
    "progressive": "present progressive",
}
"""Human-readable name of each tense, as used in checker messages."""

BE_FORMS: Final[dict[Person, str]] = {
    "first_singular": "am",
    "third_singular": "is",
    "other": "are",
}
"""The present form of *be* for each agreement class."""


@dataclass(frozen=True)
class TimeMarker:
    """A sentence-initial time expression and the tense it requires.

    Attributes:
        words: The marker's words, e.g. ``("Next", "week")``.
        tense: The tense the verb group must have after this marker.
        weight: Relative frequency of the marker among markers of its tense.

    """

    words: tuple[str, ...]
    tense: Tense
    weight: float

    @property
    def text(self) -> str:
        """The marker as it appears in a sentence, e.g. ``"Next week"``."""
        return " ".join(self.words)


@dataclass(frozen=True)
class Subject:
    """A sentence subject and its agreement class.

    Attributes:
        word: The subject word (``"she"``, ``"I"``, ``"Tom"``).
        person: Its agreement class, which selects ``am/is/are`` and ``walk/walks``.

    """

    word: str
    person: Person


@dataclass(frozen=True)
class FutureForm:
    """A way to express the future in front of a base verb.

    Attributes:
        label: Short name of the form, e.g. ``"will"`` or ``"be going to"``.
        first_singular: Its words after ``I`` (``("am", "going", "to")``).
        third_singular: Its words after he, she and names (``("plans", "to")``).
        other: Its words after you, we and they (``("plan", "to")``).
        weight: Relative frequency in the corpus (per mille; the forms sum to 1000).

    """

    label: str
    first_singular: tuple[str, ...]
    third_singular: tuple[str, ...]
    other: tuple[str, ...]
    weight: int

    def words(self, person: Person) -> tuple[str, ...]:
        """Return the form's words for a subject of agreement class ``person``."""
        if person == "first_singular":
            return self.first_singular
        if person == "third_singular":
            return self.third_singular
        return self.other

    def variants(self) -> tuple[tuple[str, ...], ...]:
        """Return the distinct word sequences of the form over all agreement classes."""
        return tuple(dict.fromkeys((self.first_singular, self.third_singular, self.other)))


def _fixed(words: str, weight: int) -> FutureForm:
    split = tuple(words.split(" "))
    return FutureForm(words, split, split, split, weight)


def _to_verb(verb: str, weight: int) -> FutureForm:
    return FutureForm(f"{verb} to", (verb, "to"), (verb + "s", "to"), (verb, "to"), weight)


def _be_going_to(weight: int) -> FutureForm:
    tail = ("going", "to")
    return FutureForm("be going to", ("am", *tail), ("is", *tail), ("are", *tail), weight)


TIME_MARKERS: Final[tuple[TimeMarker, ...]] = (
    TimeMarker(("Tomorrow",), "future", 0.5),
    TimeMarker(("Next", "week"), "future", 0.25),
    TimeMarker(("Soon",), "future", 0.25),
    TimeMarker(("Yesterday",), "past", 0.6),
    TimeMarker(("Last", "week"), "past", 0.4),
    TimeMarker(("Every", "day"), "habitual", 0.6),
    TimeMarker(("Usually",), "habitual", 0.4),
    TimeMarker(("Right", "now"), "progressive", 1.0),
)
"""Every time marker; the first marker of each tense is its canonical one."""

TENSE_WEIGHTS: Final[dict[Tense, float]] = {
    "future": 0.4,
    "past": 0.2,
    "habitual": 0.2,
    "progressive": 0.2,
}
"""Share of each tense in the corpus."""

SUBJECTS: Final[tuple[Subject, ...]] = (
    Subject("I", "first_singular"),
    Subject("you", "other"),
    Subject("he", "third_singular"),
    Subject("she", "third_singular"),
    Subject("we", "other"),
    Subject("they", "other"),
    *(Subject(name, "third_singular") for name in ("Tom", "Anna", "Sam", "Lucy", "Ben", "Maria")),
)
"""Every subject: six pronouns and six names."""

# The weights are Zipf-like with a dominant head: "will" takes 70 %, two forms
# take 15 % and 6 %, and nineteen forms share the remaining 9 %. Squaring the
# probabilities (temperature 0.5) leaves almost only the top three; at
# temperature 1 the long tail shows up, and at temperature 2 nearly all of it.
FUTURE_FORMS: Final[tuple[FutureForm, ...]] = (
    _fixed("will", 700),
    _be_going_to(150),
    _fixed("might", 60),
    _fixed("may", 13),
    _fixed("could", 9),
    _fixed("should", 7),
    _to_verb("plan", 6),
    _to_verb("want", 5),
    _fixed("can", 5),
    _fixed("must", 5),
    _to_verb("hope", 4),
    _fixed("probably will", 4),
    _to_verb("need", 4),
    _to_verb("intend", 4),
    _to_verb("expect", 3),
    _fixed("shall", 3),
    _to_verb("aim", 3),
    _fixed("ought to", 3),
    _to_verb("promise", 3),
    _fixed("definitely will", 3),
    _fixed("surely will", 3),
    _fixed("certainly will", 3),
)
"""Every future form, most frequent first; the first (``will``) is the canonical one."""


def canonical_marker(tense: Tense) -> TimeMarker:
    """Return the first time marker of ``tense`` (``Tomorrow``, ``Yesterday``, ...).

    Raises:
        ValueError: If ``tense`` is not one of the four tenses.

    """
    for marker in TIME_MARKERS:
        if marker.tense == tense:
            return marker
    raise ValueError(f"unknown tense {tense!r}; expected one of {sorted(TENSE_NAMES)}")


def verb_group(
    tense: Tense, subject: Subject, verb: Verb, future: FutureForm | None = None
) -> tuple[str, ...]:
    """Return the words of the verb group for a tense, subject and verb.

    Args:
        tense: The tense to express.
        subject: The subject, whose agreement class selects the verb forms.
        verb: The main verb.
        future: The future form; required for the future and forbidden otherwise.

    Returns:
        The verb group, e.g. ``("is", "going", "to", "walk")`` or ``("walked",)``.

    Raises:
        ValueError: If ``future`` is missing for the future tense or given for
            another tense.

    """
    if tense == "future":
        if future is None:
            raise ValueError("the future tense needs a future form, e.g. FUTURE_FORMS[0]")
        return (*future.words(subject.person), verb.base)
    if future is not None:
        raise ValueError(f"a future form was given for the {TENSE_NAMES[tense]}")
    if tense == "past":
        return (verb.past,)
    if tense == "habitual":
        return (verb.third if subject.person == "third_singular" else verb.base,)
    return (BE_FORMS[subject.person], verb.ing)


def compose_sentence(
    marker: TimeMarker,
    subject: Subject,
    verb: Verb,
    complement: str,
    future: FutureForm | None = None,
) -> str:
    """Compose a grammatical sentence from its parts.

    Args:
        marker: The time marker, which fixes the tense.
        subject: The subject.
        verb: The main verb.
        complement: One of ``verb.complements``.
        future: The future form, required exactly when ``marker`` is a future marker.

    Returns:
        The sentence, words separated by single spaces, e.g.
        ``"Tomorrow she will walk the dog"``.

    Raises:
        ValueError: If ``complement`` is not allowed for ``verb``, or ``future``
            is missing for a future marker or given for another marker.

    """
    if complement not in verb.complements:
        raise ValueError(
            f"{complement!r} is not an allowed complement of {verb.base!r}; "
            f"allowed: {list(verb.complements)}"
        )
    words = (*marker.words, subject.word, *verb_group(marker.tense, subject, verb, future))
    return " ".join((*words, complement))


def vocabulary() -> tuple[str, ...]:
    """Return every word the grammar can produce, sorted (uppercase before lowercase)."""
    words: set[str] = set(BE_FORMS.values())
    for marker in TIME_MARKERS:
        words.update(marker.words)
    words.update(subject.word for subject in SUBJECTS)
    for form in FUTURE_FORMS:
        for variant in form.variants():
            words.update(variant)
    for verb in VERBS:
        words.update(verb.forms)
        for complement in verb.complements:
            words.update(complement.split(" "))
    return tuple(sorted(words))


MAX_SENTENCE_WORDS: Final[int] = (
    max(len(marker.words) for marker in TIME_MARKERS)
    + 1
    + max(len(variant) for form in FUTURE_FORMS for variant in form.variants())
    + 1
    + max(len(c.split(" ")) for verb in VERBS for c in verb.complements)
)
"""An upper bound on the number of words in a grammatical sentence."""


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------

_FormKind = Literal["base", "third", "past", "ing"]
_FORM_KINDS: Final[tuple[_FormKind, ...]] = ("base", "third", "past", "ing")


def _index_verb_forms() -> dict[str, tuple[tuple[_FormKind, Verb], ...]]:
    """Map every verb form to its (kind, verb) entries (``read`` is base and past)."""
    index: dict[str, tuple[tuple[_FormKind, Verb], ...]] = {}
    for verb in VERBS:
        for kind, form in zip(_FORM_KINDS, verb.forms, strict=True):
            index[form] = (*index.get(form, ()), (kind, verb))
    return index


def _index_future_forms() -> dict[str, tuple[tuple[FutureForm, tuple[str, ...]], ...]]:
    """Map the first word of every future-form variant to its (form, variant) entries."""
    index: dict[str, tuple[tuple[FutureForm, tuple[str, ...]], ...]] = {}
    for form in FUTURE_FORMS:
        for variant in form.variants():
            index[variant[0]] = (*index.get(variant[0], ()), (form, variant))
    return index


_SUBJECT_BY_WORD: Final[dict[str, Subject]] = {subject.word: subject for subject in SUBJECTS}
_MARKERS_LONGEST_FIRST: Final[tuple[TimeMarker, ...]] = tuple(
    sorted(TIME_MARKERS, key=lambda marker: -len(marker.words))
)
_FORM_INDEX: Final = _index_verb_forms()
_FUTURE_BY_FIRST_WORD: Final = _index_future_forms()
_KNOWN_WORDS: Final[frozenset[str]] = frozenset(vocabulary())


@dataclass(frozen=True)
class Verdict:
    """The checker's answer for one sentence.

    Attributes:
        ok: Whether the sentence is grammatical and tense-consistent.
        reason: ``"grammatical"`` when ``ok``; otherwise what is wrong, e.g.
            ``"tense mismatch: 'Tomorrow' calls for the future (e.g. 'will walk'),
            but 'walked' is the simple past"``.

    """

    ok: bool
    reason: str


@dataclass(frozen=True)
class _Reading:
    """One way to read the words after the subject as verb group + complement."""

    tense: Tense
    verb: Verb
    group: tuple[str, ...]
    rest: tuple[str, ...]
    agreement: str | None


def _agreement_error(subject: Subject, expected: str, got: str) -> str:
    return f"agreement error: subject {subject.word!r} takes {expected!r}, not {got!r}"


def _future_readings(
    subject: Subject, words: tuple[str, ...], readings: list[_Reading], failures: list[str]
) -> None:
    for form, variant in _FUTURE_BY_FIRST_WORD.get(words[0], ()):
        n = len(variant)
        if words[:n] != variant:
            continue
        lead = " ".join(variant)
        expected = form.words(subject.person)
        agreement = (
            None if variant == expected else _agreement_error(subject, " ".join(expected), lead)
        )
        if len(words) == n:
            failures.append(f"the sentence stops after {lead!r}; a base-form verb must follow")
            continue
        head = words[n]
        entries = _FORM_INDEX.get(head, ())
        bases = [verb for kind, verb in entries if kind == "base"]
        for verb in bases:
            readings.append(_Reading("future", verb, (*variant, head), words[n + 1 :], agreement))
        if not bases and entries:
            failures.append(
                f"after {lead!r} the verb must be in the base form "
                f"{entries[0][1].base!r}, not {head!r}"
            )
        elif not bases:
            failures.append(f"unknown verb {head!r} after {lead!r}")


def _progressive_readings(
    subject: Subject, words: tuple[str, ...], readings: list[_Reading], failures: list[str]
) -> None:
    be = words[0]
    if be not in BE_FORMS.values():
        return
    expected = BE_FORMS[subject.person]
    agreement = None if be == expected else _agreement_error(subject, expected, be)
    if len(words) == 1:
        failures.append(f"the sentence stops after {be!r}; an -ing verb must follow")
        return
    head = words[1]
    entries = _FORM_INDEX.get(head, ())
    for kind, verb in entries:
        if kind == "ing":
            readings.append(_Reading("progressive", verb, (be, head), words[2:], agreement))
    if not any(kind == "ing" for kind, _ in entries):
        failures.append(f"after {be!r} the verb must end in -ing, got {head!r}")


def _simple_readings(
    subject: Subject, words: tuple[str, ...], readings: list[_Reading], failures: list[str]
) -> None:
    head, rest = words[0], words[1:]
    third_singular = subject.person == "third_singular"
    for kind, verb in _FORM_INDEX.get(head, ()):
        if kind == "past":
            readings.append(_Reading("past", verb, (head,), rest, None))
        elif kind == "third":
            problem = None if third_singular else _agreement_error(subject, verb.base, head)
            readings.append(_Reading("habitual", verb, (head,), rest, problem))
        elif kind == "base":
            problem = _agreement_error(subject, verb.third, head) if third_singular else None
            readings.append(_Reading("habitual", verb, (head,), rest, problem))
        else:
            be = BE_FORMS[subject.person]
            failures.append(f"{head!r} needs a form of 'be' before it: '{be} {head}'")


def _complement_problem(reading: _Reading) -> str | None:
    verb, words = reading.verb, reading.rest
    group = " ".join(reading.group)
    if not words:
        return (
            f"the sentence stops after {group!r}; {verb.base!r} needs an object or "
            f"complement such as {verb.complements[0]!r}"
        )
    text = " ".join(words)
    if text in verb.complements:
        return None
    split = [complement.split(" ") for complement in verb.complements]
    complete = [len(c) for c in split if list(words[: len(c)]) == c]
    if complete:
        extra = " ".join(words[max(complete) :])
        return f"unexpected words after the complete sentence: {extra!r}"
    if any(c[: len(words)] == list(words) for c in split):
        return f"incomplete complement {text!r} after {group!r}"
    return (
        f"{text!r} is not an allowed object or complement of {verb.base!r} "
        f"(allowed: {', '.join(repr(c) for c in verb.complements)})"
    )


def _check_words(words: tuple[str, ...]) -> Verdict:
    if not words:
        return Verdict(False, "empty sentence")
    marker = next((m for m in _MARKERS_LONGEST_FIRST if words[: len(m.words)] == m.words), None)
    if marker is None:
        choices = ", ".join(repr(m.text) for m in TIME_MARKERS)
        return Verdict(
            False, f"a sentence must start with a time marker ({choices}), not {words[0]!r}"
        )
    position = len(marker.words)
    if position == len(words):
        return Verdict(
            False,
            f"the sentence stops after the time marker {marker.text!r}; a subject must follow",
        )
    subject = _SUBJECT_BY_WORD.get(words[position])
    if subject is None:
        choices = ", ".join(repr(s.word) for s in SUBJECTS)
        return Verdict(
            False, f"expected a subject ({choices}) after {marker.text!r}, got {words[position]!r}"
        )
    rest = words[position + 1 :]
    if not rest:
        return Verdict(
            False, f"the sentence stops after the subject {subject.word!r}; a verb must follow"
        )

    readings: list[_Reading] = []
    failures: list[str] = []
    _future_readings(subject, rest, readings, failures)
    _progressive_readings(subject, rest, readings, failures)
    _simple_readings(subject, rest, readings, failures)
    if not readings:
        if failures:
            return Verdict(False, failures[0])
        if rest[0] in _KNOWN_WORDS:
            return Verdict(
                False, f"expected a verb after the subject {subject.word!r}, got {rest[0]!r}"
            )
        return Verdict(False, f"unknown verb {rest[0]!r}")

    best: tuple[tuple[int, bool, bool], list[str]] | None = None
    for reading in readings:
        problems = [reading.agreement] if reading.agreement else []
        tense_wrong = reading.tense != marker.tense
        if tense_wrong:
            future = FUTURE_FORMS[0] if marker.tense == "future" else None
            hint = " ".join(verb_group(marker.tense, subject, reading.verb, future))
            problems.append(
                f"tense mismatch: {marker.text!r} calls for the {TENSE_NAMES[marker.tense]} "
                f"(e.g. {hint!r}), but {' '.join(reading.group)!r} is the "
                f"{TENSE_NAMES[reading.tense]}"
            )
        complement = _complement_problem(reading)
        if complement is not None:
            problems.append(complement)
        if not problems:
            return Verdict(True, "grammatical")
        key = (len(problems), complement is not None, tense_wrong)
        if best is None or key < best[0]:
            best = (key, problems)
    assert best is not None
    return Verdict(False, "; ".join(best[1]))


def check_sentence(sentence: str) -> Verdict:
    """Check one sentence against the grammar.

    Args:
        sentence: Words separated by single spaces, without punctuation or
            special tokens, e.g. ``"Yesterday they ate lunch"``.

    Returns:
        ``Verdict(True, "grammatical")`` if the sentence is grammatical and its
        tense matches its time marker; otherwise ``ok`` is False and ``reason``
        names the problem: a missing time marker or subject, an unknown verb, a
        tense mismatch, an agreement error, a disallowed or incomplete object,
        unexpected trailing words, or irregular spacing. Never raises for
        string input.

    """
    if sentence != " ".join(sentence.split()):
        if not sentence.strip():
            return Verdict(False, "empty sentence")
        return Verdict(False, "words must be separated by single spaces, with none at either end")
    return _check_words(tuple(sentence.split(" ")) if sentence else ())


def is_grammatical(sentence: str) -> bool:
    """Return whether ``sentence`` is grammatical; shorthand for ``check_sentence(...).ok``."""
    return check_sentence(sentence).ok


def check_completion(prompt: str, completion: str) -> Verdict:
    """Check whether ``prompt + " " + completion`` is a grammatical sentence.

    Whitespace inside and around both strings is normalised (a decoded
    completion may carry stray spaces), so only the words matter. An empty
    completion checks the prompt alone, which is then usually unfinished.

    Args:
        prompt: The prompt, e.g. ``"Tomorrow she"``.
        completion: The generated continuation, e.g. ``"will walk the dog"``.

    Returns:
        The :class:`Verdict` for the joined sentence (see :func:`check_sentence`):
        ``check_completion("Tomorrow she", "walked the dog")`` is not ok, with a
        reason starting ``"tense mismatch"``. Never raises for string input.

    """
    return _check_words((*prompt.split(), *completion.split()))
