"""A word-level tokenizer over the grammar's vocabulary, and batch encoding for training.

Token ids ``0..3`` are the special tokens ``<pad>``, ``<bos>``, ``<eos>`` and
``<unk>``; the remaining ids are the grammar's words in sorted order (see
:func:`jaxsample.data.grammar.vocabulary`). Text is split on whitespace, and
decoding joins words with single spaces, so every corpus sentence round-trips.
"""

from __future__ import annotations

import difflib
import json
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt

from jaxsample.data.grammar import vocabulary

PAD_TOKEN: Final[str] = "<pad>"
BOS_TOKEN: Final[str] = "<bos>"
EOS_TOKEN: Final[str] = "<eos>"
UNK_TOKEN: Final[str] = "<unk>"
SPECIAL_TOKENS: Final[tuple[str, ...]] = (PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)
"""The special tokens, at ids 0, 1, 2 and 3."""

_FORMAT: Final[str] = "jaxsample-word-tokenizer"
_VERSION: Final[int] = 1


class TextTokenizer(Protocol):
    """What the decode loop, the labs and training need of a tokenizer.

    Implemented by the word-level :class:`Tokenizer` and by GPT-2's byte-level BPE
    (:class:`jaxsample.data.bpe.BPETokenizer`).
    """

    @property
    def pad_id(self) -> int:
        """Padding id (written after a generation's end and before left-padded prompts)."""
        ...

    @property
    def bos_id(self) -> int:
        """Id prepended by ``encode(..., bos=True)``."""
        ...

    @property
    def eos_id(self) -> int:
        """Id that ends a text."""
        ...

    @property
    def vocab_size(self) -> int:
        """Number of ids."""
        ...

    @property
    def vocab(self) -> tuple[str, ...]:
        """The text of every token by id."""
        ...

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Encode ``text`` into ids, optionally with ``bos_id`` first and ``eos_id`` last."""
        ...

    def decode(
        self, ids: Sequence[int] | npt.NDArray[np.integer[Any]], *, skip_special: bool = True
    ) -> str:
        """Decode ids into text; ``skip_special`` drops the special tokens."""
        ...


@dataclass(frozen=True)
class Tokenizer:
    """A word-level tokenizer: one id per vocabulary entry.

    Attributes:
        vocab: The tokens by id; ``vocab[:4]`` must be ``SPECIAL_TOKENS``.
        pad_id: Id of ``<pad>`` (0), as for every word-level tokenizer.
        bos_id: Id of ``<bos>`` (1).
        eos_id: Id of ``<eos>`` (2).
        unk_id: Id of ``<unk>`` (3).

    Raises:
        ValueError: On construction, if ``vocab`` does not start with the
            special tokens, repeats a token, or has an empty token or one
            containing whitespace.

    """

    vocab: tuple[str, ...]
    _ids: dict[str, int] = field(init=False, repr=False, compare=False)

    pad_id: ClassVar[int] = SPECIAL_TOKENS.index(PAD_TOKEN)
    """Id of ``<pad>`` (0)."""
    bos_id: ClassVar[int] = SPECIAL_TOKENS.index(BOS_TOKEN)
    """Id of ``<bos>`` (1)."""
    eos_id: ClassVar[int] = SPECIAL_TOKENS.index(EOS_TOKEN)
    """Id of ``<eos>`` (2)."""
    unk_id: ClassVar[int] = SPECIAL_TOKENS.index(UNK_TOKEN)
    """Id of ``<unk>`` (3)."""

    def __post_init__(self) -> None:
        vocab = tuple(self.vocab)
        if vocab[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(
                f"vocab must start with the special tokens {list(SPECIAL_TOKENS)}, "
                f"got {list(vocab[: len(SPECIAL_TOKENS)])}"
            )
        bad = [token for token in vocab if not token or token != "".join(token.split())]
        if bad:
            raise ValueError(f"tokens must be non-empty and contain no whitespace: {bad!r}")
        ids: dict[str, int] = {}
        for index, token in enumerate(vocab):
            if token in ids:
                raise ValueError(f"token {token!r} appears twice (ids {ids[token]} and {index})")
            ids[token] = index
        object.__setattr__(self, "vocab", vocab)
        object.__setattr__(self, "_ids", ids)

    @property
    def vocab_size(self) -> int:
        """Number of tokens, special tokens included."""
        return len(self.vocab)

    def encode(
        self,
        text: str,
        *,
        bos: bool = False,
        eos: bool = False,
        unknown: Literal["error", "unk"] = "error",
    ) -> list[int]:
        """Encode text into token ids.

        Args:
            text: Words separated by whitespace; special-token strings such as
                ``"<eos>"`` map to their ids.
            bos: Prepend ``bos_id``.
            eos: Append ``eos_id``.
            unknown: What to do with words outside the vocabulary: ``"error"``
                raises, ``"unk"`` maps them to ``unk_id``.

        Returns:
            The ids, one per word (plus the optional bos and eos).

        Raises:
            ValueError: If ``unknown="error"`` and some words are not in the
                vocabulary (the message lists every unknown word, says that the
                vocabulary is case-sensitive and names the closest known words), or
                ``unknown`` is neither ``"error"`` nor ``"unk"``.

        """
        if unknown not in ("error", "unk"):
            raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
        words = text.split()
        ids = [self._ids.get(word, -1) for word in words]
        if unknown == "error" and -1 in ids:
            missing = list(dict.fromkeys(w for w, i in zip(words, ids, strict=True) if i < 0))
            raise ValueError(
                f"unknown words (not in the vocabulary): {missing!r}; the vocabulary is "
                f"case-sensitive ({self.vocab_size} tokens, listed by 'jaxsample vocab'); "
                + "; ".join(f"{w!r}: {self._suggest(w)}" for w in missing)
            )
        ids = [self.unk_id if i < 0 else i for i in ids]
        if bos:
            ids.insert(0, self.bos_id)
        if eos:
            ids.append(self.eos_id)
        return ids

    def closest_words(self, word: str, n: int = 3) -> list[str]:
        """Known words that look most like ``word``, best first (for error messages).

        A word that differs only in letter case or surrounding punctuation comes
        first; then :func:`difflib.get_close_matches` over the vocabulary (special
        tokens excluded).

        Args:
            word: any string.
            n: most words returned (``>= 1``).

        Returns:
            Up to ``n`` distinct vocabulary words; empty when nothing is close.
        """
        plain = [t for t in self.vocab if not (t.startswith("<") and t.endswith(">"))]
        stripped = word.strip(".,;:!?\"'()")
        first = [t for t in plain if t.lower() in (word.lower(), stripped.lower()) and t != word]
        rest = difflib.get_close_matches(stripped or word, plain, n=n + len(first), cutoff=0.6)
        return list(dict.fromkeys(first + rest))[:n]

    def _suggest(self, word: str) -> str:
        close = self.closest_words(word)
        return "did you mean " + " or ".join(repr(w) for w in close) if close else "no close word"

    def decode(
        self, ids: Sequence[int] | npt.NDArray[np.integer[Any]], *, skip_special: bool = True
    ) -> str:
        """Decode token ids into text, words joined by single spaces.

        Args:
            ids: Token ids (Python or NumPy integers, or a 1-D integer array).
            skip_special: Drop ``<pad>``, ``<bos>`` and ``<eos>``. ``<unk>`` is
                always kept, since it stands for a word.

        Returns:
            The decoded text (empty if nothing is left).

        Raises:
            ValueError: If an id is outside ``[0, vocab_size)``; the message
                names the id and the range.
            TypeError: If an id is not an integer.

        """
        skipped = {self.pad_id, self.bos_id, self.eos_id} if skip_special else set()
        words: list[str] = []
        for raw in ids:
            index = operator.index(raw)
            if not 0 <= index < self.vocab_size:
                raise ValueError(f"token id {index} is out of range [0, {self.vocab_size})")
            if index not in skipped:
                words.append(self.vocab[index])
        return " ".join(words)

    def to_json(self) -> str:
        """Serialise to a JSON string that :meth:`from_json` reads back."""
        return json.dumps({"format": _FORMAT, "version": _VERSION, "vocab": list(self.vocab)})

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Read a tokenizer from the JSON written by :meth:`to_json`.

        Raises:
            ValueError: If ``text`` is not valid JSON, not a tokenizer of this
                format and version, or its vocabulary is invalid.

        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"tokenizer JSON is malformed: {err}") from err
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"not a {_FORMAT} JSON document")
        if data.get("version") != _VERSION:
            raise ValueError(
                f"unsupported tokenizer version {data.get('version')!r}; expected {_VERSION}"
            )
        vocab = data.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(token, str) for token in vocab):
            raise ValueError("tokenizer JSON 'vocab' must be a list of strings")
        return cls(vocab=tuple(vocab))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the tokenizer as JSON (UTF-8) to ``path``, replacing any file there.

        Raises:
            OSError: If the file cannot be written (e.g. the folder is missing).

        """
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Read a tokenizer written by :meth:`save`.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not a valid tokenizer (see :meth:`from_json`).

        """
        return cls.from_json(Path(path).read_text(encoding="utf-8"))


def build_tokenizer() -> Tokenizer:
    """Return the tokenizer of the grammar: the special tokens, then every grammar word sorted."""
    return Tokenizer(vocab=SPECIAL_TOKENS + vocabulary())


def encode_sentences(
    sentences: Sequence[str], tokenizer: TextTokenizer, n_ctx: int
) -> npt.NDArray[np.int32]:
    """Encode sentences into fixed-length rows for language-model training.

    Each row is ``bos, words..., eos`` followed by ``pad_id`` up to length
    ``n_ctx + 1``, so ``row[:-1]`` is the model input and ``row[1:]`` the
    target (targets equal to ``pad_id`` are to be ignored by the loss).

    Args:
        sentences: The sentences, words separated by whitespace.
        tokenizer: The tokenizer (word-level: every word must be in its vocabulary).
        n_ctx: The model's context length, at least 1.

    Returns:
        An ``int32`` array of shape ``[len(sentences), n_ctx + 1]``.

    Raises:
        ValueError: If ``n_ctx < 1``, a sentence has unknown words, or a
            sentence needs more than ``n_ctx + 1`` tokens with bos and eos
            (the message names the sentence and its length).

    """
    if n_ctx < 1:
        raise ValueError(f"n_ctx must be >= 1, got {n_ctx}")
    rows = np.full((len(sentences), n_ctx + 1), tokenizer.pad_id, dtype=np.int32)
    for index, sentence in enumerate(sentences):
        try:
            ids = tokenizer.encode(sentence, bos=True, eos=True)
        except ValueError as err:
            raise ValueError(f"sentence {index} ({sentence!r}): {err}") from err
        if len(ids) > n_ctx + 1:
            raise ValueError(
                f"sentence {index} needs {len(ids)} tokens with bos and eos, more than "
                f"n_ctx + 1 = {n_ctx + 1}: {sentence!r}"
            )
        rows[index, : len(ids)] = ids
    return rows
