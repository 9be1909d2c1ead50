"""The benchmark suites: samplers, temperature sweep, many seeds, decode.

Timing rules: every figure is the median of repeated calls after a warm-up call,
each call rotating through several different random inputs (never zeros), and
includes Python dispatch and the wait for the result (``block_until_ready``). The
number of repetitions adapts to a time budget per measurement, so slow peers get
fewer (at least ``min_reps``); the count used is stored with every figure. On an
accelerator the JAX implementations also report device time: the call repeated
inside one jitted ``lax.fori_loop`` over the rotated inputs, divided by the count.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxsample as js
from benchmarks.peers import SPECS, Impl, Spec, hf_available, implementations

LOGIT_NOTE = (
    "LLM-like logits: row r has z = -1.2 * log(rank) + 0.3 * N(0, 1) over a random "
    "permutation of the ranks 1..V (a Zipf-like head, about 60 tokens in the top-p 0.9 "
    "nucleus at tau 0.8). The 'top-p (flat)' row uses 3 * N(0, 1) logits instead, whose "
    "nucleus (hundreds of tokens at V = 50257) exceeds the 256-token candidate window."
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to measure: a target seconds per figure and bounds on repetitions."""

    seconds: float
    min_reps: int
    max_reps: int
    n_buffers: int


def _block(out: Any) -> Any:
    if isinstance(out, jax.Array):
        return out.block_until_ready()
    return out


def time_call(fn: Callable[[Any], Any], inputs: Sequence[Any], budget: Budget) -> dict[str, Any]:
    """Median latency (ms) of ``fn`` over rotated ``inputs`` after one warm-up call."""
    t0 = time.perf_counter()
    _block(fn(inputs[0]))  # warm-up (compiles jitted functions)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    _block(fn(inputs[1 % len(inputs)]))
    second = time.perf_counter() - t0
    reps = int(min(budget.max_reps, max(budget.min_reps, budget.seconds / max(second, 1e-6))))
    times = [second]
    for i in range(reps - 1):
        x = inputs[(i + 2) % len(inputs)]
        t0 = time.perf_counter()
        _block(fn(x))
        times.append(time.perf_counter() - t0)
    return {
        "median_ms": 1e3 * statistics.median(times),
        "min_ms": 1e3 * min(times),
        "reps": len(times),
        "warmup_s": first,
    }


def time_in_loop(
    fn: Callable[[jax.Array], jax.Array], stacked: jax.Array, repeats: int
) -> float:
    """Milliseconds per call of ``fn`` repeated inside one jitted ``lax.fori_loop``."""

    @jax.jit
    def loop(xs: jax.Array) -> jax.Array:
        def body(i: jax.Array, acc: jax.Array) -> jax.Array:
            x = lax.dynamic_index_in_dim(xs, i % xs.shape[0], keepdims=False)
            return acc + jnp.sum(fn(x)).astype(jnp.float32)

        total: jax.Array = lax.fori_loop(0, repeats, body, jnp.float32(0.0))
        return total

    loop(stacked).block_until_ready()
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        loop(stacked).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 1e3 * best / repeats


def llm_like_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Zipf-like float32 logits, a random token order per row (see ``LOGIT_NOTE``)."""
    out = np.empty((batch, vocab), np.float32)
    profile = -1.2 * np.log(np.arange(1, vocab + 1, dtype=np.float64))
    for r in range(batch):
        noise = 0.3 * rng.standard_normal(vocab)
        out[r, rng.permutation(vocab)] = (profile + noise).astype(np.float32)
    return out


def flat_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Gaussian float32 logits with standard deviation 3 (a wide nucleus)."""
    return (3.0 * rng.standard_normal((batch, vocab))).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Samplers on [B, V]
# ---------------------------------------------------------------------------------------


