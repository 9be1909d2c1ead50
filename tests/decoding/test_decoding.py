"""Tests for the decode loop in jaxsample.decoding.

Compilation dominates on CPU, so most tests share a few call shapes on a tiny random
model (a batch of 100 mixed-length prompts with per-row temperatures; a batch of 6,
half greedy, with recorded logits; single rows), and the shipped model is used only
for the seeds' API and the command line.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import jaxsample as js
from jaxsample.cli import main
from jaxsample.decoding import (
    Generation,
    complete,
    completion_ids,
    generate,
    generate_ids,
    left_pad,
    make_strategy,
    row_keys,
    sample_completions,
)
from jaxsample.decoding import loop as decode_loop
from jaxsample.model import GPTConfig, Params, Pretrained, init_params, load_pretrained

CFG = GPTConfig(vocab_size=40, n_ctx=24, n_layer=2, n_head=2, d_model=16)
PAD, BOS, EOS = 0, 1, 2
N = 8  # new tokens in most tests
IDS: dict[str, Any] = {"eos_id": EOS, "pad_id": PAD, "bos_id": BOS}


@jax.jit
def _add_noise(params: Params, key: jax.Array) -> Params:
    flat, unravel = ravel_pytree(params)
    noisy: Params = unravel(flat + 0.3 * jax.random.normal(key, flat.shape, flat.dtype))
    return noisy


@pytest.fixture(scope="module")
def params() -> Params:
    """GPT-2 init plus large noise, so that the logits are far from uniform."""
    noisy: Params = _add_noise(init_params(jax.random.key(0), CFG), jax.random.key(1))
    return noisy


def _prompts(n: int, seed: int) -> list[list[int]]:
    """``n`` prompts of lengths 1..5 (cycling), ids of ordinary words (3 .. V-1)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(3, CFG.vocab_size, size=1 + i % 5).tolist() for i in range(n)]


PROMPTS_100 = _prompts(100, 0)
PROMPTS_6 = PROMPTS_100[:6]
TAUS_100 = np.linspace(0.5, 2.0, 100, dtype=np.float32)


def _np(gen: Generation) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    return np.asarray(gen.tokens), np.asarray(gen.lengths), np.asarray(gen.finished)


def _assert_eos_layout(gen: Generation, eos_id: int = EOS) -> None:
    """Tokens end at the first EOS (kept), pads follow, lengths and flags agree."""
    tokens, lengths, finished = _np(gen)
    for row, length, done in zip(tokens, lengths, finished, strict=True):
        hits = np.flatnonzero(row == eos_id)
        if len(hits):
            assert done and length == hits[0] + 1
            assert np.all(row[length:] == PAD)
        else:
            assert not done and length == row.shape[0]


# ---------------------------------------------------------------------------------------
# Batch invariance and keys
# ---------------------------------------------------------------------------------------


def test_row_alone_equals_row_in_a_batch_of_100(params: Params) -> None:
    key = jax.random.key(11)
    batch = generate_ids(
        params, CFG, PROMPTS_100, key, js.Temperature(TAUS_100), max_new_tokens=N, **IDS
    )
    tokens, lengths, finished = _np(batch)
    assert tokens.shape == (100, N) and tokens.dtype == np.int32
    assert lengths.dtype == np.int32 and finished.dtype == np.bool_
    _assert_eos_layout(batch)
    # Rows with the shortest and the longest prompt, generated alone (no left padding
    # for the longest, none at all for the shortest) with the documented row keys.
    for b in (5, 9, 40):  # lengths 1, 5 and 1
        alone = generate_ids(
            params,
            CFG,
            [PROMPTS_100[b]],
            row_keys(key, 1, start=b),
            js.Temperature(TAUS_100[b : b + 1]),
            max_new_tokens=N,
            **IDS,
        )
        np.testing.assert_array_equal(np.asarray(alone.tokens[0]), tokens[b])
        assert int(alone.lengths[0]) == lengths[b]
        assert bool(alone.finished[0]) == finished[b]


def test_sample_completions_is_one_stream_per_seed_row(params: Params) -> None:
    prompt = PROMPTS_100[4]  # 5 tokens: the shapes of the test above
    many = sample_completions(
        params, CFG, prompt, 100, 7, js.Temperature(np.ones(100, np.float32)), N, **IDS
    )
    tokens = np.asarray(many.tokens)
    assert tokens.shape == (100, N)
    assert len({tuple(row) for row in tokens.tolist()}) > 50  # independent streams
    for i in (0, 37):
        one = generate_ids(
            params,
            CFG,
            [prompt],
            row_keys(jax.random.key(7), 1, start=i),
            js.Temperature(np.ones(1, np.float32)),
            max_new_tokens=N,
            **IDS,
        )
        np.testing.assert_array_equal(np.asarray(one.tokens[0]), tokens[i])
    first = sample_completions(
        params, CFG, prompt, 1, 7, js.Temperature(np.ones(1, np.float32)), N, **IDS
    )
    np.testing.assert_array_equal(np.asarray(first.tokens[0]), tokens[0])


