"""The sampling options of ``jaxsample generate``: the strategy they build, and ``--logprobs``."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxsample import presets
from jaxsample.decoding.batch import completion_ids, sample_completions
from jaxsample.decoding.text import make_strategy
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
    from jaxsample.model import Pretrained

__all__ = ["banned_ids", "options_strategy", "print_logprobs"]


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
        if "top_k" in settings:  # checked as without --preset (an engine may allow -1)
            make_strategy(top_k=settings["top_k"])
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


def banned_ids(words: list[str], model: Pretrained) -> list[int]:
    """The token id of each ``--ban`` word.

    Raises:
        ValueError: for an unknown word (the tokenizer's message) or one of several tokens.
    """
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


def print_logprobs(model: Pretrained, args: argparse.Namespace, strategy: Strategy) -> int:
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
    # Special tokens decode to no text: shown by name, the others as quoted text. One id
    # may serve several roles (GPT-2's <|endoftext|> is its bos and eos): the later
    # entries win, so a drawn end of text reads <eos>.
    named = {tok.pad_id: "<pad>", tok.bos_id: "<bos>", tok.eos_id: "<eos>"}

    def shown(i: int) -> str:
        return named.get(i) or repr(tok.decode([i]))

    for row in range(args.n):
        text = tok.decode(completion_ids(gen, row))
        prompt = " ".join(args.prompt.split())
        print(" ".join(part for part in (prompt, text) if part))
        for t in range(int(np.asarray(gen.lengths)[row])):
            token = int(np.asarray(gen.tokens)[row, t])
            alts = ", ".join(
                f"{shown(int(i))} {r:.3f}/{q:.3f}"
                for i, r, q in zip(
                    lp.top_ids[row, t], lp.top_raw[row, t], lp.top_processed[row, t], strict=True
                )
            )
            print(
                f"  {t:3d} {shown(token):>14} raw {lp.raw[row, t]:8.3f}"
                f"  sampled {lp.processed[row, t]:8.3f}  top: {alts}"
            )
    return 0


def jax_tree_numpy(tree: Any) -> Any:
    """Every array of a pytree as a NumPy array (one host transfer each)."""
    import jax

    return jax.tree.map(np.asarray, tree)
