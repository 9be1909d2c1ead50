"""The verb lexicon: every verb of the grammar with its forms and allowed complements.

Each :class:`Verb` carries its four forms (base, third person singular, simple
past, ``-ing``) and the phrases that may follow it: direct objects (noun
phrases such as ``"the dog"``) and adverbial complements (prepositional or
adverbial phrases such as ``"to school"``). A verb with at least one direct
object is transitive. Every sentence of the grammar ends with exactly one of
its verb's complements, so a sentence never stops right after the verb.

The verbs and their complements are data, read once from the table
``jaxsample/assets/verbs.txt``. Regular forms are derived by English spelling
rules; irregular pasts are given there explicitly, and verbs whose final
consonant doubles (``stop -> stopped``) are listed in :data:`_DOUBLED_FINAL`.
Only dynamic verbs appear, so the present progressive (``"she is walking"``) is
natural for every one of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_DOUBLED_FINAL = frozenset(
    {
        "begin", "chop", "cut", "dig", "drop", "get", "hit", "hug", "jog", "knit", "put",
        "run", "set", "shop", "shut", "sit", "split", "stir", "stop", "swim", "win", "wrap",
    }
)  # fmt: skip
_SIBILANT_ENDINGS = ("s", "sh", "ch", "x", "z", "o")
_VOWELS = frozenset("aeiou")

Phrases = tuple[str, ...]
"""Phrases that may follow a verb (objects or adverbials), in the table's order."""


@dataclass(frozen=True)
class Verb:
    """A verb: its four forms and the complements that may follow it.

    Attributes:
        base: The base form (``"walk"``), used after modals and ``to``.
        third: The present third person singular (``"walks"``).
        past: The simple past (``"walked"``, ``"ate"``).
        ing: The present participle (``"walking"``).
        objects: Direct objects the verb accepts (noun phrases), possibly empty.
        adverbials: Prepositional or adverbial complements, possibly empty.

    """

    base: str
    third: str
    past: str
    ing: str
    objects: Phrases
    adverbials: Phrases

    @property
    def transitive(self) -> bool:
        """Whether the verb takes a direct object (at least one entry in ``objects``)."""
        return bool(self.objects)

    @property
    def complements(self) -> Phrases:
        """Every phrase allowed after the verb: the objects, then the adverbials."""
        return self.objects + self.adverbials

    @property
    def forms(self) -> tuple[str, str, str, str]:
        """The four forms ``(base, third, past, ing)``."""
        return (self.base, self.third, self.past, self.ing)


def _third_person(base: str) -> str:
    if base == "have":
        return "has"
    if base.endswith(_SIBILANT_ENDINGS):
        return base + "es"
    if base.endswith("y") and base[-2] not in _VOWELS:
        return base[:-1] + "ies"
    return base + "s"


def _regular_past(base: str) -> str:
    if base.endswith("e"):
        return base + "d"
    if base.endswith("y") and base[-2] not in _VOWELS:
        return base[:-1] + "ied"
    if base in _DOUBLED_FINAL:
        return base + base[-1] + "ed"
    return base + "ed"


def _present_participle(base: str) -> str:
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    if base in _DOUBLED_FINAL:
        return base + base[-1] + "ing"
    return base + "ing"


def _verb(base: str, objects: Phrases, adverbials: Phrases, past: str) -> Verb:
    """Build a verb: its third person and ``-ing`` form by rule, the given past."""
    return Verb(
        base=base,
        third=_third_person(base),
        past=past,
        ing=_present_participle(base),
        objects=objects,
        adverbials=adverbials,
    )


def _phrases(text: str) -> Phrases:
    """The ``|``-separated phrases of ``text``, stripped (none for blank text)."""
    return tuple(phrase.strip() for phrase in text.split("|")) if text.strip() else ()


def _read_table(path: Path) -> dict[str, tuple[Verb, ...]]:
    """The verbs of each ``[section]`` of the table at ``path``, in the file's order.

    One verb a line, ``base [past] objects / adverbials``: the objects and the
    adverbials are ``|``-separated phrases, either possibly empty (a line without
    objects starts its complements with ``/``); ``past`` is given in the
    ``[irregular]`` section only. Blank lines and ``#`` comments are skipped.
    """
    sections: dict[str, list[Verb]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.strip("[]")
            sections[section] = []
        elif line and not line.startswith("#"):
            irregular = section == "irregular"
            base, *rest = line.split(maxsplit=2 if irregular else 1)
            past = rest.pop(0) if irregular else _regular_past(base)
            objects, _, adverbials = (rest[0] if rest else "").partition("/")
            sections[section].append(_verb(base, _phrases(objects), _phrases(adverbials), past))
    return {name: tuple(entries) for name, entries in sections.items()}


_TABLE = _read_table(Path(__file__).resolve().parent.parent / "assets" / "verbs.txt")

IRREGULAR_VERBS: tuple[Verb, ...] = _TABLE["irregular"]
"""The verbs with an irregular simple past, in alphabetical order."""

REGULAR_VERBS: tuple[Verb, ...] = _TABLE["regular"]
"""The verbs whose every form is derived by rule, in alphabetical order."""

VERBS: tuple[Verb, ...] = IRREGULAR_VERBS + REGULAR_VERBS
"""Every verb of the grammar: the irregular ones, then the regular ones."""
