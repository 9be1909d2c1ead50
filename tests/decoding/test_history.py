"""History strategies in the decode loop, on the shipped Mini-GPT.

* the ``lax.scan`` loop and a Python loop of :func:`jaxsample.sample_step` on the same
  logits give the same tokens, and ``logprobs`` equal a recomputation from the logits;
* penalties reduce the repeats of the generations (measured, counts printed);
* mirostat's observed surprise settles near its target.

Each test is one compiled generation (per-row parameters share it between settings).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from jaxsample.decoding import generate_ids
from jaxsample.model import Pretrained, load_pretrained


@pytest.fixture(scope="module")
def model() -> Pretrained:
    return load_pretrained()


def _prompts(model: Pretrained, n: int) -> list[list[int]]:
    texts = ["", "Tomorrow she", "the dog", "Every day I"]
    return [model.tokenizer.encode(texts[i % len(texts)], bos=True) for i in range(n)]


def test_scan_equals_a_python_loop_of_single_steps_and_logprobs(model: Pretrained) -> None:
    tok = model.tokenizer
    strategy = js.chain(
        js.RepetitionPenalty(1.3),
        js.PresencePenalty(0.4),
        js.NoRepeatNGram(3),
        js.DRY(0.8, 1.75, 2),
        js.MinNewTokens(4, tok.eos_id),
        js.Temperature(0.9),
        js.XTC(0.1, 0.5),
        js.Mirostat2(2.0, 0.3),
    )
    prompts = _prompts(model, 8)
    n_new = 20
    key = jax.random.key(7)
    gen = generate_ids(
        model.params, model.config, prompts, key, strategy, max_new_tokens=n_new,
        eos_id=tok.eos_id, pad_id=tok.pad_id, bos_id=tok.bos_id, record_logits=True, logprobs=3,
    )  # fmt: skip
    assert gen.logits is not None and gen.logprobs is not None
    # The same steps one by one: the state from the left-padded prompt, per-row keys
    # fold_in(key, b), step keys fold_in(k_b, t), the recorded logits of each step.
    width = max(len(p) for p in prompts)
    padded = np.full((8, width), -1)
    for b, p in enumerate(prompts):
        padded[b, width - len(p) :] = p
    h = js.init_history(
        strategy, model.config.vocab_size, jnp.asarray(padded), window=width + n_new
    )
    row_keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.arange(8))
    finished = np.zeros(8, bool)
    tokens = []
    for t in range(n_new):
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, t)
        logits = gen.logits[:, t]
        bound = js.bind(strategy, h, step_keys, (8,))
        drawn, h = js.sample_step(step_keys, logits, strategy, h, active=jnp.asarray(~finished))
        # logprobs: a recomputation from the model's logits, no second forward pass.
        raw = jax.nn.log_softmax(logits, axis=-1)
        processed = jnp.log(js.probs(logits, bound))
        lp = jax.tree.map(lambda a, t=t: a[:, t], gen.logprobs)
        np.testing.assert_allclose(lp.raw, raw[jnp.arange(8), drawn], rtol=0, atol=1e-5)
        np.testing.assert_allclose(lp.processed, processed[jnp.arange(8), drawn], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(lp.top_ids, jax.lax.top_k(raw, 3)[1])
        np.testing.assert_allclose(
            lp.top_processed, jnp.take_along_axis(processed, lp.top_ids, -1), atol=1e-5
        )
        token = np.where(finished, tok.pad_id, np.asarray(drawn))
        tokens.append(token)
        finished |= token == tok.eos_id
    np.testing.assert_array_equal(np.stack(tokens, 1), gen.tokens)
    assert np.all(np.isfinite(np.asarray(gen.logprobs.processed)[np.asarray(gen.tokens) > 0]))
    # min-new-tokens: no row ended before 4 tokens.
    assert np.asarray(gen.lengths).min() >= 5 or not np.asarray(gen.finished).any()


def _repeats(tokens: np.ndarray) -> int:
    """Generated tokens equal to an earlier generated token of the same row."""
    total = 0
    for row in tokens:
        seen: set[int] = set()
        for t in row.tolist():
            total += t in seen
            seen.add(t)
    return total


def _free_running(
    model: Pretrained, strategy: js.Strategy, rows: int, n_new: int, **kw: object
) -> js.Generation:
    """``rows`` generations that run on past the model's <eos> (EOS set to the pad id)."""
    tok = model.tokenizer
    return generate_ids(
        model.params, model.config, _prompts(model, rows), jax.random.key(0), strategy,
        max_new_tokens=n_new, eos_id=tok.pad_id, pad_id=tok.pad_id, bos_id=tok.bos_id, **kw,
    )  # fmt: skip


def test_penalties_reduce_repeats(model: Pretrained) -> None:
    # One compiled loop: rows 0-63 plain, 64-127 repetition penalty 1.3, 128-191
    # frequency penalty 1.0 (per-row parameters), 28 tokens each.
    group = 64
    rho = jnp.repeat(jnp.array([1.0, 1.3, 1.0]), group)
    freq = jnp.repeat(jnp.array([0.0, 0.0, 1.0]), group)
    strategy = js.chain(js.RepetitionPenalty(rho), js.FrequencyPenalty(freq), js.Temperature(1.0))
    gen = _free_running(model, strategy, 3 * group, 28)
    tokens = np.asarray(gen.tokens)
    plain, rep, frq = (_repeats(tokens[i * group : (i + 1) * group]) for i in range(3))
    print(
        f"repeats in {group} x 28 tokens: plain {plain}, repetition 1.3 {rep}, frequency 1.0 {frq}"
    )
    assert rep < 0.9 * plain and frq < 0.85 * plain


def test_mirostat_surprise_settles_near_its_target(model: Pretrained) -> None:
    # Three targets (32 rows each, per-row parameters), temperature 1.5 so that the
    # model's distribution can reach a surprise of 3 bits, learning rate 0.5, 28 steps.
    targets = np.repeat([1.0, 2.0, 3.0], 32)
    lr = 0.5
    gen = _free_running(model, js.Mirostat2(jnp.asarray(targets), lr, tau=1.5), 96, 28, logprobs=1)
    assert gen.logprobs is not None
    surprise = -np.asarray(gen.logprobs.processed) / np.log(2)  # bits, [96, 28]
    # mu from its update rule on the observed surprises (mu_0 = 2 * target).
    mu = [2 * targets]
    for t in range(surprise.shape[1]):
        mu.append(mu[-1] - lr * (surprise[:, t] - targets))
    for i, target in enumerate((1.0, 2.0, 3.0)):
        rows = slice(32 * i, 32 * (i + 1))
        late = surprise[rows, 8:].mean()
        path = [round(float(mu[t][rows].mean()), 2) for t in (0, 7, 14, 21, 28)]
        print(f"target {target}: mean surprise, steps 8-27: {late:.3f} bits; mean mu {path}")
        assert abs(late - target) < 0.2
        # mu settles: the threshold that gives the target surprise, once reached.
        assert abs(mu[28][rows].mean() - mu[14][rows].mean()) < 1.0
