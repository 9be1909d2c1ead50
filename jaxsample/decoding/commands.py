"""The ``jaxsample generate`` sub-command."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxsample import presets
from jaxsample.data import Tokenizer
from jaxsample.decoding.loop import completion_ids, sample_completions
from jaxsample.decoding.text import _shipped_model, complete, make_strategy
from jaxsample.samplers import (
    Ban,
    FrequencyPenalty,
    MinNewTokens,
    MinP,
    PresencePenalty,
    RepetitionPenalty,
    Strategy,
    Typical,
    chain,
)

if TYPE_CHECKING:
    from jaxsample.training import Pretrained

__all__ = ["register"]

#: Positions of the shipped Mini-GPT (``<bos>``, the prompt's words and the new tokens).
_CONTEXT = 32


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
            "applies the temperature, then top-k, then top-p; --temperature 0 is greedy. The "
            "same arguments always give the same output. The Mini-GPT sees at most "
            f"{_CONTEXT} tokens: <bos>, the prompt's words and the generated ones, so the "
            "prompt's words plus --max-tokens must stay below it. Its words are "
            "case-sensitive; 'jaxsample vocab' lists them. An empty prompt (\"\") starts from "
            "<bos> alone: the model writes whole sentences."
        ),
    )
    p.add_argument(
        "prompt",
        help='words of the Mini-GPT\'s vocabulary, e.g. "Tomorrow she" (context: '
        f"{_CONTEXT} tokens in all); any text for a GPT-2 folder",
    )
    p.add_argument("--n", type=int, default=1, help="number of completions (default 1)")
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
    p.set_defaults(func=_run_generate)


def _check(name: str, value: float | None, ok: bool, rule: str) -> None:
    if value is not None and (math.isnan(value) or not ok):
        raise ValueError(f"{name} must be {rule}, got {value!r}")


#: The engine's own name of each flag, per preset (None: the engine has no such setting).
_PRESET_NAMES: dict[str, dict[str, str | None]] = {
    "hf": {
        "temperature": "temperature",
        "top_k": "top_k",
        "top_p": "top_p",
        "min_p": "min_p",
        "typical_p": "typical_p",
        "repetition_penalty": "repetition_penalty",
        "presence_penalty": None,
        "frequency_penalty": None,
    },
    "vllm": {
        "temperature": "temperature",
        "top_k": "top_k",
        "top_p": "top_p",
        "min_p": "min_p",
        "typical_p": None,
        "repetition_penalty": "repetition_penalty",
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
    },
    "llama.cpp": {
        "temperature": "temperature",
        "top_k": "top_k",
        "top_p": "top_p",
        "min_p": "min_p",
        "typical_p": "typical_p",
        "repetition_penalty": "repeat_penalty",
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
    },
}


def options_strategy(args: argparse.Namespace, banned: list[int], eos_id: int) -> Strategy:
    """The strategy of the ``generate`` options (see the command's help).

    Without ``--preset``: the bans and ``--min-new-tokens``, the penalties (repetition,
    frequency, presence), then :func:`make_strategy`'s temperature, top-k and top-p,
    then min-p and typical (the Hugging Face order); temperature 0 is greedy after
    the penalties. With ``--preset``: the bans and ``--min-new-tokens``, then the
    engine's chain (:mod:`jaxsample.presets`) built from the settings given, the
    engine's defaults for the others.

    Raises:
        ValueError: naming the option, the value and the valid range.
    """
    _check(
        "min-p", args.min_p, args.min_p is None or 0 <= args.min_p <= 1, "in [0, 1] (0 disables it)"
    )
    _check(
        "typical-p",
        args.typical_p,
        args.typical_p is None or 0 < args.typical_p <= 1,
        "in (0, 1] (1 disables it)",
    )
    rho = args.repetition_penalty
    _check("repetition-penalty", rho, rho is None or (0 < rho < math.inf), "> 0 (1 disables it)")
    for name in ("presence_penalty", "frequency_penalty"):
        value = getattr(args, name)
        ok = value is None or math.isfinite(value)
        _check(name.replace("_", "-"), value, ok, "a finite number (0 disables it)")
    if args.min_new_tokens < 0:
        raise ValueError(f"--min-new-tokens must be >= 0, got {args.min_new_tokens}")
    first: list[Strategy] = []
    if banned:
        first.append(Ban(np.asarray(banned, np.int32)))
    if args.min_new_tokens > 0:
        first.append(MinNewTokens(args.min_new_tokens, eos_id))
    settings = {
        name: getattr(args, name) for name in _PRESET_NAMES["hf"] if getattr(args, name) is not None
    }
    if args.preset is not None:
        names = _PRESET_NAMES[args.preset]
        unsupported = [n for n in settings if names[n] is None]
        if unsupported:
            flags = ", ".join("--" + n.replace("_", "-") for n in unsupported)
            raise ValueError(f"--preset {args.preset} has no {flags}")
        if "top_k" in settings and (isinstance(settings["top_k"], bool) or settings["top_k"] < 0):
            raise ValueError(
                f"top-k must be an integer >= 0 (0 disables it), got {settings['top_k']}"
            )
        given: dict[str, Any] = {
            str(names[n]): (float(v) if n != "top_k" else v) for n, v in settings.items()
        }
        if args.preset == "hf":
            engine = presets.hf(**given)
        elif args.preset == "vllm":
            engine = presets.vllm(**given)
        else:
            engine = presets.llama_cpp(**given)
        return chain(*first, engine)
    base = make_strategy(
        1.0 if args.temperature is None else args.temperature,
        0 if args.top_k is None else args.top_k,
        1.0 if args.top_p is None else args.top_p,
    )
    penalties: list[Strategy] = []
    if rho is not None and rho != 1:
        penalties.append(RepetitionPenalty(float(rho)))
    if args.frequency_penalty:
        penalties.append(FrequencyPenalty(float(args.frequency_penalty)))
    if args.presence_penalty:
        penalties.append(PresencePenalty(float(args.presence_penalty)))
    after: list[Strategy] = []
    if args.min_p:
        after.append(MinP(float(args.min_p)))
    if args.typical_p is not None and args.typical_p < 1:
        after.append(Typical(float(args.typical_p)))
    parts = [*first, *penalties, base, *after]
    return parts[0] if len(parts) == 1 else chain(*parts)


def _banned_ids(words: list[str], model: Pretrained) -> list[int]:
    tok = model.tokenizer
    ids: list[int] = []
    for word in words:
        encoded = tok.encode(word)
        if len(encoded) != 1:
            raise ValueError(
                f"--ban takes a single token, but {word!r} is {len(encoded)} tokens: {encoded}"
            )
        ids.append(int(encoded[0]))
    return ids


def _print_logprobs(model: Pretrained, args: argparse.Namespace, strategy: Strategy) -> int:
    """Draw the completions with ``logprobs`` and print each token with its log-probabilities."""
    tok = model.tokenizer
    ids = tok.encode(args.prompt, bos=True)
    gen = sample_completions(
        model.params,
        model.config,
        ids,
        args.n,
        args.seed,
        strategy,
        args.max_tokens,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        bos_id=tok.bos_id,
        logprobs=args.logprobs,
    )
    assert gen.logprobs is not None
    lp = jax_tree_numpy(gen.logprobs)
    for row in range(args.n):
        text = tok.decode(completion_ids(gen, row))
        prompt = " ".join(args.prompt.split())
        print(" ".join(part for part in (prompt, text) if part))
        for t in range(int(np.asarray(gen.lengths)[row])):
            token = int(np.asarray(gen.tokens)[row, t])
            alts = ", ".join(
                f"{tok.decode([int(i)])!r} {r:.3f}/{q:.3f}"
                for i, r, q in zip(
                    lp.top_ids[row, t], lp.top_raw[row, t], lp.top_processed[row, t], strict=True
                )
            )
            print(
                f"  {t:3d} {tok.decode([token])!r:>14} raw {lp.raw[row, t]:8.3f}"
                f"  sampled {lp.processed[row, t]:8.3f}  top: {alts}"
            )
    return 0


def jax_tree_numpy(tree: Any) -> Any:
    """Every array of a pytree as a NumPy array (one host transfer each)."""
    import jax

    return jax.tree.map(np.asarray, tree)


def _run_generate(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be >= 1, got {args.max_tokens}")
    if args.logprobs < 0:
        raise ValueError(f"--logprobs must be >= 0, got {args.logprobs}")
    model = None
    if args.model is not None:
        from jaxsample.training import load_pretrained

        model = load_pretrained(args.model)
    loaded = _shipped_model() if model is None else model
    strategy = options_strategy(args, _banned_ids(args.ban, loaded), loaded.tokenizer.eos_id)
    if args.logprobs:
        return _print_logprobs(loaded, args, strategy)
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
