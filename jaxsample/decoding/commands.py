"""The ``jaxsample generate`` sub-command."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jaxsample.cli import add_command
from jaxsample.data import Tokenizer
from jaxsample.decoding.options import banned_ids, options_strategy, print_logprobs
from jaxsample.decoding.text import _shipped_model, complete

__all__ = ["register"]

#: Positions of the shipped Mini-GPT (``<bos>``, the prompt's words and the new tokens).
_CONTEXT = 32

_SUMMARY = "complete a prompt with the trained Mini-GPT"
_DESCRIPTION = (
    "Complete a prompt with the Mini-GPT (or the model of --model) and print one "
    "line per completion (the prompt followed by the generated text). The strategy "
    "applies the temperature, then top-k, then top-p; --temperature 0 is greedy. The "
    "same arguments always give the same output. The Mini-GPT sees at most "
    f"{_CONTEXT} tokens: <bos>, the prompt's words and the generated ones, so the "
    "prompt's words plus --max-tokens must stay below it. Its words are "
    "case-sensitive; 'jaxsample vocab' lists them. An empty prompt (\"\") starts from "
    "<bos> alone: the model writes whole sentences."
)


class _Number(float):
    """A float that prints as the person typed it (``0``, not ``0.0``) in messages."""

    text: str

    def __new__(cls, text: str) -> _Number:
        try:
            value = super().__new__(cls, text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        value.text = text
        return value

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def register(subparsers: Any) -> None:
    """Add the ``generate`` sub-command (see :func:`jaxsample.cli.add_command`)."""
    p = add_command(subparsers, "generate", _run_generate, _SUMMARY, _DESCRIPTION)
    p.add_argument(
        "prompt",
        help='words of the Mini-GPT\'s vocabulary, e.g. "Tomorrow she" (context: '
        f"{_CONTEXT} tokens in all); any text for a GPT-2 folder",
    )
    p.add_argument("-n", "--n", type=int, default=1, help="number of completions (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--temperature",
        type=_Number,
        default=None,
        help="temperature >= 0; 0 is greedy (default 1)",
    )
    p.add_argument("--top-k", type=int, default=None, help="keep the k most likely; 0 disables")
    p.add_argument("--top-p", type=_Number, default=None, help="nucleus mass in (0, 1]; 1 disables")
    p.add_argument(
        "--min-p",
        type=_Number,
        default=None,
        help="keep tokens at least this fraction as likely as the top one, in [0, 1]; 0 disables",
    )
    p.add_argument(
        "--typical-p",
        type=_Number,
        default=None,
        help="locally typical sampling mass in (0, 1]; 1 disables",
    )
    p.add_argument(
        "--repetition-penalty",
        type=_Number,
        default=None,
        help="> 0: divide the positive logits of tokens already in the prompt or the "
        "completion by it (multiply negative ones); 1 disables",
    )
    p.add_argument(
        "--presence-penalty",
        type=_Number,
        default=None,
        help="subtract it from the logits of tokens already generated; 0 disables",
    )
    p.add_argument(
        "--frequency-penalty",
        type=_Number,
        default=None,
        help="subtract it times the count of each token generated so far; 0 disables",
    )
    p.add_argument(
        "--ban",
        action="append",
        default=[],
        metavar="WORD",
        help="never generate this word (a single token); may be repeated",
    )
    p.add_argument(
        "--min-new-tokens",
        type=int,
        default=0,
        help="forbid <eos> until this many tokens were generated (default 0)",
    )
    p.add_argument(
        "--preset",
        choices=("hf", "vllm", "llama.cpp"),
        default=None,
        help="apply the sampling settings in that engine's order, with its defaults for the "
        "settings not given (llama.cpp: temperature last, after its truncations)",
    )
    p.add_argument(
        "--logprobs",
        type=int,
        default=0,
        metavar="N",
        help="after each completion, print every generated token with its log-probability "
        "under the model and under the sampling distribution, and the model's N most "
        "likely tokens with theirs (default 0: none)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=12,
        help=f"maximum generated tokens (default 12; prompt words + this < {_CONTEXT})",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="DIR",
        help="model folder: an exported or training-run Mini-GPT, or a local Hugging Face "
        "GPT-2 folder (config.json, model.safetensors, tokenizer files); default: the "
        "shipped model",
    )


def _run_generate(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.logprobs < 0:
        raise ValueError(f"--logprobs must be >= 0, got {args.logprobs}")
    model = None
    if args.model is not None:
        from jaxsample.model import load_pretrained

        model = load_pretrained(args.model)
    loaded = _shipped_model() if model is None else model
    strategy = options_strategy(args, banned_ids(args.ban, loaded), loaded.tokenizer.eos_id)
    if args.logprobs:
        return print_logprobs(loaded, args, strategy)
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
    else:
        prompt = " ".join(args.prompt.split())
        for text in completions:
            print(" ".join(part for part in (prompt, text) if part))
    if not any(completions):
        # Every line is the prompt alone: say why, or it reads as a failure.
        print(
            f"jaxsample {args.command}: note: every completion ended at once (<eos> was drawn "
            "first: the prompt reads as a finished text); --min-new-tokens N forbids "
            "<eos> for the first N tokens",
            file=sys.stderr,
        )
    return 0