def test_same_seed_same_tokens_and_other_seeds_differ(params: Params) -> None:
    strategy = js.Temperature(TAUS_100)
    run = [
        np.asarray(
            generate_ids(
                params, CFG, PROMPTS_100, jax.random.key(s), strategy, max_new_tokens=N, **IDS
            ).tokens
        )
        for s in (3, 3, 4)
    ]
    np.testing.assert_array_equal(run[0], run[1])
    assert not np.array_equal(run[0], run[2])


def test_step_keys_follow_the_documented_scheme_on_a_uniform_model(params: Params) -> None:
    """With zero embeddings every logit is 0: the tokens are pure functions of the keys."""
    uniform = {**params, "wte": jnp.zeros_like(params["wte"])}
    key = jax.random.key(5)
    ones = js.Temperature(np.ones(100, np.float32))
    gen = generate_ids(uniform, CFG, PROMPTS_100, key, ones, max_new_tokens=N, **IDS)
    tokens, _, _ = _np(gen)
    _assert_eos_layout(gen)
    B = len(PROMPTS_100)
    step_keys = jax.vmap(
        lambda b: jax.vmap(lambda t: jax.random.fold_in(jax.random.fold_in(key, b), t))(
            jnp.arange(N)
        )
    )(jnp.arange(B))  # [B, N]: fold_in(fold_in(key, b), t)
    expected = np.array(
        js.sample(step_keys, jnp.zeros((B, N, CFG.vocab_size)), js.Temperature(1.0))
    )
    for row in expected:  # apply the EOS rule
        hits = np.flatnonzero(row == EOS)
        if len(hits):
            row[hits[0] + 1 :] = PAD
    np.testing.assert_array_equal(tokens, expected)
    # No key is reused: the rows are not constant over the steps.
    for row in expected:
        assert len(set(row[:4].tolist())) > 1


def test_new_strategy_values_reuse_the_compiled_loop(params: Params) -> None:
    def run(strategy: js.Strategy) -> None:
        generate_ids(
            params, CFG, PROMPTS_100, jax.random.key(0), strategy, max_new_tokens=N, **IDS
        ).tokens.block_until_ready()

    def compiled() -> int:
        size: int = getattr(decode_loop._decode, "_cache_size")()  # noqa: B009
        return size

    run(js.Temperature(np.full(100, 0.3, np.float32)))
    before = compiled()
    for tau in (0.7, 1.3, 2.5, 10.0):
        run(js.Temperature(np.full(100, tau, np.float32)))
    assert compiled() == before


# ---------------------------------------------------------------------------------------
# Cache versus recompute, EOS and padding
# ---------------------------------------------------------------------------------------


# Rows 0-2 are greedy (temperature 0), rows 3-5 sample: one compiled loop per path.
MIXED_TAUS = np.array([0.0, 0.0, 0.0, 0.8, 1.0, 1.5], np.float32)


def _mixed_run(params: Params, cache: bool, **ids: Any) -> Generation:
    """The six prompts decoded with ``MIXED_TAUS``, key 0 and recorded logits."""
    return generate_ids(
        params,
        CFG,
        PROMPTS_6,
        jax.random.key(0),
        js.Temperature(MIXED_TAUS),
        max_new_tokens=N,
        cache=cache,
        record_logits=True,
        **ids,
    )


@pytest.fixture(scope="module")
def mixed_runs(params: Params) -> dict[bool, Generation]:
    return {cache: _mixed_run(params, cache, **IDS) for cache in (True, False)}


def test_cache_and_recompute_agree(mixed_runs: dict[bool, Generation]) -> None:
    cached, full = mixed_runs[True], mixed_runs[False]
    # Greedy rows and sampled rows alike draw the same tokens on both paths.
    np.testing.assert_array_equal(np.asarray(cached.tokens), np.asarray(full.tokens))
    np.testing.assert_array_equal(np.asarray(cached.lengths), np.asarray(full.lengths))
    assert cached.logits is not None and full.logits is not None
    assert cached.logits.shape == (len(PROMPTS_6), N, CFG.vocab_size)
    np.testing.assert_allclose(np.asarray(cached.logits), np.asarray(full.logits), atol=1e-4)
    # The greedy rows pick the argmax of the recorded logits.
    np.testing.assert_array_equal(
        np.asarray(cached.tokens[:3]), np.argmax(np.asarray(cached.logits[:3]), axis=-1)
    )


