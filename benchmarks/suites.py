"""The benchmark suites on synthetic logits: samplers, first compiles, temperature sweep, seeds.

Each suite returns its section of the results (see ``benchmarks/report.py``); the
figures follow the timing rules of :mod:`benchmarks.timing`, on the logit families of
:mod:`benchmarks.logits`. The decode suite, on the shipped Mini-GPT, is in
:mod:`benchmarks.decode`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxsample as js
from benchmarks.logits import LOGITS, llm_like_logits
from benchmarks.machine import last_level_cache_bytes
from benchmarks.peers import (
    SPECS,
    TOP_P_HOT,
    Impl,
    Spec,
    hf_available,
    implementations,
    numpy_support,
)
from benchmarks.timing import (
    Budget,
    combine_windows,
    device_times,
    time_call,
    time_interleaved,
)
from jaxsample.samplers import entropy_sweep

# ---------------------------------------------------------------------------------------
# Samplers on [B, V]
# ---------------------------------------------------------------------------------------


#: Peers many times slower than jaxsample, timed on the slow budget.
_SLOW_IMPLS = ("numpy", "naive_jax", "hf")

#: Cache assumed on an accelerator, or on a CPU whose cache sizes are unknown: above the
#: L2 of current datacenter GPUs (50 MB on an H100) and the L3 of common server CPUs.
DEFAULT_CACHE_BYTES = 64 << 20
#: Most input buffers rotated at one shape (the smallest shapes stay in memory's reach).
MAX_BUFFERS = 16


def rotated_buffers(batch: int, vocab: int, least: int, cache_bytes: int) -> int:
    """How many input buffers of ``[batch, vocab]`` float32 logits each timed call rotates over.

    At least ``least``, and enough that the buffers together hold twice
    ``cache_bytes`` (at most :data:`MAX_BUFFERS`), so that a buffer has left the
    cache before it is read again and the floor is a read from memory. (On the
    2-core host, four buffers of ``[32, 50257]``, 25.7 MB against its 32 MB L3,
    gave the floor 0.20 ms against 0.27 ms with twelve.)
    """
    size = 4 * batch * vocab
    return max(least, min(MAX_BUFFERS, -(-2 * cache_bytes // size)))


def rotation_cache_bytes() -> int:
    """The cache a rotation must exceed: the CPU's last level on a CPU backend, when
    Linux reports it, else :data:`DEFAULT_CACHE_BYTES`."""
    cache = last_level_cache_bytes() if jax.default_backend() == "cpu" else None
    return DEFAULT_CACHE_BYTES if cache is None else cache


@dataclasses.dataclass(frozen=True)
class Case:
    """One row group of the sampler table: a sampler on one family of logits."""

    spec: Spec
    logits: str  # a key of LOGITS


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What one shape of the sampler table times: its cases, inputs and implementations."""

    batch: int
    vocab: int
    cases: list[Case]
    buffers: int  # rotated inputs per family
    inputs: dict[str, list[np.ndarray]]  # host logits by family
    impls: list[list[Impl]]  # per case


#: The cases added to :data:`SPECS` on the LLM-like logits where the peers are cheap.
WIDE_CASES: tuple[Case, ...] = (
    Case(TOP_P_HOT, "llm-like"),
    Case(SPECS[3], "gaussian"),
    Case(TOP_P_HOT, "gaussian"),
)
#: Extra top-p cases on unusual logits (:data:`LOGIT_NOTE`).
EXTRA_CASES: tuple[Case, ...] = (
    Case(SPECS[3], "heavy-tailed"),
    Case(SPECS[3], "near-tie"),
)


def sampler_cases(
    batch: int, vocab: int, *, wide_up_to: float, extra_at: Sequence[tuple[int, int]]
) -> list[Case]:
    """The cases timed at ``[batch, vocab]``, in table order.

    Every :data:`SPECS` sampler on the LLM-like logits; :data:`WIDE_CASES` when
    ``batch * vocab <= wide_up_to``; :data:`EXTRA_CASES` when the shape is in
    ``extra_at``.
    """
    cases = [Case(spec, "llm-like") for spec in SPECS]
    if batch * vocab <= wide_up_to:
        cases += WIDE_CASES
    if (batch, vocab) in extra_at:
        cases += EXTRA_CASES
    return cases


