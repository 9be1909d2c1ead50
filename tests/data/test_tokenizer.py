"""Tests of jaxsample.data's word-level tokenizer and batch encoding."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    Corpus,
    Tokenizer,
    build_tokenizer,
    encode_sentences,
    vocabulary,
)
from jaxsample.data.tokenizer import SPECIAL_TOKENS


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
