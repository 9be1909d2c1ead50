"""Engine presets: each reproduces its engine's whole chain on the fixtures."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from tests.samplers import engine_cases

HF_NAMES = {
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "min_new_tokens",
    "eos_token_id",
}
LLAMA_NAMES = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_last_n": "repeat_last_n",
    "repeat_penalty": "repeat_penalty",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "dry_multiplier": "dry_multiplier",
    "top_n_sigma": "top_n_sigma",
    "xtc_probability": "xtc_probability",
    "xtc_threshold": "xtc_threshold",
}


def preset(case: dict[str, Any]) -> js.Strategy:
    params = {k: v for k, v in case["params"].items() if k != "processors"}
    if case["engine"] == "hf":
        assert set(params) <= HF_NAMES
        return js.presets.hf(**params)
    if case["engine"] == "vllm":
        return js.presets.vllm(**params)
    return js.presets.llama_cpp(**{LLAMA_NAMES[k]: v for k, v in params.items()})


def preset_probs(case: dict[str, Any], strategy: js.Strategy) -> np.ndarray:
    _, arrays = engine_cases.load()
    logits = jnp.asarray(arrays["logits"])
    if js.needs_history(strategy):
        strategy = js.bind(strategy, engine_cases.history_for(strategy))
    if any(isinstance(p, js.XTC) for p in getattr(strategy, "parts", ())):
        # The fixture's engine run made the cut (its coin came up): fix the coin.
        parts = [
            js.XTC(p.threshold, p.probability, coin=True) if isinstance(p, js.XTC) else p
            for p in strategy.parts  # type: ignore[attr-defined]
        ]
        strategy = type(strategy)(tuple(parts))  # type: ignore[call-arg]
    return np.asarray(js.probs(logits, strategy), np.float64)


@pytest.mark.parametrize("case", engine_cases.cases("preset"), ids=lambda c: c["name"])
def test_preset_reproduces_its_engine(case: dict[str, Any]) -> None:
    strategy = preset(case)
    got = preset_probs(case, strategy)
    expected = engine_cases.engine_probs(case)
    np.testing.assert_array_equal(got > 0, expected > 0)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_hf_preset_has_hf_processor_order() -> None:
    # The fixture recorded the processors HF built; the preset has the same parts in order.
    kinds = {
        "RepetitionPenaltyLogitsProcessor": js.RepetitionPenalty,
        "NoRepeatNGramLogitsProcessor": js.NoRepeatNGram,
        "MinNewTokensLengthLogitsProcessor": js.MinNewTokens,
        "TemperatureLogitsWarper": js.Temperature,
        "TopKLogitsWarper": js.TopK,
        "TopPLogitsWarper": js.TopP,
        "MinPLogitsWarper": js.MinP,
        "TypicalLogitsWarper": js.Typical,
        "EpsilonLogitsWarper": js.Epsilon,
        "EtaLogitsWarper": js.Eta,
    }
    for case in engine_cases.cases("preset"):
        if case["engine"] == "hf":
            parts = preset(case).parts  # type: ignore[attr-defined]
            names = case["params"]["processors"]
            assert [type(p) for p in parts] == [kinds[n] for n in names]


def test_orders_differ_and_the_order_matters() -> None:
    # llama.cpp truncates before its temperature; HF and vLLM after theirs.
    z = jax.random.normal(jax.random.key(0), (995,)) * 2.0
    settings = {"temperature": 2.0, "top_k": 0, "top_p": 0.9, "min_p": 0.1}
    hf = np.asarray(js.probs(z, js.presets.hf(**settings)))
    vllm = np.asarray(js.probs(z, js.presets.vllm(**settings)))
    llama = np.asarray(js.probs(z, js.presets.llama_cpp(**settings)))
    assert (llama > 0).sum() < (hf > 0).sum()  # truncation at tau = 1 keeps fewer tokens
    # vLLM applies min-p before top-p, HF after: the kept sets may differ, but each is exact.
    np.testing.assert_allclose(hf.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(vllm.sum(), 1.0, atol=1e-5)


def test_neutral_values_leave_parts_out_and_arrays_keep_them() -> None:
    assert js.presets.vllm().parts == ()
    assert [type(p) for p in js.presets.hf().parts] == [js.TopK]  # HF's default top_k=50
    assert [type(p) for p in js.presets.llama_cpp().parts] == [
        js.TopK,
        js.TopP,
        js.MinP,
        js.Temperature,
    ]
    swept = js.presets.vllm(temperature=jnp.array([0.5, 1.0]), min_p=jnp.array([0.0, 0.1]))
    assert [type(p) for p in swept.parts] == [js.Temperature, js.MinP]
    z = jax.random.normal(jax.random.key(1), (2, 50))
    q = np.asarray(js.probs(z, swept))
    np.testing.assert_allclose(
        q[1], np.asarray(js.probs(z[1], js.presets.vllm(min_p=0.1))), atol=1e-7
    )
    assert isinstance(js.presets.vllm(temperature=0.0).parts[-1], js.Greedy)
    assert isinstance(js.presets.hf(do_sample=False).parts[-1], js.Greedy)
    m = js.presets.llama_cpp(mirostat=2, temperature=0.7)
    assert [type(p) for p in m.parts] == [js.Temperature, js.Mirostat2]


def test_preset_errors() -> None:
    with pytest.raises(ValueError, match="min_new_tokens needs eos_token_id"):
        js.presets.hf(min_new_tokens=3)
    with pytest.raises(ValueError, match="mirostat must be 0"):
        js.presets.llama_cpp(mirostat=1)
    with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
        js.presets.vllm(top_p=1.5)
