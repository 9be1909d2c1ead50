"""The Mini-GPT's data: a verb grammar, its checker, the corpus and the tokenizer.

The grammar (:mod:`~jaxsample.data.grammar`) builds sentences such as
``"Tomorrow she will walk the dog"`` whose tense is fixed by the time marker;
:func:`check_completion` (:mod:`~jaxsample.data.checker`) tells whether a
generated continuation keeps the sentence grammatical. :func:`generate_corpus`
draws a deterministic corpus from the grammar and :func:`build_tokenizer` gives
the word-level tokenizer over its vocabulary. The grammar's tables (verbs, tenses,
markers) and the tokenizer's special tokens are in :mod:`~jaxsample.data.grammar`,
:mod:`~jaxsample.data.lexicon` and :mod:`~jaxsample.data.tokenizer`.
"""

from jaxsample.data.checker import Verdict, check_completion, check_sentence, is_grammatical
from jaxsample.data.corpus import Corpus, generate_corpus, heldout_prompts, next_word_counts
from jaxsample.data.grammar import (
    MAX_SENTENCE_WORDS,
    SUBJECTS,
    TIME_MARKERS,
    compose_sentence,
    vocabulary,
)
from jaxsample.data.tokenizer import TextTokenizer, Tokenizer, build_tokenizer, encode_sentences

__all__ = [
    "MAX_SENTENCE_WORDS",
    "SUBJECTS",
    "TIME_MARKERS",
    "Corpus",
    "TextTokenizer",
    "Tokenizer",
    "Verdict",
    "build_tokenizer",
    "check_completion",
    "check_sentence",
    "compose_sentence",
    "encode_sentences",
    "generate_corpus",
    "heldout_prompts",
    "is_grammatical",
    "next_word_counts",
    "vocabulary",
]
