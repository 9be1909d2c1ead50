"""GPT-2's byte-level BPE tokenizer, read from a local Hugging Face folder.

:class:`BPETokenizer` wraps a ``tokenizers.Tokenizer`` behind the interface the decode
loop uses with the word-level :class:`~jaxsample.data.Tokenizer` (:class:`TextTokenizer`):
``encode(text, bos=..., eos=...)``, ``decode(ids)``, ``bos_id`` / ``eos_id`` / ``pad_id``,
``vocab_size`` and ``vocab``.

GPT-2 (Radford et al., 2019, Sec. 2.2) splits text with a regular expression into words,
numbers, punctuation runs and whitespace, maps every UTF-8 byte to a printable character
and merges frequent pairs (byte-pair encoding; Sennrich et al., 2016, "Neural Machine
Translation of Rare Words with Subword Units"). Every string encodes, and decoding the ids
gives the string back byte for byte. GPT-2 has one special token, ``<|endoftext|>``,
which serves as its beginning, end and padding token.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import tokenizers

__all__ = ["END_OF_TEXT", "BPETokenizer"]

END_OF_TEXT = "<|endoftext|>"
"""GPT-2's only special token."""

_TOKENIZER_JSON = "tokenizer.json"
_VOCAB_JSON = "vocab.json"
_MERGES_TXT = "merges.txt"


