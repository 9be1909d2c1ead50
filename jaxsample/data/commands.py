"""The ``jaxsample vocab`` sub-command: the words the model knows."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``vocab`` sub-command to an argparse sub-parser set.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    p = subparsers.add_parser(
        "vocab",
        help="list the words a prompt may use (case-sensitive)",
        description=(
            "Print the model's vocabulary, one token per line, in id order: the special "
            "tokens (<pad>, <bos>, <eos>, <unk>) first, then every word. Words are "
            "case-sensitive ('Tomorrow' starts a sentence, 'tomorrow' is unknown)."
        ),
    )
    p.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    p.add_argument("--json", action="store_true", help="print one JSON list")
    p.add_argument(
        "--words-only", action="store_true", help="leave out the special tokens (<pad> ...)"
    )
    p.set_defaults(func=_run_vocab)


def _run_vocab(args: argparse.Namespace) -> int:
    from jaxsample.model import load_pretrained

    vocab = list(load_pretrained(args.model).tokenizer.vocab)
    if args.words_only:
        vocab = [t for t in vocab if not (t.startswith("<") and t.endswith(">"))]
    print(json.dumps(vocab) if args.json else "\n".join(vocab))
    return 0
