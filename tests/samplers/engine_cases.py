"""The engine fixtures of ``tests/fixtures/sampler_vocabulary.npz`` as jaxsample strategies.

``tests/fixtures/make_sampler_fixtures.py`` wrote them (Hugging Face run here, llama.cpp
and vLLM re-implemented in NumPy); each case names its engine, kind and parameters.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

import jaxsample as js

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sampler_vocabulary.npz"


@cache
def load() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of the fixture file."""
    with np.load(FIXTURE) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    return meta, arrays


def cases(*kinds: str) -> list[dict[str, Any]]:
    """The cases of the given kinds (all when none are given)."""
    meta, _ = load()
    return [c for c in meta["cases"] if not kinds or c["kind"] in kinds]


def history_for(strategy: js.Strategy) -> js.History:
    """The state after the fixture's prompt and generated tokens, built by the public API."""
    meta, arrays = load()
    context = arrays["context"]
    p = meta["prompt"]
    h = js.init_history(
        strategy, meta["vocab"], jnp.asarray(context[:, :p]), window=context.shape[1]
    )
    for t in range(p, context.shape[1]):
        h = js.advance(strategy, h, jnp.asarray(context[:, t]))
    return h


def strategy(case: dict[str, Any]) -> js.Strategy:
    """The jaxsample strategy of a stateless or history case."""
    kind, q = case["kind"], case["params"]
    if kind == "min_p":
        return js.MinP(q["min_p"], tau=q["tau"])
    if kind == "typical":
        return js.Typical(q["mass"], tau=q["tau"])
    if kind == "epsilon":
        return js.Epsilon(q["eps"], tau=q["tau"])
    if kind == "eta":
        return js.Eta(q["eta"], tau=q["tau"])
    if kind == "top_n_sigma":
        return js.TopNSigma(q["n"], tau=q["tau"])
    if kind == "xtc_cut":
        return js.XTC(q["threshold"], 1.0, coin=True)
    if kind == "ban":
        return js.Ban(jnp.asarray(q["ids"]))
    if kind == "bias":
        _, arrays = load()
        bias = np.zeros(arrays["logits"].shape[-1], np.float32)
        for k, v in q["bias"].items():
            bias[int(k)] = v
        return js.LogitBias(jnp.asarray(bias))
    if kind == "dense_bias":
        return js.LogitBias(jnp.asarray(load()[1]["bias"]))
    if kind == "allow":
        return js.Allow(jnp.asarray(load()[1]["allowed"]))
    if kind == "repetition":
        return js.RepetitionPenalty(q["rho"])
    if kind == "no_repeat_ngram":
        return js.NoRepeatNGram(q["n"])
    if kind == "min_new_tokens":
        return js.MinNewTokens(q["n"], q["eos_id"])
    if kind == "penalties" and case["engine"] == "llama.cpp":
        n = q["last_n"]
        return js.chain(
            js.RepetitionPenalty(q["repeat"], last_n=n),
            js.FrequencyPenalty(q["freq"], last_n=n),
            js.PresencePenalty(q["present"], last_n=n),
        )
    if kind == "penalties":
        return js.chain(
            js.RepetitionPenalty(q["repetition"]),
            js.FrequencyPenalty(q["frequency"]),
            js.PresencePenalty(q["presence"]),
        )
    if kind == "dry":
        return js.DRY(
            q["multiplier"], q["base"], q["allowed_length"], breakers=tuple(q["breakers"])
        )
    if kind == "mirostat2":
        return js.Mirostat2(5.0, 0.1)
    raise KeyError(kind)


def engine_probs(case: dict[str, Any]) -> np.ndarray:
    """The engine's probabilities ``[rows, V]`` for a case."""
    _, arrays = load()
    return arrays[f"probs/{case['name']}"]


def jaxsample_probs(case: dict[str, Any]) -> np.ndarray:
    """``jaxsample.probs`` of the case's strategy on the fixture's logits (bound to its history)."""
    _, arrays = load()
    s = strategy(case)
    logits = jnp.asarray(arrays["flat" if case["kind"] == "xtc_cut" else "logits"])
    if case["kind"] == "mirostat2":  # the engine's truncation at a given mu
        rows = logits.shape[0]
        mu = jnp.full((rows,), case["params"]["mu"], jnp.float32)
        s = js.bind(s, js.History(jnp.zeros((rows,), jnp.int32), mu=mu))
    elif js.needs_history(s):
        s = js.bind(s, history_for(s))
    return np.asarray(js.probs(logits, s), np.float64)