@dataclass(frozen=True, init=False, eq=False, repr=False)
class BPETokenizer:
    """A byte-level BPE tokenizer with GPT-2's conventions (one id for bos, eos and pad).

    Build it with :meth:`from_folder`. Instances are immutable.

    Args:
        backend: The ``tokenizers.Tokenizer`` doing the work.
        eos_id: Id that ends a text (GPT-2: ``<|endoftext|>``).
        bos_id: Id prepended by ``encode(..., bos=True)``; defaults to ``eos_id``.
        pad_id: Id written after the end of a generation and before left-padded
            prompts; defaults to ``eos_id`` (GPT-2 has none of its own).

    Attributes:
        eos_id: Id that ends a text.
        bos_id: Id prepended by ``encode(..., bos=True)``.
        pad_id: Padding id.
        vocab_size: Number of ids, added tokens included.

    Raises:
        ValueError: If an id is outside ``[0, vocab_size)``.

    """

    eos_id: int
    bos_id: int
    pad_id: int
    vocab_size: int
    _backend: tokenizers.Tokenizer

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        *,
        eos_id: int,
        bos_id: int | None = None,
        pad_id: int | None = None,
    ) -> None:
        size = int(backend.get_vocab_size(with_added_tokens=True))
        eos = _check_special("eos_id", eos_id, size)
        bos = eos if bos_id is None else _check_special("bos_id", bos_id, size)
        pad = eos if pad_id is None else _check_special("pad_id", pad_id, size)
        object.__setattr__(self, "_backend", backend)
        object.__setattr__(self, "vocab_size", size)
        object.__setattr__(self, "eos_id", eos)
        object.__setattr__(self, "bos_id", bos)
        object.__setattr__(self, "pad_id", pad)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        eos_id: int | None = None,
        bos_id: int | None = None,
        pad_id: int | None = None,
    ) -> BPETokenizer:
        """Read the tokenizer of a Hugging Face GPT-2 folder.

        ``tokenizer.json`` is used when present; otherwise ``vocab.json`` and
        ``merges.txt`` are read as GPT-2's byte-level BPE (no prefix space, GPT-2's
        split pattern) with ``<|endoftext|>`` as a special token. Nothing is downloaded.

        Args:
            folder: The model folder.
            eos_id: Id of the end token; ``None`` looks up ``<|endoftext|>``.
            bos_id: Id prepended by ``encode(bos=True)``; ``None`` uses ``eos_id``.
            pad_id: Padding id; ``None`` uses ``eos_id``.

        Returns:
            The tokenizer.

        Raises:
            FileNotFoundError: If the folder has neither ``tokenizer.json`` nor both
                ``vocab.json`` and ``merges.txt``.
            ValueError: If a file is unreadable or not a BPE tokenizer, or the end id is
                unknown (each message names the file).

        """
        path = Path(folder)
        tok_json = path / _TOKENIZER_JSON
        if tok_json.is_file():
            source = tok_json
            try:
                backend = tokenizers.Tokenizer.from_file(str(tok_json))
            except Exception as err:  # the Rust side raises plain Exception subclasses
                raise ValueError(f"{tok_json} is not a valid tokenizer ({_one_line(err)})") from err
            model_type = json.loads(tok_json.read_text(encoding="utf-8")).get("model", {})
            if not isinstance(model_type, dict) or model_type.get("type") != "BPE":
                raise ValueError(f"{tok_json}: model type is not BPE, not a GPT-2 tokenizer")
        else:
            vocab, merges = path / _VOCAB_JSON, path / _MERGES_TXT
            if not (vocab.is_file() and merges.is_file()):
                raise FileNotFoundError(
                    f"{path} has no {_TOKENIZER_JSON} and no {_VOCAB_JSON} + {_MERGES_TXT} pair"
                )
            source = vocab
            backend = _from_vocab_merges(vocab, merges)
        if eos_id is None:
            found = backend.token_to_id(END_OF_TEXT)
            if found is None:
                raise ValueError(f"{source} has no {END_OF_TEXT} token and no eos id was given")
            eos_id = int(found)
        try:
            return cls(backend, eos_id=eos_id, bos_id=bos_id, pad_id=pad_id)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @functools.cached_property
    def vocab(self) -> tuple[str, ...]:
        """The text of every token by id (decoded bytes; special tokens as written)."""
        return tuple(
            self._backend.decode([i], skip_special_tokens=False) for i in range(self.vocab_size)
        )

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Encode text into token ids.

        Special-token strings in ``text`` (``"<|endoftext|>"``) map to their ids.

        Args:
            text: Any string; byte-level BPE has no unknown tokens.
            bos: Prepend ``bos_id``.
            eos: Append ``eos_id``.

        Returns:
            The ids in ``[0, vocab_size)``.

        Raises:
            TypeError: If ``text`` is not a string.

        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        ids: list[int] = list(self._backend.encode(text, add_special_tokens=False).ids)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(
        self, ids: Sequence[int] | npt.NDArray[np.integer[Any]], *, skip_special: bool = True
    ) -> str:
        """Decode token ids into text.

        Args:
            ids: Token ids (Python or NumPy integers, or a 1-D integer array).
            skip_special: Drop special tokens (``<|endoftext|>``).

        Returns:
            The text; ``decode(encode(s)) == s`` for every string ``s``.

        Raises:
            ValueError: If an id is outside ``[0, vocab_size)``; the message names the id.
            TypeError: If an id is not an integer.

        """
        checked: list[int] = []
        for raw in ids:
            index = operator.index(raw)
            if not 0 <= index < self.vocab_size:
                raise ValueError(f"token id {index} is out of range [0, {self.vocab_size})")
            checked.append(index)
        text: str = self._backend.decode(checked, skip_special_tokens=skip_special)
        return text


def _check_special(name: str, value: int, size: int) -> int:
    """``value`` if it is an id in ``[0, size)``; raises ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < size:
        raise ValueError(f"{name} must be an id in [0, {size}), got {value!r}")
    return value


def _from_vocab_merges(vocab: Path, merges: Path) -> tokenizers.Tokenizer:
    """GPT-2's byte-level BPE from the legacy ``vocab.json`` / ``merges.txt`` pair."""
    try:
        model = tokenizers.models.BPE.from_file(str(vocab), str(merges))
    except Exception as err:
        raise ValueError(
            f"{vocab} / {merges} are not a valid BPE vocabulary ({_one_line(err)})"
        ) from err
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = tokenizers.decoders.ByteLevel()
    if backend.token_to_id(END_OF_TEXT) is not None:
        backend.add_special_tokens([END_OF_TEXT])
    return backend


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())
