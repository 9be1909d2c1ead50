"""Fixtures of the data tests: the default corpus and the word-level tokenizer."""

from __future__ import annotations

import pytest

from jaxsample.data import Corpus, Tokenizer, build_tokenizer, generate_corpus


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    return generate_corpus()


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    return build_tokenizer()
