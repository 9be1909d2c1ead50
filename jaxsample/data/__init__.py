"""The Mini-GPT's data: a verb grammar, its checker, the corpus and the tokenizer.

The grammar (:mod:`~jaxsample.data.grammar`) builds sentences such as
``"Tomorrow she will walk the dog"`` whose tense is fixed by the time marker;
:func:`check_completion` tells whether a generated continuation keeps the
sentence grammatical. :func:`generate_corpus` draws a deterministic corpus from
the grammar and :func:`build_tokenizer` gives the word-level tokenizer over its
vocabulary.
"""

from jaxsample.data.corpus import (
    DEFAULT_N_HELDOUT_PAIRS,
    DEFAULT_N_SENTENCES,
    DEFAULT_VAL_FRACTION,
    Corpus,
    generate_corpus,
    heldout_prompts,
    next_word_counts,
)
from jaxsample.data.grammar import (
    BE_FORMS,
    FUTURE_FORMS,
    MAX_SENTENCE_WORDS,
    SUBJECTS,
    TENSE_NAMES,
    TENSE_WEIGHTS,
    TIME_MARKERS,
    FutureForm,
    Person,
    Subject,
    Tense,
    TimeMarker,
    Verdict,
    canonical_marker,
    check_completion,
    check_sentence,
    compose_sentence,
    is_grammatical,
    verb_group,
    vocabulary,
)
from jaxsample.data.lexicon import IRREGULAR_VERBS, REGULAR_VERBS, VERBS, Verb
from jaxsample.data.tokenizer import (
    BOS_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
    UNK_TOKEN,
    TextTokenizer,
    Tokenizer,
    build_tokenizer,
    encode_sentences,
)

__all__ = [
    "BE_FORMS",
    "BOS_TOKEN",
    "DEFAULT_N_HELDOUT_PAIRS",
    "DEFAULT_N_SENTENCES",
    "DEFAULT_VAL_FRACTION",
    "EOS_TOKEN",
    "FUTURE_FORMS",
    "IRREGULAR_VERBS",
    "MAX_SENTENCE_WORDS",
    "PAD_TOKEN",
    "REGULAR_VERBS",
    "SPECIAL_TOKENS",
    "SUBJECTS",
    "TENSE_NAMES",
    "TENSE_WEIGHTS",
    "TIME_MARKERS",
    "UNK_TOKEN",
    "VERBS",
    "Corpus",
    "FutureForm",
    "Person",
    "Subject",
    "Tense",
    "TextTokenizer",
    "TimeMarker",
    "Tokenizer",
    "Verb",
    "Verdict",
    "build_tokenizer",
    "canonical_marker",
    "check_completion",
    "check_sentence",
    "compose_sentence",
    "encode_sentences",
    "generate_corpus",
    "heldout_prompts",
    "is_grammatical",
    "next_word_counts",
    "verb_group",
    "vocabulary",
]
