"""The grammar checker: whether a sentence keeps the rules of :mod:`~jaxsample.data.grammar`.

:func:`check_sentence` and :func:`check_completion` parse a sentence against the
grammar's rules (the time marker fixes the tense; the verb group agrees with the
subject; the complement is one the verb allows) and return a :class:`Verdict` whose
reason names the first broken rule (tense mismatch, agreement, unknown verb,
disallowed object, trailing words, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from jaxsample.data.grammar import (
    BE_FORMS,
    FUTURE_FORMS,
    SUBJECTS,
    TENSE_NAMES,
    TIME_MARKERS,
    FutureForm,
    Subject,
    Tense,
    TimeMarker,
    verb_group,
    vocabulary,
)
from jaxsample.data.lexicon import VERBS, Verb

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