@pytest.mark.parametrize("cache", [True, False])
def test_eos_ends_a_row_and_pads_the_rest(
    params: Params, mixed_runs: dict[bool, Generation], cache: bool
) -> None:
    free = np.asarray(mixed_runs[True].tokens)
    # Declare as EOS a token that row 0 draws first at step t >= 1. Every row draws the
    # same tokens as in the free run up to its first EOS (same keys, same logits), and
    # row 0 (greedy) stops exactly at step t.
    t = next(t for t in range(1, N) if free[0, t] not in free[0, :t])
    for eos_id, step in ((int(free[0, t]), t), (int(free[0, 0]), 0)):
        gen = _mixed_run(params, cache, eos_id=eos_id, pad_id=PAD)
        tokens, lengths, finished = _np(gen)
        assert finished[0] and lengths[0] == step + 1
        np.testing.assert_array_equal(tokens[0, : step + 1], free[0, : step + 1])
        assert np.all(tokens[0, step + 1 :] == PAD)
        _assert_eos_layout(gen, eos_id)
        for row, free_row, length in zip(tokens, free, lengths, strict=True):
            np.testing.assert_array_equal(row[:length], free_row[:length])
        assert completion_ids(gen, 0) == free[0, :step].tolist()


def test_prompt_forms_and_empty_prompt(params: Params) -> None:
    tokens, lengths = left_pad(PROMPTS_100, pad_id=PAD)
    assert tokens.dtype == np.int32 and tokens.shape == (100, 5)
    assert lengths.tolist() == [len(p) for p in PROMPTS_100]
    assert tokens[0].tolist() == [PAD] * 4 + PROMPTS_100[0]
    key, strategy = jax.random.key(2), js.Temperature(TAUS_100)
    ragged = generate_ids(params, CFG, PROMPTS_100, key, strategy, max_new_tokens=N, **IDS)
    padded = generate_ids(
        params, CFG, tokens, key, strategy, max_new_tokens=N, lengths=lengths, **IDS
    )
    np.testing.assert_array_equal(np.asarray(ragged.tokens), np.asarray(padded.tokens))
    # An empty prompt starts from <bos>.
    row_key, tau = row_keys(key, 1), js.Temperature(np.ones(1, np.float32))
    empty = generate_ids(params, CFG, [[]], row_key, tau, max_new_tokens=N, **IDS)
    bos = generate_ids(params, CFG, [[BOS]], row_key, tau, max_new_tokens=N, **IDS)
    np.testing.assert_array_equal(np.asarray(empty.tokens), np.asarray(bos.tokens))


# ---------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------


def _gen(params: Params, prompts: Any = ((3, 4),), **kwargs: Any) -> Generation:
    args: dict[str, Any] = {
        "key": jax.random.key(0),
        "strategy": js.Greedy(),
        "max_new_tokens": N,
        **IDS,
    }
    args.update(kwargs)
    return generate_ids(params, CFG, prompts, **args)


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    (
        "too-long",
        {"prompts": [[3] * 17]},
        r"prompt length 17 plus max_new_tokens 8 = 25 .*n_ctx=24",
    ),
    ("id-too-large", {"prompts": [[3], [3, 40]]}, r"prompt 1: token id 40 .*vocab_size=40"),
    ("negative-id", {"prompts": [[-1]]}, r"token id -1"),
    ("float-ids", {"prompts": [[1.5]]}, r"integer token ids"),
    ("string-prompt", {"prompts": ["she"]}, r"got a string"),
    ("empty-batch", {"prompts": []}, r"at least one prompt"),
    ("empty-no-bos", {"prompts": [[]], "bos_id": None}, r"prompt 0 is empty"),
    ("zero-new", {"max_new_tokens": 0}, r"max_new_tokens must be >= 1, got 0"),
    ("bool-new", {"max_new_tokens": True}, r"max_new_tokens must be an int"),
    ("eos-range", {"eos_id": 40}, r"eos_id must be in \[0, 40\)"),
    ("key-shape", {"key": jax.random.split(jax.random.key(0), 3)}, r"one key per row"),
    ("key-type", {"key": jnp.zeros(3)}, r"key must be a jax.random.key"),
    ("strategy", {"strategy": "greedy"}, r"strategy must be a jaxsample strategy"),
    ("tau-shape", {"strategy": js.Temperature(np.ones(3))}, r"one value per row"),
    ("lengths-list", {"lengths": [2]}, r"only accepted with a left-padded prompt array"),
    ("lengths-range", {"prompts": np.ones((1, 2), np.int32), "lengths": [3]}, r"\[0, P=2\]"),
    ("array-1d", {"prompts": np.ones(2, np.int32)}, r"left-padded int \[B, P\]"),
]