def kept_tokens(spec: Spec, rows: np.ndarray) -> float:
    """Mean number of tokens the NumPy peer keeps per row (the nucleus for top-p)."""
    return float(np.mean([len(numpy_support(r, spec)[0]) for r in rows]))


def _window_budget(budget: Budget, windows: int) -> Budget:
    """``budget`` shared among ``windows`` windows: its seconds and repetitions divided."""
    return dataclasses.replace(
        budget,
        seconds=budget.seconds / windows,
        min_reps=max(1, -(-budget.min_reps // windows)),
        max_reps=max(1, budget.max_reps // windows),
    )


def sampler_suite(
    shapes: Sequence[tuple[int, int]],
    budget: Budget,
    slow_budget: Budget,
    *,
    device_time: str | None,
    wide_up_to: float,
    extra_at: Sequence[tuple[int, int]],
    log: Callable[[str], None],
    cache_bytes: int | None = None,
    windows: int = 1,
) -> list[dict[str, Any]]:
    """Time every case and implementation on every shape; one record per figure.

    The cases at each shape are :func:`sampler_cases` (``wide_up_to`` and
    ``extra_at`` are passed on). Every record names its ``sampler``, temperature
    ``tau`` (``None`` for greedy), ``logits`` family, ``kept`` (see
    :func:`kept_tokens`, over the first 4 rows of the first buffer), ``buffers``,
    the inputs rotated (:func:`rotated_buffers` of ``budget.n_buffers`` and
    ``cache_bytes``), and ``cache_bytes`` itself (default
    :func:`rotation_cache_bytes`; 0 rotates the budget's buffers only).
    ``windows``: the whole table is timed this many times in turn, each time with
    that share of the budgets (:func:`_window_budget`; the warm-up calls in the
    first only), and each figure combines its windows (:func:`combine_windows`).
    ``device_time``: ``"all"``, one sampler name, or ``None``: which samplers' JAX
    implementations also get a device time (see :func:`device_times`, first window).
    """
    skip_hf = hf_available()
    rng = np.random.default_rng(1234)
    cache = rotation_cache_bytes() if cache_bytes is None else cache_bytes
    fast, slow = _window_budget(budget, windows), _window_budget(slow_budget, windows)
    # Inputs and implementations are made once and reused by every window.
    tables = []
    for batch, vocab in shapes:
        cases = sampler_cases(batch, vocab, wide_up_to=wide_up_to, extra_at=extra_at)
        buffers = rotated_buffers(batch, vocab, budget.n_buffers, cache)
        inputs = {
            family: [LOGITS[family](rng, batch, vocab) for _ in range(buffers)]
            for family in dict.fromkeys(c.logits for c in cases)
        }
        made = [implementations(c.spec, with_hf=skip_hf is None) for c in cases]
        tables.append(_Shape(batch, vocab, cases, buffers, inputs, made))
    timings: dict[tuple[int, int], list[dict[str, dict[str, Any]]]] = {}
    busy: dict[tuple[int, int], dict[str, float | None]] = {}
    for window in range(windows):
        for t, table in enumerate(tables):
            batch, vocab = table.batch, table.vocab
            for c, (case, impls) in enumerate(zip(table.cases, table.impls, strict=True)):
                data = table.inputs[case.logits]
                # Copied to the device before any call is timed: a copy still under way
                # would be waited for by the first call (without a warm-up call, as in
                # every window after the first, that call is timed).
                dev = [jnp.asarray(x).block_until_ready() for x in data]
                # Every implementation of the case is timed in turn (the ratios are the
                # targets): each round one call of each slow peer and a burst of calls
                # of jaxsample and the floor.
                timed = time_interleaved(
                    {i.name: (i.sample, dev if i.is_jax else data) for i in impls},
                    fast,
                    slow=[i.name for i in impls if i.name in _SLOW_IMPLS],
                    slow_budget=slow,
                    warm_up=window == 0,
                )
                timings.setdefault((t, c), []).append(timed)
                if window == 0 and device_time in ("all", case.spec.name):
                    busy[t, c] = device_times({i.name: (i.sample, dev) for i in impls if i.is_jax})
                for impl in impls:
                    log(
                        f"  [{batch:>3}, {vocab:>6}] {case.spec.name:<11}"
                        f" tau {'-' if case.spec.greedy else case.spec.tau:<4}"
                        f" {case.logits:<12} {impl.name:<10}"
                        f" {timed[impl.name]['median_ms']:10.3f} ms"
                        f"  ({timed[impl.name]['reps']} reps, window {window + 1}/{windows})"
                    )
                del dev
    records: list[dict[str, Any]] = []
    for t, table in enumerate(tables):
        for c, (case, impls) in enumerate(zip(table.cases, table.impls, strict=True)):
            spec = case.spec
            where: dict[str, Any] = {
                "batch": table.batch,
                "vocab": table.vocab,
                "sampler": spec.name,
                "tau": None if spec.greedy else spec.tau,
                "logits": case.logits,
                "kept": kept_tokens(spec, table.inputs[case.logits][0][:4]),
                "buffers": table.buffers,
                "cache_bytes": cache,
            }
            for impl in impls:
                rec = {**where, "impl": impl.name}
                rec |= combine_windows([w[impl.name] for w in timings[t, c]])
                if impl.name in busy.get((t, c), {}):
                    rec["device_ms"] = busy[t, c][impl.name]
                records.append(rec)
            if skip_hf is not None:
                records.append({**where, "impl": "hf", "skipped": skip_hf})
    return records


# ---------------------------------------------------------------------------------------
# First compiles
# ---------------------------------------------------------------------------------------


def _clear_caches() -> None:
    """:func:`jax.clear_caches` (untyped in jax's stubs)."""
    jax.clear_caches()  # type: ignore[no-untyped-call]


#: The jaxsample samplers whose first compile is timed (by :data:`SPECS` name).
COMPILED = ("temperature", "top-k", "top-p", "chain")


def compile_once(batch: int, vocab: int, names: Sequence[str]) -> dict[str, float]:
    """Seconds of the first compile of each function of ``names``, in this process, in order.

    ``"categorical"`` is ``jax.random.categorical(key, x)``; another name is
    ``jaxsample.sample(key, x, strategy)`` for the :data:`SPECS` strategy of that
    name, the strategy a constant of the function. Before the first, a small
    unrelated program is compiled (the backend's and the compiler's start-up are no
    function's cost); each is then timed as ``jax.jit(f).lower(key, x).compile()``
    for float32 ``x`` of shape ``[batch, vocab]``, after :func:`jax.clear_caches`.
    """
    jax.jit(lambda a: jnp.sin(a) * 2.0).lower(jnp.zeros(8, jnp.float32)).compile()
    x = jnp.zeros((batch, vocab), jnp.float32)  # only its shape and dtype are used
    key = jax.random.key(0)
    specs = {s.name: s for s in SPECS}

    def build(name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
        if name == "categorical":

            def f(k: jax.Array, z: jax.Array) -> jax.Array:
                return jax.random.categorical(k, z, axis=-1)

            return f
        strategy = specs[name].strategy()

        def g(k: jax.Array, z: jax.Array) -> jax.Array:
            return js.sample(k, z, strategy)

        return g

    out: dict[str, float] = {}
    for name in names:
        fn = build(name)
        _clear_caches()
        t0 = time.perf_counter()
        jax.jit(fn).lower(key, x).compile()
        out[name] = time.perf_counter() - t0
    return out


def _probe_env() -> dict[str, str]:
    """The environment of a compile probe: this one, with the project importable."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in [root, env.get("PYTHONPATH", "")] if p)
    return env


def compile_suite(
    batch: int,
    vocab: int,
    rounds: int,
    log: Callable[[str], None],
    samplers: Sequence[str] = COMPILED,
) -> dict[str, Any]:
    """Wall time of the first compile of jaxsample's samplers and of ``jax.random.categorical``.

    A first compile is what a program pays the first time it calls a sampler at a
    new shape, so each round runs in a fresh Python process (``python -m
    benchmarks.compile_probe``, :func:`compile_once`): it compiles ``categorical``
    and every sampler once, the order rotated from round to round, so that each
    function comes first in some round and later in others. (In a process that
    has compiled many programs, as the benchmark's own has by now, a compile takes
    longer, and longer for a larger program: such figures are recompiles, not
    first compiles.) A figure is the median over ``rounds``; each sampler's ratio
    is its median over categorical's. ``samplers``: which of :data:`COMPILED` to
    time.
    """
    names = ["categorical", *samplers]
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        command = [sys.executable, "-m", "benchmarks.compile_probe", str(batch), str(vocab)]
        done = subprocess.run(
            [*command, *order], capture_output=True, text=True, check=True, env=_probe_env()
        )
        got = json.loads(done.stdout.strip().splitlines()[-1])
        for name in order:
            times[name].append(got[name])
            log(f"  compile [{batch}, {vocab}] {name:<12} {got[name]:8.2f} s (round {r + 1})")
    median = {n: statistics.median(ts) for n, ts in times.items()}
    specs = {s.name: s for s in SPECS}
    return {
        "batch": batch,
        "vocab": vocab,
        "dtype": "float32",
        "rounds": rounds,
        "method": "jax.jit(f).lower(key, x).compile() wall time; each round a fresh Python "
        "process that compiles a small unrelated program, then every function once (the "
        "order rotated per round), in-memory caches cleared before each (no persistent "
        "compilation cache)",
        "categorical": {"compile_s": median["categorical"], "all_s": times["categorical"]},
        "samplers": [
            {
                "sampler": name,
                "strategy": specs[name].code(),
                "compile_s": median[name],
                "all_s": times[name],
                "x_categorical": median[name] / median["categorical"],
            }
            for name in samplers
        ],
    }


# ---------------------------------------------------------------------------------------
# Temperature sweep and many seeds
# ---------------------------------------------------------------------------------------


def sweep_suite(n_temps: int, vocab: int, budget: Budget) -> dict[str, Any]:
    """Entropy at ``n_temps`` temperatures: one vmapped jitted call vs a NumPy loop.

    Three ways to write the sweep are timed: jaxsample's
    ``js.entropy_sweep`` (two sums folded over the row, no ``[n_temps, V]`` array);
    the plain composition ``vmap(entropy(probs(...)))``, which XLA:CPU runs with
    ``[n_temps, V]`` intermediates; and that composition vmapped over groups of 16
    temperatures (``lax.map``), whose intermediates stay in cache.
    """
    rng = np.random.default_rng(7)
    host = [llm_like_logits(rng, 1, vocab)[0] for _ in range(budget.n_buffers)]
    dev = [jnp.asarray(z) for z in host]
    taus_np = np.geomspace(0.05, 5.0, n_temps).astype(np.float32)
    taus = jnp.asarray(taus_np)

    def jax_sweep(z: jax.Array) -> jax.Array:
        out: jax.Array = entropy_sweep(z, taus)
        return out

    def one(z: jax.Array, t: jax.Array) -> jax.Array:
        return js.entropy(js.probs(z, js.Temperature(t)))

    @jax.jit
    def jax_sweep_plain(z: jax.Array) -> jax.Array:
        return jax.vmap(lambda t: one(z, t))(taus)

    @jax.jit
    def jax_sweep_grouped(z: jax.Array) -> jax.Array:
        out: jax.Array = lax.map(lambda t: one(z, t), taus, batch_size=min(16, n_temps))
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
    fns: dict[str, Callable[[jax.Array], jax.Array]] = {
        "fused": jax_sweep,
        "plain": jax_sweep_plain,
        "grouped": jax_sweep_grouped,
    }
    agree = {
        name: float(np.max(np.abs(np.asarray(f(dev[0]), np.float64) - ref)))
        for name, f in fns.items()
    }
    fast = time_call(jax_sweep, dev, budget)
    plain = time_call(jax_sweep_plain, dev, budget)
    grouped = time_call(jax_sweep_grouped, dev, budget)
    loop = time_call(numpy_sweep, host, budget)
    return {
        "n_temperatures": n_temps,
        "vocab": vocab,
        "jaxsample_vmap": fast,
        "jaxsample_plain_vmap": plain,
        "jaxsample_grouped_16": grouped,
        "numpy_loop": loop,
        "speedup": loop["median_ms"] / fast["median_ms"],
        "speedup_plain": loop["median_ms"] / plain["median_ms"],
        "speedup_grouped": loop["median_ms"] / grouped["median_ms"],
        "max_abs_entropy_diff_bits": max(agree.values()),
        "max_abs_entropy_diff_bits_by_method": agree,
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
