"""The ``jaxsample vocab`` sub-command: the words the model knows."""

from __future__ import annotations

import argparse
import json
from typing import Any

from jaxsample.cli import add_command

__all__ = ["register"]

_SUMMARY = "list the words a prompt may use (case-sensitive)"
_DESCRIPTION = (
    "Print the model's vocabulary, one token per line, in id order: the special "
    "tokens (<pad>, <bos>, <eos>, <unk>) first, then every word. Words are "
    "case-sensitive ('Tomorrow' starts a sentence, 'tomorrow' is unknown)."
)


def register(subparsers: Any) -> None:
    """Add the ``vocab`` sub-command (see :func:`jaxsample.cli.add_command`)."""
    p = add_command(subparsers, "vocab", _run_vocab, _SUMMARY, _DESCRIPTION)
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.add_argument(
        "--words-only", action="store_true", help="leave out the special tokens (<pad> ...)"
    )


def _run_vocab(args: argparse.Namespace) -> int:
    from jaxsample.model import load_pretrained

    vocab = list(load_pretrained(args.model).tokenizer.vocab)
    if args.words_only:
        vocab = [t for t in vocab if not (t.startswith("<") and t.endswith(">"))]
    print(json.dumps(vocab) if args.json else "\n".join(vocab))
    return 0
