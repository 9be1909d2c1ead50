"""Lookups the data tests share: the grammar's verbs and subjects by word."""

from __future__ import annotations

from jaxsample.data import SUBJECTS
from jaxsample.data.lexicon import VERBS

VERB = {verb.base: verb for verb in VERBS}
SUBJECT = {subject.word: subject for subject in SUBJECTS}
