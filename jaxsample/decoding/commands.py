"""The ``jaxsample generate`` sub-command."""

from __future__ import annotations

import argparse
from typing import Any

from jaxsample.data import Tokenizer
from jaxsample.decoding.text import complete, make_strategy

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command to an argparse sub-parser set.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.

    """
    p = subparsers.add_parser(
        "generate",
        help="complete a prompt with the trained Mini-GPT",
        description=(
            "Complete a prompt with the Mini-GPT (or the model of --model) and print one "
            "line per completion (the prompt followed by the generated text). The strategy "
            "applies the temperature, then top-k, then top-p; --temperature 0 is greedy. The same "
            "arguments always give the same output."
        ),
    )
    p.add_argument(
        "prompt",
        help='words of the Mini-GPT\'s vocabulary, e.g. "Tomorrow she"; any text for a GPT-2 '
        "folder",
    )
    p.add_argument("--n", type=int, default=1, help="number of completions (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--temperature", type=float, default=1.0, help="temperature >= 0; 0 is greedy (default 1)"
    )
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely; 0 disables")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus mass in (0, 1]; 1 disables")
    p.add_argument(
        "--max-tokens", type=int, default=12, help="maximum generated tokens (default 12)"
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="model folder: an exported or training-run Mini-GPT, or a local Hugging Face "
        "GPT-2 folder (config.json, model.safetensors, tokenizer files); default: the "
        "shipped model",
    )
    p.set_defaults(func=_run_generate)


def _run_generate(args: argparse.Namespace) -> int:
    strategy = make_strategy(args.temperature, args.top_k, args.top_p)
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    model = None
    if args.model is not None:
        from jaxsample.training import load_pretrained

        model = load_pretrained(args.model)
    completions = complete(
        args.prompt,
        n=args.n,
        seed=args.seed,
        strategy=strategy,
        max_tokens=args.max_tokens,
        model=model,
    )
    if model is not None and not isinstance(model.tokenizer, Tokenizer):
        # Subword text: the completion carries its own leading space, if any.
        for text in completions:
            print(args.prompt + text)
        return 0
    prompt = " ".join(args.prompt.split())
    for text in completions:
        print(" ".join(part for part in (prompt, text) if part))
    return 0
