"""Tests for the Mini-GPT in jaxsample.model.

Compilation dominates the run time on CPU, so the tests jit everything they can (apart
from the one eager-versus-jit check), share batch shapes to hit the jit cache, and do
their bookkeeping in NumPy rather than in eager JAX ops.
"""

from __future__ import annotations

import math
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

from jaxsample.model import PRESET_NAMES, GPTConfig, KVCache, Params, check_tokens, count_params
from jaxsample.model.gpt import forward, forward_cached, init_cache, init_params, loss_fn

# Two layers so that the cache is exercised across layers; still tiny.
CFG = GPTConfig(vocab_size=50, n_ctx=16, n_layer=2, n_head=2, d_model=16)

forward_jit = jax.jit(forward, static_argnames="config")
forward_cached_jit = jax.jit(forward_cached, static_argnames="config")
loss_and_grad = jax.jit(jax.value_and_grad(loss_fn), static_argnames=("config", "pad_id"))


@jax.jit
def _add_noise(params: Params, key: jax.Array, scale: float) -> Params:
    flat, unravel = ravel_pytree(params)
    noisy: Params = unravel(flat + scale * jax.random.normal(key, flat.shape, flat.dtype))
    return noisy


def _random_params(seed: int, scale: float = 0.3) -> Params:
    """GPT-2 init plus large noise on every leaf, so that logits are far from uniform."""
    return _add_noise(init_params(jax.random.key(seed), CFG), jax.random.key(seed + 1), scale)


@pytest.fixture(scope="module")
def params() -> Params:
    return _random_params(0)


def _random_tokens(seed: int, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, CFG.vocab_size, size=shape).astype(np.int32)


