"""The sentence grammar: time markers fix the tense of the verb group.

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
:mod:`jaxsample.data.lexicon`). The checker of these rules is
:mod:`jaxsample.data.checker`.
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