def sampler_suite(
    shapes: Sequence[tuple[int, int]],
    budget: Budget,
    slow_budget: Budget,
    *,
    device_time: str | None,
    with_flat: bool,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Time every sampler and implementation on every shape; one record per figure.

    ``device_time``: ``"all"``, one sampler name, or ``None``: which samplers' JAX
    implementations also get a device time (see :func:`time_in_loop`). ``with_flat``
    adds the top-p case on flat logits (a nucleus wider than the candidate window).
    """
    skip_hf = hf_available()
    rng = np.random.default_rng(1234)
    flat_spec = dataclasses.replace(SPECS[3], name="top-p (flat)")
    records: list[dict[str, Any]] = []
    for batch, vocab in shapes:
        host = [llm_like_logits(rng, batch, vocab) for _ in range(budget.n_buffers)]
        cases: list[tuple[Spec, list[np.ndarray]]] = [(s, host) for s in SPECS]
        if with_flat:
            flat = [flat_logits(rng, batch, vocab) for _ in range(budget.n_buffers)]
            cases.append((flat_spec, flat))
        for spec, data in cases:
            dev = [jnp.asarray(x) for x in data]
            with_device_time = device_time in ("all", spec.name)
            stacked = jnp.stack(dev) if with_device_time else None
            for impl in implementations(spec, with_hf=skip_hf is None):
                slow = impl.name in ("numpy", "naive_jax", "hf")
                b = slow_budget if slow else budget
                inputs = dev if impl.is_jax else data
                rec: dict[str, Any] = {
                    "batch": batch,
                    "vocab": vocab,
                    "sampler": spec.name,
                    "impl": impl.name,
                }
                rec.update(time_call(impl.sample, inputs, b))
                if with_device_time and impl.is_jax and stacked is not None:
                    fn = _jax_body(impl, spec)
                    rec["device_ms"] = time_in_loop(fn, stacked, repeats=20)
                records.append(rec)
                log(
                    f"  [{batch:>3}, {vocab:>6}] {spec.name:<13} {impl.name:<10}"
                    f" {rec['median_ms']:10.3f} ms  ({rec['reps']} reps)"
                )
            if skip_hf is not None:
                records.append(
                    {"batch": batch, "vocab": vocab, "sampler": spec.name, "impl": "hf",
                     "skipped": skip_hf}
                )
        del host, cases
    return records


def _jax_body(impl: Impl, spec: Spec) -> Callable[[jax.Array], jax.Array]:
    """The traceable computation of a JAX implementation, for :func:`device_time`."""
    if impl.name == "jaxsample":
        strategy = spec.strategy()
        key = jax.random.key(0)
        return lambda x: js.sample(key, x, strategy)
    return lambda x: jnp.asarray(impl.sample(x))


# ---------------------------------------------------------------------------------------
# Temperature sweep and many seeds
# ---------------------------------------------------------------------------------------


def sweep_suite(n_temps: int, vocab: int, budget: Budget) -> dict[str, Any]:
    """Entropy at ``n_temps`` temperatures: one vmapped jitted call vs a NumPy loop."""
    rng = np.random.default_rng(7)
    host = [llm_like_logits(rng, 1, vocab)[0] for _ in range(budget.n_buffers)]
    dev = [jnp.asarray(z) for z in host]
    taus_np = np.geomspace(0.05, 5.0, n_temps).astype(np.float32)
    taus = jnp.asarray(taus_np)

    @jax.jit
    def jax_sweep(z: jax.Array) -> jax.Array:
        return jax.vmap(lambda t: js.entropy(js.probs(z, js.Temperature(t))))(taus)

    @jax.jit
    def jax_sweep_grouped(z: jax.Array) -> jax.Array:
        # The same computation vmapped over groups of 16 temperatures, the groups one
        # after the other: each group's [16, V] intermediates stay in cache.
        def one(t: jax.Array) -> jax.Array:
            return js.entropy(js.probs(z, js.Temperature(t)))

        out: jax.Array = lax.map(one, taus, batch_size=min(16, n_temps))
        return out

    def numpy_sweep(z: np.ndarray) -> np.ndarray:
        out = np.empty(n_temps)
        for i, t in enumerate(taus_np):
            s = z / t
            q = np.exp(s - s.max())
            q /= q.sum()
            nz = q[q > 0]
            out[i] = -np.sum(nz * np.log2(nz))
        return out

    ref = numpy_sweep(host[0])
    agree = max(
        float(np.max(np.abs(np.asarray(f(dev[0])) - ref))) for f in (jax_sweep, jax_sweep_grouped)
    )
    fast = time_call(jax_sweep, dev, budget)
    grouped = time_call(jax_sweep_grouped, dev, budget)
    loop = time_call(numpy_sweep, host, budget)
    return {
        "n_temperatures": n_temps,
        "vocab": vocab,
        "jaxsample_vmap": fast,
        "jaxsample_grouped_16": grouped,
        "numpy_loop": loop,
        "speedup": loop["median_ms"] / fast["median_ms"],
        "speedup_grouped": loop["median_ms"] / grouped["median_ms"],
        "max_abs_entropy_diff_bits": agree,
    }


def seeds_suite(n_seeds: int, vocab: int, budget: Budget) -> dict[str, Any]:
    """``n_seeds`` draws from one distribution: one vmapped call vs ``rng.choice`` calls."""
    rng = np.random.default_rng(11)
    host = [llm_like_logits(rng, 1, vocab)[0] for _ in range(budget.n_buffers)]
    dev = [jnp.asarray(z) for z in host]
    strategy = js.Temperature(0.8)
    keys = jax.vmap(jax.random.key)(jnp.arange(n_seeds))

    @jax.jit
    def jax_seeds(z: jax.Array) -> jax.Array:
        return jax.vmap(lambda k: js.sample(k, z, strategy))(keys)

    def numpy_seeds(z: np.ndarray) -> np.ndarray:
        s = z / np.float32(0.8)
        q = np.exp(s - s.max())
        q /= q.sum()
        return np.array([np.random.default_rng(i).choice(vocab, p=q) for i in range(n_seeds)])

    fast = time_call(jax_seeds, dev, budget)
    loop = time_call(numpy_seeds, host, budget)
    return {
        "n_seeds": n_seeds,
        "vocab": vocab,
        "strategy": "Temperature(0.8)",
        "jaxsample_vmap": fast,
        "numpy_loop": loop,
        "speedup": loop["median_ms"] / fast["median_ms"],
    }


# ---------------------------------------------------------------------------------------
# Decode on the shipped Mini-GPT
# ---------------------------------------------------------------------------------------


def decode_suite(
    n_seeds: int,
    lengths: Sequence[int],
    reps: int,
    log: Callable[[str], None],
    methods: Sequence[str] = ("scan_kv_cache", "scan_recompute", "python_loop_jitted_step"),
) -> dict[str, Any]:
    """Tokens per second of decode loops on the shipped model, per length.

    ``methods``: ``scan_kv_cache`` and ``scan_recompute`` (the whole generation in one
    jitted ``lax.scan``, with a key/value cache or recomputing every position) and
    ``python_loop_jitted_step`` (one jitted sample-and-forward step per token).
    """
    from jaxsample.decoding import generate_ids
    from jaxsample.model.gpt import forward_cached, init_cache
    from jaxsample.training import load_pretrained

    model = load_pretrained()
    params, config, tok = model.params, model.config, model.tokenizer
    strategy = js.Temperature(0.8)
    prompt = [[tok.bos_id]] * n_seeds
    key = jax.random.key(0)
    max_len = config.n_ctx - 1
    lengths = [n for n in lengths if n <= max_len]

    def scan(n: int, cache: bool) -> Callable[[int], jax.Array]:
        def go(seed: int) -> jax.Array:
            g = generate_ids(
                params, config, prompt, jax.random.fold_in(key, seed), strategy,
                max_new_tokens=n, eos_id=tok.eos_id, pad_id=tok.pad_id, cache=cache,
            )
            return g.tokens

        return go

    @jax.jit
    def prefill(params: Any, bos: jax.Array) -> tuple[jax.Array, Any]:
        cache = init_cache(config, n_seeds, config.n_ctx)
        valid = jnp.ones((n_seeds, config.n_ctx), bool)
        logits, cache = forward_cached(
            params, bos, cache, config, slot=0,
            positions=jnp.zeros((n_seeds, 1), jnp.int32), key_valid=valid,
        )
        return logits[:, 0], cache

    @jax.jit
    def step(
        params: Any, cache: Any, logits: jax.Array, keys: jax.Array, t: jax.Array
    ) -> tuple[jax.Array, jax.Array, Any]:
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
        token = js.sample(step_keys, logits, strategy)
        valid = jnp.ones((n_seeds, config.n_ctx), bool)
        new_logits, cache = forward_cached(
            params, token[:, None], cache, config, slot=t + 1,
            positions=jnp.full((n_seeds, 1), t + 1, jnp.int32), key_valid=valid,
        )
        return token, new_logits[:, 0], cache

    def python_loop(n: int) -> Callable[[int], jax.Array]:
        def go(seed: int) -> jax.Array:
            keys = jax.random.split(jax.random.fold_in(key, seed), n_seeds)
            bos = jnp.full((n_seeds, 1), tok.bos_id, jnp.int32)
            logits, cache = prefill(params, bos)
            out = []
            for t in range(n):
                token, logits, cache = step(params, cache, logits, keys, jnp.int32(t))
                out.append(token)
            return jnp.stack(out, axis=1)

        return go

    budget = Budget(seconds=0.0, min_reps=reps, max_reps=reps, n_buffers=reps)
    seeds = list(range(reps + 2))
    results: list[dict[str, Any]] = []
    for n in lengths:
        runners = {
            "scan_kv_cache": lambda n=n: scan(n, True),
            "scan_recompute": lambda n=n: scan(n, False),
            "python_loop_jitted_step": lambda n=n: python_loop(n),
        }
        for name in methods:
            fn = runners[name]()
            t = time_call(fn, seeds, budget)
            t["tokens_per_s"] = n_seeds * n / (t["median_ms"] / 1e3)
            results.append({"new_tokens": n, "method": name, **t})
            log(f"  decode N={n:>3} {name:<24} {t['tokens_per_s']:12.0f} tok/s")
    return {
        "model": f"shipped Mini-GPT {config}",
        "n_ctx": config.n_ctx,
        "note": (
            f"n_ctx is {config.n_ctx}: a 1-token <bos> prompt leaves room for at most "
            f"{max_len} new tokens, so the lengths are {list(lengths)}"
        ),
        "n_seeds": n_seeds,
        "strategy": "Temperature(0.8)",
        "results": results,
    }