@pytest.mark.parametrize(
    ("kwargs", "pattern"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_generate_ids_arguments_raise(
    params: Params, kwargs: dict[str, Any], pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        _gen(params, **kwargs)


def test_bad_helper_arguments_raise(params: Params) -> None:
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        sample_completions(params, CFG, [3], 0, 0, js.Greedy(), N, **IDS)
    with pytest.raises(ValueError, match=r"seed must be in \[0, "):
        sample_completions(params, CFG, [3], 1, -1, js.Greedy(), N, **IDS)
    with pytest.raises(ValueError, match="single key"):
        row_keys(jax.random.split(jax.random.key(0), 2), 1)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"temperature": -1.0}, r"temperature must be >= 0.*-1\.0"),
        ({"temperature": float("nan")}, r"temperature must be >= 0"),
        ({"top_k": -2}, r"top-k must be an integer >= 0.*-2"),
        ({"top_p": 0.0}, r"top-p must be in \(0, 1\].*0\.0"),
        ({"top_p": 2.0}, r"top-p must be in \(0, 1\].*2\.0"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            make_strategy(**kwargs)


def test_make_strategy_builds_the_documented_chain() -> None:
    assert make_strategy(0.0, 50, 0.5) == js.Greedy()
    assert make_strategy(0.7) == js.Temperature(0.7)
    assert make_strategy(0.7, 0, 0.9) == js.chain(js.Temperature(0.7), js.TopP(0.9))
    assert make_strategy(0.7, 5, 0.9) == js.chain(js.Temperature(0.7), js.TopK(5), js.TopP(0.9))


# ---------------------------------------------------------------------------------------
# The seeds' API, text and the command line (shipped model)
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Pretrained:
    return load_pretrained()


def test_generate_returns_python_ints_without_eos(shipped: Pretrained) -> None:
    tok = shipped.tokenizer
    prompt = tok.encode("Tomorrow she", bos=True)
    ids = generate(shipped, prompt, max_tokens=12, seed=0, strategy=js.Greedy())
    assert type(ids) is list and ids and all(type(i) is int for i in ids)
    assert tok.eos_id not in ids and len(ids) < 12  # the trained model ends its sentence
    assert tok.decode(ids) == complete("Tomorrow she", max_tokens=12, model=shipped)[0]
    assert complete("Tomorrow she", max_tokens=12) == [tok.decode(ids)]  # shipped by default
    words = tok.decode(ids).split()
    assert words[0] == "will" or words[:2] == ["is", "going"]  # future tense
    with pytest.raises(TypeError, match=r"one string, got list.*generate_ids"):
        complete(["Tomorrow she", "the dog"], model=shipped)  # type: ignore[arg-type]


def test_cli_generate(shipped: Pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["generate", "Tomorrow  she", "--n", "3", "--seed", "4", "--temperature", "0.8"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and all(line.startswith("Tomorrow she ") for line in out)
    assert main(argv) == 0
    assert capsys.readouterr().out.splitlines() == out  # same arguments, same output
    texts = complete(
        "Tomorrow she", n=3, seed=4, strategy=js.Temperature(0.8), max_tokens=12, model=shipped
    )
    assert out == [f"Tomorrow she {text}" for text in texts]
    assert main(["generate", "Tomorrow she", "--temperature", "0"]) == 0
    greedy = capsys.readouterr().out.splitlines()
    assert greedy == ["Tomorrow she " + complete("Tomorrow she", model=shipped)[0]]


def test_cli_rejects_unknown_words_and_long_prompts(
    shipped: Pretrained, capsys: pytest.CaptureFixture[str]
) -> None:
    long_prompt = " ".join(["she"] * 25)
    for prompt, pattern in [
        ("Tomorrow she flarbs", "unknown words (not in the vocabulary): ['flarbs']"),
        (long_prompt, "the prompt takes 26 tokens (25 words and <bos>)"),
    ]:
        assert main(["generate", prompt]) == 2
        captured = capsys.readouterr()
        lines = captured.err.splitlines()
        assert captured.out == "" and len(lines) == 1 and pattern in lines[0]
