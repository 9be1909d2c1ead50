"""``jaxsample generate``: the sampler-vocabulary options, presets and ``--logprobs``."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest

import jaxsample as js
from jaxsample.cli import main
from jaxsample.decoding.options import options_strategy


def _args(**given: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "temperature": None,
        "top_k": None,
        "top_p": None,
        "min_p": None,
        "typical_p": None,
        "repetition_penalty": None,
        "presence_penalty": None,
        "frequency_penalty": None,
        "min_new_tokens": 0,
        "preset": None,
    }
    base.update(given)
    return argparse.Namespace(**base)


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a failed ``jaxsample generate`` printed (nothing on stdout)."""
    captured = capsys.readouterr()
    assert captured.out == ""
    err = [ln for ln in captured.err.splitlines() if "compiling" not in ln]
    assert len(err) == 1 and err[0].startswith("jaxsample generate: error: "), err
    return err[0]


def test_options_build_the_hf_order_by_default() -> None:
    s = options_strategy(
        _args(
            temperature=0.8,
            top_k=20,
            min_p=0.1,
            typical_p=0.9,
            repetition_penalty=1.3,
            presence_penalty=0.5,
            frequency_penalty=0.2,
            min_new_tokens=3,
        ),
        banned=[7, 9],
        eos_id=2,
    )
    assert isinstance(s, js.Chain)
    assert [type(p) for p in s.parts] == [
        js.Ban,
        js.MinNewTokens,
        js.RepetitionPenalty,
        js.FrequencyPenalty,
        js.PresencePenalty,
        js.Temperature,
        js.TopK,
        js.MinP,
        js.Typical,
    ]
    # No option: the model's distribution, as before.
    assert options_strategy(_args(), [], 2) == js.Temperature(1.0)
    # Temperature 0 with a penalty: the argmax of the penalised logits.
    greedy = options_strategy(_args(temperature=0.0, repetition_penalty=1.2), [], 2)
    assert [type(p) for p in greedy.parts] == [js.RepetitionPenalty, js.Greedy]  # type: ignore[attr-defined]


def test_preset_options_use_the_engines_names_and_defaults() -> None:
    llama = options_strategy(_args(preset="llama.cpp", repetition_penalty=1.1), [3], 2)
    types = [type(p) for p in llama.parts]  # type: ignore[attr-defined]
    assert types[0] is js.Ban and types[-1] is js.Temperature  # temperature last
    assert js.RepetitionPenalty in types and js.MinP in types  # llama.cpp's min_p=0.05
    hf = options_strategy(_args(preset="hf", temperature=0.7), [], 2)
    assert [type(p) for p in hf.parts] == [js.Temperature, js.TopK]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--top-p", "2"], "top-p must be in (0, 1]"),
        (["--temperature", "-0.5"], "temperature must be >= 0"),
        (["--n", "0"], "--n must be >= 1"),
        (["--top-k", "-1"], "top-k must be an integer >= 0"),
        (["--max-tokens", "0"], "--max-tokens must be >= 1"),
        (["--model", "/nonexistent/model"], "does not exist"),
        (["--min-p", "1.5"], "min-p must be in [0, 1] (0 disables it), got 1.5"),
        (["--preset", "hf", "--presence-penalty", "1"], "--preset hf has no --presence-penalty"),
        (["--min-p", "nan"], "min-p must be in [0, 1]"),
        (["--preset", "vllm", "--typical-p", "0.5"], "--preset vllm has no --typical-p"),
        (["--typical-p", "0"], "typical-p must be in (0, 1] (1 disables it), got 0"),
        (["--repetition-penalty", "-1"], "repetition-penalty must be > 0 (1 disables it), got -1"),
        (["--preset", "vllm", "--top-k", "-1"], "top-k must be an integer >= 0 (0 disables it)"),
        (["--presence-penalty", "inf"], "presence-penalty must be a finite number"),
        (["--frequency-penalty", "nan"], "frequency-penalty must be a finite number"),
        (["--min-new-tokens", "-2"], "--min-new-tokens must be >= 0, got -2"),
        (["--ban", "zzz"], "unknown words (not in the vocabulary): ['zzz']"),
        (["--logprobs", "-1"], "--logprobs must be >= 0, got -1"),
    ],
)
def test_bad_options_give_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate", "Tomorrow she", *argv]) == 2
    assert message in _error(capsys)


def test_unknown_preset_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["generate", "Tomorrow she", "--preset", "tgi"])
    assert "invalid choice: 'tgi'" in capsys.readouterr().err


def test_penalties_bans_and_logprobs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "Tomorrow she", "--n", "3", "--max-tokens", "6", "--seed", "1"]
    opts = ["--repetition-penalty", "1.5", "--ban", "will", "--min-new-tokens", "4"]
    assert main([*argv, *opts, "--logprobs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    texts = [ln for ln in out if not ln.startswith("  ")]
    rows = [ln for ln in out if ln.startswith("  ")]
    assert len(texts) == 3 and all(t.startswith("Tomorrow she") for t in texts)
    assert all("will" not in t.split()[2:] for t in texts)  # banned
    assert all(len(t.split()) >= 2 + 4 for t in texts)  # at least 4 new words before <eos>
    # One line per generated token: raw and sampled log-probabilities and the top 2.
    pattern = re.compile(r"raw +(-?\d+\.\d+) +sampled +(-?\d+\.\d+) +top: .+, .+")
    values = [pattern.search(r) for r in rows]
    assert rows and all(values)
    raw = np.array([float(m.group(1)) for m in values if m])
    assert np.all(raw <= 0)
