"""The sampler vocabulary of the engines at ``[B, V]``: jaxsample against HF's warpers.

Each new stateless strategy (and the history ones bound to a fixed state) is timed
drawing one token per row of LLM-like logits (:func:`benchmarks.logits.llm_like_logits`)
at ``[32, 50257]`` by default, interleaved in the same run with

* ``floor``: one read of the logits (the row maximum), the ratio's denominator;
* ``hf``: the Hugging Face ``transformers`` warper or processor of the same name,
  then softmax and ``torch.multinomial`` (where HF has one and torch imports).

Run: ``python -m benchmarks.vocabulary [--batch 32 --vocab 50257] [--out DIR]``;
writes ``vocabulary.json`` and ``vocabulary.md`` into ``DIR`` when given.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxsample as js
from benchmarks.logits import llm_like_logits
from benchmarks.peers import floor_impl, hf_available
from benchmarks.timing import Budget, time_interleaved

__all__ = ["CASES", "main", "vocabulary_suite"]

#: name -> (jaxsample strategy, HF processor factory or None); temperature 1 throughout.
CASES: dict[str, tuple[js.Strategy, str | None]] = {
    "min-p 0.05": (js.MinP(0.05), "MinPLogitsWarper(0.05)"),
    "typical 0.9": (js.Typical(0.9), "TypicalLogitsWarper(0.9)"),
    "epsilon 3e-4": (js.Epsilon(3e-4), "EpsilonLogitsWarper(3e-4)"),
    "eta 3e-4": (js.Eta(3e-4), "EtaLogitsWarper(3e-4)"),
    "top-n-sigma 1": (js.TopNSigma(1.0), None),
    "xtc 0.1 0.5": (js.XTC(0.1, 0.5), None),
    "logit bias": (js.LogitBias(jnp.zeros(1)), None),  # resized to V below
    "ban 16 ids": (js.Ban(jnp.arange(16)), None),
    "repetition 1.3": (js.RepetitionPenalty(1.3), "RepetitionPenaltyLogitsProcessor(1.3)"),
    "frequency 0.5": (js.FrequencyPenalty(0.5), None),
    "presence 0.5": (js.PresencePenalty(0.5), None),
    "min-new-tokens": (js.MinNewTokens(100, 0), None),
    "no-repeat-ngram 3": (js.NoRepeatNGram(3), "NoRepeatNGramLogitsProcessor(3)"),
    "dry 0.8": (js.DRY(0.8), None),
    "mirostat2 5": (js.Mirostat2(5.0, 0.1), None),
}
#: Context tokens of the fixed history (prompt and generated) for the history strategies.
CONTEXT = 64


def _bound(strategy: js.Strategy, batch: int, vocab: int) -> tuple[js.Strategy, np.ndarray]:
    """The strategy ready to draw (the history ones bound to a state), and the context ids."""
    rng = np.random.default_rng(0)
    context = rng.integers(0, 200, size=(batch, CONTEXT))
    if isinstance(strategy, js.LogitBias):
        strategy = js.LogitBias(jnp.asarray(rng.normal(size=vocab), jnp.float32))
    if not js.needs_history(strategy):
        return strategy, context
    half = CONTEXT // 2
    h = js.init_history(strategy, vocab, jnp.asarray(context[:, :half]), window=CONTEXT)
    for t in range(half, CONTEXT):
        h = js.advance(strategy, h, jnp.asarray(context[:, t]), logits=jnp.zeros((batch, vocab)))
    return js.bind(strategy, h), context


def _hf(code: str, context: np.ndarray) -> Callable[[np.ndarray], Any]:
    import torch
    from transformers.generation import logits_process as lp

    name, arg = code.rstrip(")").split("(")
    proc = getattr(lp, name)(int(arg) if "NGram" in name else float(arg))
    ids = torch.from_numpy(context.astype(np.int64))
    gen = torch.Generator().manual_seed(0)

    def sample(x: np.ndarray) -> Any:
        with torch.no_grad():
            scores = proc(ids, torch.from_numpy(x))
            return torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)[:, 0]

    return sample


def vocabulary_suite(
    batch: int, vocab: int, budget: Budget, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """One record per (case, implementation): median and min ms, reps, ratio to the floor."""
    rng = np.random.default_rng(1234)
    data = [llm_like_logits(rng, batch, vocab) for _ in range(budget.n_buffers)]
    dev = [jnp.asarray(x) for x in data]
    floor = floor_impl()
    skip_hf = hf_available()
    key = jax.random.key(0)
    records: list[dict[str, Any]] = []
    for name, (strategy, hf_code) in CASES.items():
        bound, context = _bound(strategy, batch, vocab)
        draw = jax.jit(lambda x, s=bound: js.sample(key, x, s))
        fns: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]] = {
            "jaxsample": (draw, dev),
            "floor": (floor.sample, dev),
        }
        if hf_code is not None and skip_hf is None:
            fns["hf"] = (_hf(hf_code, context), data)
        timed = time_interleaved(fns, budget, slow=["hf"] if "hf" in fns else [])
        read = timed["floor"]["median_ms"]
        for impl, t in timed.items():
            rec = {"batch": batch, "vocab": vocab, "sampler": name, "impl": impl, **t}
            rec["ratio_to_read"] = t["median_ms"] / read
            records.append(rec)
            log(
                f"  [{batch}, {vocab}] {name:<18} {impl:<10} {t['median_ms']:9.3f} ms"
                f"  {rec['ratio_to_read']:7.1f}x read  ({t['reps']} reps)"
            )
    return records


def _markdown(records: list[dict[str, Any]]) -> str:
    lines = [
        "| sampler | jaxsample ms | x read | hf ms | hf / jaxsample |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    by: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        by.setdefault(r["sampler"], {})[r["impl"]] = r
    for name, impls in by.items():
        j = impls["jaxsample"]
        hf = impls.get("hf")
        lines.append(
            f"| {name} | {j['median_ms']:.3f} | {j['ratio_to_read']:.1f} | "
            + (
                f"{hf['median_ms']:.2f} | {hf['median_ms'] / j['median_ms']:.1f} |"
                if hf
                else "- | - |"
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Time the vocabulary cases and print (and optionally write) the table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vocabulary")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--seconds", type=float, default=1.0, help="target seconds per figure")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    budget = Budget(seconds=args.seconds, min_reps=5, max_reps=200, n_buffers=4)
    records = vocabulary_suite(args.batch, args.vocab, budget, print)
    table = _markdown(records)
    print(table)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        meta = {"device": str(jax.devices()[0]), "jax": jax.__version__}
        (args.out / "vocabulary.json").write_text(
            json.dumps({"meta": meta, "records": records}, indent=1)
        )
        (args.out / "vocabulary.md").write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