def _left_pad(
    rows: list[list[int]], width: int, pad_seed: int = 0
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Left-pad rows with random junk ids.

    Returns tokens int32, positions int32 (0, 1, ... from each row's first real token,
    0 on the padding) and key_valid bool, each (B, width).
    """
    tokens = _random_tokens(pad_seed, (len(rows), width))
    valid = np.zeros((len(rows), width), dtype=bool)
    for b, row in enumerate(rows):
        tokens[b, width - len(row) :] = row
        valid[b, width - len(row) :] = True
    positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0).astype(np.int32)
    return tokens, positions, valid


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"vocab_size": 0}, "vocab_size must be a positive int \\(>= 1\\), got 0"),
        ({"vocab_size": 10, "n_ctx": -1}, "n_ctx .* got -1"),
        ({"vocab_size": 10, "n_layer": True}, "n_layer .* got True"),
        ({"vocab_size": 10, "n_head": 2.0}, "n_head .* got 2.0"),
        ({"vocab_size": 10, "d_model": "128"}, "d_model .* got '128'"),
        ({"vocab_size": 10, "n_head": 3, "d_model": 128}, "multiple of n_head=3, got d_model=128"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GPTConfig(**kwargs)


def test_config_presets_and_dict_roundtrip() -> None:
    assert PRESET_NAMES == ("tiny", "small", "large")
    for name in PRESET_NAMES:
        cfg = GPTConfig.preset(name, vocab_size=500, n_ctx=24)
        assert cfg.vocab_size == 500 and cfg.n_ctx == 24
        assert GPTConfig.from_dict(cfg.to_dict()) == cfg
        hash(cfg)  # usable as a jit static argument
    with pytest.raises(ValueError, match="'huge'; valid names: tiny, small, large"):
        GPTConfig.preset("huge", vocab_size=500)
    d = CFG.to_dict()
    assert d == {"vocab_size": 50, "n_ctx": 16, "n_layer": 2, "n_head": 2, "d_model": 16}
    with pytest.raises(ValueError, match="missing keys \\['n_head'\\]"):
        GPTConfig.from_dict({k: v for k, v in d.items() if k != "n_head"})
    with pytest.raises(ValueError, match="unknown keys \\['dropout'\\]"):
        GPTConfig.from_dict({**d, "dropout": 0})


# ---------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"), [("tiny", 29_792), ("small", 1_881_984), ("large", 4_875_264)]
)
def test_param_counts(name: str, expected: int) -> None:
    cfg = GPTConfig.preset(name, vocab_size=500)
    shapes = jax.eval_shape(lambda k: init_params(k, cfg), jax.random.key(0))
    D, L = cfg.d_model, cfg.n_layer
    formula = 500 * D + cfg.n_ctx * D + L * (12 * D * D + 13 * D) + 2 * D
    assert count_params(shapes) == formula == expected
    if name == "small":
        assert 1_000_000 <= expected <= 3_000_000


def test_init_structure_and_statistics() -> None:
    cfg = GPTConfig.preset("small", vocab_size=500)
    p = jax.tree_util.tree_map(np.asarray, init_params(jax.random.key(0), cfg))
    D = cfg.d_model
    assert set(p) == {"wte", "wpe", "h", "ln_f"} and len(p["h"]) == cfg.n_layer
    chex.assert_shape(p["wte"], (500, D))
    chex.assert_shape(p["wpe"], (cfg.n_ctx, D))
    block = p["h"][0]
    chex.assert_shape(block["attn"]["c_attn"]["w"], (D, 3 * D))
    chex.assert_shape(block["attn"]["c_attn"]["b"], (3 * D,))
    chex.assert_shape(block["attn"]["c_proj"]["w"], (D, D))
    chex.assert_shape(block["mlp"]["c_fc"]["w"], (D, 4 * D))
    chex.assert_shape(block["mlp"]["c_proj"]["w"], (4 * D, D))
    chex.assert_shape([block["ln_1"]["g"], block["ln_2"]["b"], p["ln_f"]["g"]], (D,))
    assert all(leaf.dtype == np.float32 for leaf in jax.tree_util.tree_leaves(p))
    np.testing.assert_allclose(np.std(p["wte"]), 0.02, rtol=0.05)
    np.testing.assert_allclose(np.std(block["mlp"]["c_fc"]["w"]), 0.02, rtol=0.05)
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    np.testing.assert_allclose(np.std(block["mlp"]["c_proj"]["w"]), proj_std, rtol=0.05)
    np.testing.assert_allclose(np.std(block["attn"]["c_proj"]["w"]), proj_std, rtol=0.05)
    np.testing.assert_array_equal(block["ln_1"]["g"], 1.0)
    np.testing.assert_array_equal(block["attn"]["c_attn"]["b"], 0.0)
    # Every layer gets its own weights.
    assert not np.array_equal(block["mlp"]["c_fc"]["w"], p["h"][1]["mlp"]["c_fc"]["w"])


# ---------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------


def test_forward_eager_jit_and_prefill_agree(params: Params) -> None:
    # Row 0 unpadded, row 1 left-padded, row 2 entirely padding (no valid key at all).
    tokens, positions, valid = _left_pad([list(range(1, 9)), [7, 8, 9], []], width=8)
    kw: dict[str, Any] = {"positions": positions, "key_valid": valid}
    eager = np.asarray(forward(params, jnp.asarray(tokens), CFG, **kw))
    chex.assert_shape(eager, (3, 8, CFG.vocab_size))
    assert eager.dtype == np.float32
    chex.assert_tree_all_finite(eager)  # fully masked queries give junk, but never NaN
    np.testing.assert_allclose(forward_jit(params, tokens, CFG, **kw), eager, atol=1e-5)

    cache0 = init_cache(CFG, batch=3, max_len=8)
    cached, cache = forward_cached_jit(params, tokens, cache0, CFG, slot=jnp.int32(0), **kw)
    chex.assert_shape(cached, (3, 8, CFG.vocab_size))
    chex.assert_shape([cache.k, cache.v], (2, 3, 2, 8, 8))
    chex.assert_tree_all_finite((cached, cache))
    cached = np.asarray(cached)
    # Prefill equals the full forward pass at every valid position.
    np.testing.assert_allclose(cached[0], eager[0], atol=1e-5)
    np.testing.assert_allclose(cached[1, 5:], eager[1, 5:], atol=1e-5)


def test_forward_works_under_vmap(params: Params) -> None:
    tokens = _random_tokens(2, (3, 1, 8))  # (N, B, T)
    mapped = jax.jit(jax.vmap(lambda t: forward(params, t, CFG)))(tokens)
    chex.assert_shape(mapped, (3, 1, 8, CFG.vocab_size))
    flat = np.asarray(forward_jit(params, tokens.reshape(3, 8), CFG))
    np.testing.assert_allclose(mapped, flat.reshape(3, 1, 8, -1), atol=1e-5)


def test_causality(params: Params) -> None:
    tokens = _random_tokens(3, (3, 8))
    changed = tokens.copy()
    changed[:, 5] = (changed[:, 5] + 1) % CFG.vocab_size
    a = np.asarray(forward_jit(params, tokens, CFG))
    b = np.asarray(forward_jit(params, changed, CFG))
    np.testing.assert_allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert np.abs(a[:, 5:] - b[:, 5:]).max(axis=(1, 2)).min() > 1e-3


def test_left_padding_invariance(params: Params) -> None:
    rows = [[3, 14, 15, 9, 2], [6, 5], [35, 8, 9, 7, 9, 3, 2, 3]]
    tokens, positions, valid = _left_pad(rows, width=8, pad_seed=4)
    padded = np.asarray(forward_jit(params, tokens, CFG, positions=positions, key_valid=valid))
    # Reference: each row on its own at positions 0, 1, ... (right-padded into one batch,
    # which causality, tested above, keeps invisible to the real positions) ...
    alone = np.zeros((len(rows), 8), np.int32)
    for b, row in enumerate(rows):
        alone[b, : len(row)] = row
    ref = np.asarray(forward_jit(params, alone, CFG))
    for b, row in enumerate(rows):
        np.testing.assert_allclose(padded[b, 8 - len(row) :], ref[b, : len(row)], atol=1e-5)
    # ... and one row with no padding at all.
    single = np.asarray(forward_jit(params, np.asarray([rows[0]], np.int32), CFG))
    np.testing.assert_allclose(padded[0, 8 - len(rows[0]) :], single[0], atol=1e-5)


def test_forward_shape_errors(params: Params) -> None:
    with pytest.raises(ValueError, match="sequence length T=17 exceeds n_ctx=16"):
        forward(params, jnp.zeros((1, 17), jnp.int32), CFG)
    with pytest.raises(ValueError, match="tokens must have shape \\(B, T\\), got \\(7,\\)"):
        forward(params, jnp.zeros((7,), jnp.int32), CFG)
    with pytest.raises(ValueError, match="positions must have shape \\(2, 7\\), got \\(2, 6\\)"):
        forward(params, jnp.zeros((2, 7), jnp.int32), CFG, positions=jnp.zeros((2, 6), jnp.int32))
    with pytest.raises(ValueError, match="key_valid must have shape"):
        forward(params, jnp.zeros((2, 7), jnp.int32), CFG, key_valid=jnp.ones((1, 7), bool))
    with pytest.raises(ValueError, match=r"params have 2 blocks but config\.n_layer=1"):
        forward(params, jnp.zeros((2, 7), jnp.int32), GPTConfig(50, 16, 1, 2, 16))


# ---------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------


def test_init_cache() -> None:
    cache = init_cache(CFG, batch=3, max_len=10)
    assert isinstance(cache, KVCache)
    chex.assert_shape([cache.k, cache.v], (2, 3, 2, 10, 8))
    assert cache.k.dtype == jnp.float32 and not np.any(np.asarray(cache.k))
    with pytest.raises(ValueError, match="max_len must be an int in \\[1, n_ctx=16\\], got 17"):
        init_cache(CFG, batch=3, max_len=17)
    with pytest.raises(ValueError, match="got 0"):
        init_cache(CFG, batch=3, max_len=0)
    with pytest.raises(ValueError, match="batch must be a positive int, got 0"):
        init_cache(CFG, batch=0, max_len=4)


def test_forward_cached_argument_errors(params: Params) -> None:
    cache = init_cache(CFG, batch=1, max_len=4)
    tokens = jnp.zeros((1, 2), jnp.int32)
    positions = jnp.zeros((1, 2), jnp.int32)
    valid = jnp.ones((1, 4), bool)
    with pytest.raises(ValueError, match="slot must be in \\[0, S - T\\] = \\[0, 2\\], got 3"):
        forward_cached(params, tokens, cache, CFG, slot=3, positions=positions, key_valid=valid)
    with pytest.raises(ValueError, match="key_valid must have shape \\(1, 4\\)"):
        forward_cached(
            params, tokens, cache, CFG, slot=0, positions=positions, key_valid=valid[:, :3]
        )
    with pytest.raises(ValueError, match="T=5 new tokens do not fit in a cache of S=4 slots"):
        forward_cached(
            params, jnp.zeros((1, 5), jnp.int32), cache, CFG, slot=0,
            positions=jnp.zeros((1, 5), jnp.int32), key_valid=valid,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"cache\.k must have shape"):
        forward_cached(
            params, jnp.zeros((2, 2), jnp.int32), cache, CFG, slot=0,
            positions=jnp.zeros((2, 2), jnp.int32), key_valid=jnp.ones((2, 4), bool),
        )  # fmt: skip


@jax.jit
def _greedy_cached(
    params: Params, tokens: jax.Array, positions: jax.Array, valid: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Prefill a left-padded prompt, then decode greedily inside lax.scan.

    The cache has ``n_ctx`` slots; decoding fills all of them. Returns the prefill logits
    (B, P, V), the decode-step logits (B, n_ctx - P, V) and the generated tokens
    (B, n_ctx - P + 1) (the last one is produced but never fed back).
    """
    B, P = tokens.shape
    S = CFG.n_ctx
    kv = jnp.zeros((B, S), bool).at[:, :P].set(valid)
    prefill, cache = forward_cached(
        params, tokens, init_cache(CFG, B, S), CFG, slot=0, positions=positions, key_valid=kv
    )
    first = jnp.argmax(prefill[:, -1], axis=-1).astype(jnp.int32)  # (B,)
    next_pos = positions[:, -1] + 1  # (B,)
    Carry = tuple[KVCache, jax.Array, jax.Array, jax.Array]

    def step(carry: Carry, slot: jax.Array) -> tuple[Carry, tuple[jax.Array, jax.Array]]:
        cache, tok, pos, kv = carry
        kv = lax.dynamic_update_slice(kv, jnp.ones((B, 1), bool), (jnp.int32(0), slot))
        logits, cache = forward_cached(
            params, tok[:, None], cache, CFG, slot=slot, positions=pos[:, None], key_valid=kv
        )
        nxt = jnp.argmax(logits[:, 0], axis=-1).astype(jnp.int32)
        return (cache, nxt, pos + 1, kv), (logits[:, 0], nxt)

    slots = jnp.arange(P, S, dtype=jnp.int32)  # traced slot index per step
    _, (step_logits, generated) = lax.scan(step, (cache, first, next_pos, kv), slots)
    generated = jnp.concatenate([first[:, None], generated.T], axis=1)
    return prefill, step_logits.transpose(1, 0, 2), generated


@pytest.mark.parametrize("scale", [0.0, 0.3], ids=["gpt2-init", "random"])
def test_cached_decode_matches_recompute(scale: float) -> None:
    params = _random_params(7, scale)
    rows = [[3, 14, 15, 9, 2], [6, 5], [35, 8, 9, 7, 9, 3, 2], [1]]
    P, steps = 7, CFG.n_ctx - 7
    tokens, positions, valid = _left_pad(rows, width=P, pad_seed=1)
    prefill, step_logits, generated = map(
        np.asarray, _greedy_cached(params, tokens, positions, valid)
    )
    chex.assert_shape(prefill, (4, P, CFG.vocab_size))
    chex.assert_shape(step_logits, (4, steps, CFG.vocab_size))
    chex.assert_shape(generated, (4, steps + 1))

    # Recompute with one full forward pass over prompt + fed-back tokens.
    full_tokens = np.concatenate([tokens, generated[:, :steps]], axis=1)  # (B, n_ctx)
    full_pos = np.concatenate([positions, positions[:, -1:] + 1 + np.arange(steps)], axis=1)
    full_valid = np.concatenate([valid, np.ones((4, steps), bool)], axis=1)
    full = np.asarray(
        forward_jit(params, full_tokens, CFG, positions=full_pos, key_valid=full_valid)
    )
    cached = np.concatenate([prefill, step_logits], axis=1)  # (B, n_ctx, V)
    for b, row in enumerate(rows):
        start = P - len(row)
        np.testing.assert_allclose(cached[b, start:], full[b, start:], atol=1e-4, rtol=0)
    # Greedy decoding by recomputation picks the same tokens.
    np.testing.assert_array_equal(np.argmax(full[:, P - 1 :], axis=-1), generated)


def test_chunked_prefill_matches_single_prefill(params: Params) -> None:
    tokens, positions, valid = _left_pad([list(range(1, 9)), [7, 8, 9], []], width=8)
    cache0 = init_cache(CFG, batch=3, max_len=8)

    def run(lo: int, hi: int, cache: KVCache) -> tuple[np.ndarray[Any, Any], KVCache]:
        logits, cache = forward_cached_jit(
            params, tokens[:, lo:hi], cache, CFG, slot=jnp.int32(lo),
            positions=positions[:, lo:hi], key_valid=valid,
        )  # fmt: skip
        return np.asarray(logits), cache

    whole, cache_w = run(0, 8, cache0)
    first, cache_c = run(0, 5, cache0)
    second, cache_c = run(5, 8, cache_c)
    chunked = np.concatenate([first, second], axis=1)
    # Pad queries (row 1 slots 0-4, all of row 2) see no valid key; their outputs are junk.
    np.testing.assert_allclose(chunked[0], whole[0], atol=1e-5)
    np.testing.assert_allclose(chunked[1, 5:], whole[1, 5:], atol=1e-5)
    k_c, k_w = np.asarray(cache_c.k), np.asarray(cache_w.k)
    np.testing.assert_allclose(k_c[:, 0], k_w[:, 0], atol=1e-5)
    np.testing.assert_allclose(k_c[:, 1, :, 5:], k_w[:, 1, :, 5:], atol=1e-5)


# ---------------------------------------------------------------------------------------
# check_tokens
# ---------------------------------------------------------------------------------------


def test_check_tokens() -> None:
    check_tokens(np.array([[0, 49, 3]], np.int32), CFG)
    check_tokens(jnp.arange(16, dtype=jnp.int32), CFG)
    with pytest.raises(ValueError, match="token id -1 at index \\(0, 1\\)"):
        check_tokens(np.array([[0, -1, 3]]), CFG)
    with pytest.raises(ValueError, match="token id 50 at index \\(2,\\) is outside"):
        check_tokens(jnp.array([1, 2, 50]), CFG)
    with pytest.raises(ValueError, match="sequence length 17 exceeds n_ctx=16"):
        check_tokens(np.zeros((2, 17), np.int32), CFG)
    with pytest.raises(ValueError, match="integer dtype, got float32"):
        check_tokens(np.zeros((2, 3), np.float32), CFG)
    with pytest.raises(ValueError, match="scalar"):
        check_tokens(np.int32(3), CFG)
    with pytest.raises(TypeError, match="outside jit"):
        jax.jit(lambda t: check_tokens(t, CFG))(jnp.zeros((1, 3), jnp.int32))


# ---------------------------------------------------------------------------------------
# loss_fn (all calls use (3, 8) batches, like most forward tests: few compilations)
# ---------------------------------------------------------------------------------------


def test_loss_uniform_model_is_log_vocab(params: Params) -> None:
    uniform = {**params, "wte": jnp.zeros_like(params["wte"])}  # every logit is 0
    seq = _random_tokens(8, (3, 9))
    loss, _ = loss_and_grad(uniform, seq[:, :-1], seq[:, 1:], CFG, pad_id=0)
    np.testing.assert_allclose(loss, math.log(CFG.vocab_size), rtol=1e-6)


def test_loss_matches_manual_computation(params: Params) -> None:
    seq = _random_tokens(9, (3, 9))
    seq[0, 5:] = 0  # right padding with pad_id 0
    seq[1, 2:] = 0
    inputs, targets = seq[:, :-1], seq[:, 1:]
    logits = np.asarray(forward_jit(params, inputs, CFG), np.float64)
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    loss, grads = loss_and_grad(params, inputs, targets, CFG, pad_id=0)
    np.testing.assert_allclose(loss, nll[targets != 0].mean(), rtol=1e-5)
    chex.assert_tree_all_finite(grads)
    chex.assert_trees_all_equal_shapes(grads, params)
    # No real target at all: zero loss and zero gradients, not NaN.
    zeros = np.zeros((3, 8), np.int32)
    loss, grads = loss_and_grad(params, zeros, zeros, CFG, pad_id=0)
    assert float(loss) == 0.0
    assert not any(np.any(np.asarray(g)) for g in jax.tree_util.tree_leaves(grads))
    with pytest.raises(ValueError, match="targets must have shape \\(3, 8\\), got \\(3, 7\\)"):
        loss_fn(params, jnp.asarray(inputs), jnp.asarray(targets[:, :-1]), CFG, pad_id=0)


def test_loss_equals_optax_cross_entropy(params: Params) -> None:
    # The loss is written in jnp so that the model needs no optax; it must give what
    # optax's cross-entropy gave (the shipped models were trained with it).
    optax = pytest.importorskip("optax")
    seq = _random_tokens(9, (3, 9))
    seq[0, 5:] = 0
    inputs, targets = jnp.asarray(seq[:, :-1]), jnp.asarray(seq[:, 1:])

    @jax.jit
    def both(params: Params) -> tuple[jax.Array, jax.Array]:
        logits = forward(params, inputs, CFG)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        weight = (targets != 0).astype(jnp.float32)
        want = jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)
        return loss_fn(params, inputs, targets, CFG, pad_id=0), want

    got, want = both(params)
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)
    g_got = jax.grad(lambda p: both(p)[0])(params)
    g_want = jax.grad(lambda p: both(p)[1])(params)
    chex.assert_trees_all_close(g_got, g_want, rtol=1e-6, atol=1e-9)
