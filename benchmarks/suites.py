"""The benchmark suites: samplers, temperature sweep, many seeds, decode.

Timing rules: every figure is the median of repeated calls after a warm-up call,
each call rotating through several different random inputs (never zeros), and
includes Python dispatch and the wait for the result (``block_until_ready``). The
number of repetitions adapts to a time budget per measurement, so slow peers get
fewer (at least ``min_reps``); the count used is stored with every figure. On an
accelerator the JAX implementations also report device time: the time the device
was busy per call, read from a profiler trace (:func:`device_times`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxsample as js
from benchmarks.peers import (
    SPECS,
    TOP_P_HOT,
    Spec,
    hf_available,
    implementations,
    numpy_support,
)
from jaxsample.samplers import entropy_sweep

LOGIT_NOTE = (
    "Logit families (float32, a fresh draw per buffer; nucleus sizes for top-p 0.9 at "
    "V = 50257): 'llm-like', row r has z = -1.2 * log(rank) + 0.3 * N(0, 1) over a random "
    "permutation of the ranks 1..V (a Zipf-like head: about 50 tokens in the nucleus at "
    "tau 0.8, about 30,600 at tau 1.5); 'gaussian', z = 3 * N(0, 1) (about 520 at tau "
    "0.8, 12,000 at tau 1.5); 'heavy-tailed', a standard Cauchy clipped to [-50, 50] "
    "(about 300: the tokens at the cap, exact ties); 'near-tie', groups of 64 tokens at "
    "random positions sharing a 2 * N(0, 1) logit up to a jitter below 1e-6 (about "
    "5,000). Every sampler runs on the llm-like logits at every shape; top-p at tau 1.5 "
    "on them and top-p at tau 0.8 and 1.5 on the gaussian logits join where the peers "
    "are cheap enough (B * V <= 32 * 128256 on a CPU, every shape on an accelerator); "
    "top-p at tau 0.8 on the heavy-tailed and near-tie logits at [32, 50257] (and the "
    "GPU target shape). 'kept': the mean number of tokens the NumPy peer keeps per row, "
    "over the first 4 rows of the first buffer."
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
    stats = time_interleaved({"fn": (fn, inputs)}, budget)["fn"]
    del stats["interleaved_with"]
    return stats


def device_times(
    fns: dict[str, tuple[Callable[[jax.Array], Any], Sequence[jax.Array]]], calls: int = 10
) -> dict[str, float | None]:
    """Device time (ms per call) of jitted functions, from one profiler trace.

    Each function runs ``calls`` times over its rotated inputs (after a warm-up
    call) inside a host annotation named after it, waiting for each result, so
    that its kernels run inside that window. Its device time is the time the
    accelerator was busy (kernels and copies, overlaps counted once) inside the
    window, divided by ``calls``: no dispatch, no host round trips. ``None`` for
    every function where the trace has no device timeline (a CPU backend, or a
    profiler that cannot read the device).
    """
    for fn, inputs in fns.values():
        _block(fn(inputs[0]))
    with tempfile.TemporaryDirectory() as logdir:
        with jax.profiler.trace(logdir, create_perfetto_trace=True):
            for label, (fn, inputs) in fns.items():
                with jax.profiler.TraceAnnotation(label):
                    for i in range(calls):
                        _block(fn(inputs[i % len(inputs)]))
        files = sorted(Path(logdir).rglob("*trace.json.gz"))
        events: list[dict[str, Any]] = []
        if files:
            with gzip.open(files[0]) as f:
                events = json.loads(f.read())["traceEvents"]
    names = {
        e["pid"]: e["args"]["name"]
        for e in events
        if e.get("ph") == "M" and e.get("name") == "process_name"
    }
    spans = [e for e in events if e.get("ph") == "X" and "dur" in e]
    device = sorted(
        (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
        for e in spans
        if "/device:" in names.get(e.get("pid"), "")
    )
    out: dict[str, float | None] = {}
    for label in fns:
        windows = [
            (float(e["ts"]), float(e["ts"]) + float(e["dur"]))
            for e in spans
            if e.get("name") == label and "/host:" in names.get(e.get("pid"), "")
        ]
        if not device or not windows:
            out[label] = None
            continue
        lo, hi = windows[0]
        busy, end = 0.0, -math.inf
        for start, stop in device:
            if not lo <= start <= hi:
                continue
            start = max(start, end)
            if stop > start:
                busy += stop - start
            end = max(end, stop)
        out[label] = busy / 1e3 / calls
    return out


def llm_like_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Zipf-like float32 logits, a random token order per row (see ``LOGIT_NOTE``)."""
    out = np.empty((batch, vocab), np.float32)
    profile = -1.2 * np.log(np.arange(1, vocab + 1, dtype=np.float64))
    for r in range(batch):
        noise = 0.3 * rng.standard_normal(vocab)
        out[r, rng.permutation(vocab)] = (profile + noise).astype(np.float32)
    return out


def gaussian_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Gaussian float32 logits with standard deviation 3 (a wide nucleus)."""
    return (3.0 * rng.standard_normal((batch, vocab))).astype(np.float32)


def heavy_tailed_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Standard Cauchy float32 logits clipped to [-50, 50] (a few huge outliers)."""
    return np.clip(rng.standard_cauchy((batch, vocab)), -50.0, 50.0).astype(np.float32)


def near_tie_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Groups of 64 tokens sharing a ``2 * N(0, 1)`` logit up to a jitter below 1e-6.

    The groups lie at random positions (a random permutation per row); the jitter
    (uniform in [0, 1e-6)) makes almost every pair within a group differ in float32
    by a few units in the last place, so rankings and nucleus cuts fall inside groups
    of nearly equal tokens.
    """
    out = np.empty((batch, vocab), np.float32)
    for r in range(batch):
        levels = np.repeat(2.0 * rng.standard_normal(vocab // 64 + 1), 64)[:vocab]
        row = levels + rng.uniform(0.0, 1e-6, vocab)
        out[r, rng.permutation(vocab)] = row.astype(np.float32)
    return out


#: The logit families of the sampler table, by the name its records carry.
LOGITS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "llm-like": llm_like_logits,
    "gaussian": gaussian_logits,
    "heavy-tailed": heavy_tailed_logits,
    "near-tie": near_tie_logits,
}


# ---------------------------------------------------------------------------------------
# Samplers on [B, V]
# ---------------------------------------------------------------------------------------


#: Peers many times slower than jaxsample, timed on the slow budget.
_SLOW_IMPLS = ("numpy", "naive_jax", "hf")


def time_interleaved(
    fns: dict[str, tuple[Callable[[Any], Any], Sequence[Any]]],
    budget: Budget,
    slow: Sequence[str] = (),
    slow_budget: Budget | None = None,
) -> dict[str, dict[str, Any]]:
    """:func:`time_call` for functions whose times are compared, all measured in turn.

    After one warm-up call each, every round calls each function on the next of
    its rotated inputs (the order reversed every other round): the ``slow`` ones
    once, the others a burst of calls. Slow drifts in the machine's speed (other
    tenants of a shared host) then reach every function alike and leave their
    ratios alone. Rounds follow ``slow_budget`` per slow function (``budget``
    when none is slow); bursts share ``budget`` among the rounds. Returns name ->
    the :func:`time_call` fields.
    """
    warm: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in fns}

    def call(name: str, i: int) -> float:
        fn, inputs = fns[name]
        t0 = time.perf_counter()
        _block(fn(inputs[i % len(inputs)]))
        return time.perf_counter() - t0

    for name in fns:
        warm[name] = call(name, 0)
    for name in fns:  # one timed call each: the length of a round
        times[name].append(call(name, 1))
    order = list(fns)
    fast_round = sum(times[n][0] for n in order if n not in slow)
    slow_round = sum(times[n][0] for n in order if n in slow)
    if slow:
        sb = budget if slow_budget is None else slow_budget
        per_slow = sb.seconds * len(slow) / max(slow_round, 1e-6)
        rounds = int(min(sb.max_reps, max(sb.min_reps, per_slow)))
        share = int(budget.seconds / max(rounds * fast_round, 1e-6))
        burst = max(min(budget.max_reps // rounds, share), -(-budget.min_reps // rounds), 1)
    else:
        rounds = int(
            min(budget.max_reps, max(budget.min_reps, budget.seconds / max(fast_round, 1e-6)))
        )
        burst = 1
    for r in range(1, rounds):
        for name in order if r % 2 else order[::-1]:
            for b in range(1 if name in slow else burst):
                times[name].append(call(name, 1 + r * burst + b))
    return {
        name: {
            "median_ms": 1e3 * statistics.median(ts),
            "min_ms": 1e3 * min(ts),
            "reps": len(ts),
            "warmup_s": warm[name],
            "interleaved_with": [other for other in order if other != name],
        }
        for name, ts in times.items()
    }


@dataclasses.dataclass(frozen=True)
class Case:
    """One row group of the sampler table: a sampler on one family of logits."""

    spec: Spec
    logits: str  # a key of LOGITS


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


def sampler_suite(
    shapes: Sequence[tuple[int, int]],
    budget: Budget,
    slow_budget: Budget,
    *,
    device_time: str | None,
    wide_up_to: float,
    extra_at: Sequence[tuple[int, int]],
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Time every case and implementation on every shape; one record per figure.

    The cases at each shape are :func:`sampler_cases` (``wide_up_to`` and
    ``extra_at`` are passed on). Every record names its ``sampler``, temperature
    ``tau`` (``None`` for greedy), ``logits`` family, and ``kept`` (see
    :func:`kept_tokens`, over the first 4 rows of the first buffer).
    ``device_time``: ``"all"``, one sampler name, or ``None``: which samplers' JAX
    implementations also get a device time (see :func:`device_times`).
    """
    skip_hf = hf_available()
    rng = np.random.default_rng(1234)
    records: list[dict[str, Any]] = []
    for batch, vocab in shapes:
        cases = sampler_cases(batch, vocab, wide_up_to=wide_up_to, extra_at=extra_at)
        host_by_family = {
            family: [LOGITS[family](rng, batch, vocab) for _ in range(budget.n_buffers)]
            for family in dict.fromkeys(c.logits for c in cases)
        }
        for case in cases:
            spec, data = case.spec, host_by_family[case.logits]
            dev = [jnp.asarray(x) for x in data]
            with_device_time = device_time in ("all", spec.name)
            profiled: dict[str, tuple[Callable[[jax.Array], Any], Sequence[jax.Array]]] = {}
            impls = implementations(spec, with_hf=skip_hf is None)
            # Every implementation of the case is timed in turn (the ratios are the
            # targets): each round one call of each slow peer and a burst of calls
            # of jaxsample and the floor.
            timed = time_interleaved(
                {i.name: (i.sample, dev if i.is_jax else data) for i in impls},
                budget,
                slow=[i.name for i in impls if i.name in _SLOW_IMPLS],
                slow_budget=slow_budget,
            )
            where: dict[str, Any] = {
                "batch": batch,
                "vocab": vocab,
                "sampler": spec.name,
                "tau": None if spec.greedy else spec.tau,
                "logits": case.logits,
                "kept": kept_tokens(spec, data[0][:4]),
            }
            case_recs = []
            for impl in impls:
                rec = {**where, "impl": impl.name, **timed[impl.name]}
                if with_device_time and impl.is_jax:
                    profiled[impl.name] = (impl.sample, dev)
                case_recs.append(rec)
                log(
                    f"  [{batch:>3}, {vocab:>6}] {spec.name:<11} tau {where['tau'] or '-':<4}"
                    f" {case.logits:<12} {impl.name:<10} {rec['median_ms']:10.3f} ms"
                    f"  ({rec['reps']} reps)"
                )
            if profiled:
                busy = device_times(profiled)
                for rec in case_recs:
                    if rec["impl"] in busy:
                        rec["device_ms"] = busy[rec["impl"]]
            if skip_hf is not None:
                case_recs.append({**where, "impl": "hf", "skipped": skip_hf})
            records += case_recs
            del dev
        del host_by_family
    return records


# ---------------------------------------------------------------------------------------
# First compiles
# ---------------------------------------------------------------------------------------


def _clear_caches() -> None:
    """:func:`jax.clear_caches` (untyped in jax's stubs)."""
    jax.clear_caches()  # type: ignore[no-untyped-call]


#: The jaxsample samplers whose first compile is timed (by :data:`SPECS` name).
COMPILED = ("temperature", "top-k", "top-p", "chain")


def compile_suite(
    batch: int,
    vocab: int,
    rounds: int,
    log: Callable[[str], None],
    samplers: Sequence[str] = COMPILED,
) -> dict[str, Any]:
    """Wall time of the first compile of jaxsample's samplers and of ``jax.random.categorical``.

    Each measurement builds a fresh function ``f(key, x)`` (``jaxsample.sample``
    with the strategy as a constant, or ``jax.random.categorical(key, x)``), clears
    JAX's in-memory caches (:func:`jax.clear_caches`) and times
    ``jax.jit(f).lower(key, x).compile()`` for float32 ``x`` of shape ``[batch,
    vocab]``: tracing, lowering and the XLA compile, as on the first call. Each round
    measures every function once, categorical first; a figure is the median over
    ``rounds`` and each sampler's ratio is its median over categorical's.
    ``samplers``: which of :data:`COMPILED` to time.
    """
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

    names = ["categorical", *samplers]
    times: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            fn = build(name)
            _clear_caches()
            t0 = time.perf_counter()
            jax.jit(fn).lower(key, x).compile()
            times[name].append(time.perf_counter() - t0)
            log(f"  compile [{batch}, {vocab}] {name:<12} {times[name][-1]:8.2f} s")
    _clear_caches()
    median = {n: statistics.median(ts) for n, ts in times.items()}
    return {
        "batch": batch,
        "vocab": vocab,
        "dtype": "float32",
        "rounds": rounds,
        "method": "jax.jit(f).lower(key, x).compile() wall time, a fresh f and cleared "
        "in-memory caches each time (no persistent compilation cache)",
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

    Three ways to write the sweep are timed: the temperature-sweep lab's
    ``entropy_sweep`` (entropy from two fused sums, no ``[n_temps, V]`` array);
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


# ---------------------------------------------------------------------------------------
# Decode on the shipped Mini-GPT
# ---------------------------------------------------------------------------------------

DECODE_METHODS: tuple[str, ...] = (
    "scan_kv_cache",
    "scan_recompute",
    "python_loop_cached_step",
    "python_loop_recompute",
)
"""The decode loops :func:`decode_suite` can time, in report order."""


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _Forbid(js.Strategy):
    """Give one token id log-weight ``-inf`` (probability 0), leave the rest unchanged.

    Chained before ``Temperature``, it makes ``<eos>`` impossible to draw (a token of
    probability 0 is never drawn, see :func:`jaxsample.sample`), so that every row of
    every decode method really produces the requested number of tokens.
    """

    token: Any

    def log_weights(self, z: jax.Array) -> jax.Array:
        """Return ``z`` with the column ``token`` set to ``-inf``."""
        iota = lax.broadcasted_iota(jnp.int32, z.shape, z.ndim - 1)
        return jnp.where(iota == self.token, -jnp.inf, z)


def timing_model(
    params: js.model.Params, config: js.model.GPTConfig, n_ctx: int
) -> tuple[js.model.Params, js.model.GPTConfig]:
    """The shipped weights with the learned position table tiled to ``n_ctx`` rows.

    Position ``i`` gets the learned row ``i mod config.n_ctx``; every other weight is
    unchanged. The cost of a decode step depends only on the shapes, so the timing is
    that of the same architecture and weights, but tokens at positions past the
    shipped context are not meaningful text. With ``n_ctx <= config.n_ctx`` the model
    is returned unchanged.

    Args:
        params: Parameters of the shipped model (``jaxsample.model`` layout).
        config: Its :class:`~jaxsample.model.GPTConfig`.
        n_ctx: Context length needed.

    Returns:
        ``(params, config)`` with ``config.n_ctx == max(n_ctx, shipped n_ctx)``.
    """
    if n_ctx <= config.n_ctx:
        return params, config
    tiles = -(-n_ctx // config.n_ctx)
    wpe = jnp.tile(params["wpe"], (tiles, 1))[:n_ctx]
    return {**params, "wpe": wpe}, dataclasses.replace(config, n_ctx=n_ctx)


def _growth_exponent(points: Sequence[tuple[int, float]]) -> float | None:
    """Least-squares slope of log(time per call) against log(new tokens)."""
    if len(points) < 2:
        return None
    x = np.log([float(n) for n, _ in points])
    y = np.log([ms for _, ms in points])
    return float(np.polyfit(x, y, 1)[0])


def decode_suite(
    n_seeds: int,
    lengths: Sequence[int],
    budget: Budget,
    log: Callable[[str], None],
    methods: Sequence[str] = DECODE_METHODS,
    max_call_s: float | None = None,
    always_up_to: int = 0,
) -> dict[str, Any]:
    """Tokens per second of four decode loops on the shipped Mini-GPT, per length.

    Every method generates ``n`` new tokens for ``n_seeds`` rows (one ``<bos>`` prompt
    each) with ``Temperature(0.8)`` and ``<eos>`` forbidden, from the same per-row keys
    (those of :func:`jaxsample.decoding.generate_ids`), over the same ``n`` token
    slots:

    * ``scan_kv_cache``: ``generate_ids(cache=True)``, the whole generation in one
      jitted ``lax.scan`` with a key/value cache;
    * ``scan_recompute``: ``generate_ids(cache=False)``, one ``lax.scan`` that runs
      the full forward over the fixed-size token buffer at every step;
    * ``python_loop_cached_step``: a jitted prefill, then a Python loop of one jitted
      step per token (feed the last token through ``forward_cached``, sample the next;
      the cache is donated to the step, so it is updated in place);
    * ``python_loop_recompute``: a Python loop of one jitted step per token that runs
      ``forward`` over the whole fixed-size buffer and samples at the current position
      (what a naive user writes).

    The shipped model has ``n_ctx = 32``; longer lengths use :func:`timing_model`.
    Each figure is ``time_call`` over calls with different seeds (one warm-up call,
    which compiles). The warm-up call's tokens (seed 0) are checked: the count of
    ``<eos>`` drawn (must be 0) and the fraction equal to ``scan_kv_cache``'s tokens.

    Args:
        n_seeds: Rows per call (independent random streams).
        lengths: Numbers of new tokens.
        budget: Repetitions per figure (``time_call`` rule).
        log: Progress printer.
        methods: Which of :data:`DECODE_METHODS` to run.
        max_call_s: Skip a method at a length above ``always_up_to`` when its
            estimated time per call (the last measured one scaled by
            ``(n / n_last)^2``) exceeds this many seconds; ``None`` never skips.
        always_up_to: Lengths up to this one are measured whatever the estimate.

    Returns:
        The decode section of the results (see ``benchmarks/report.py``).

    Raises:
        ValueError: If a method name is unknown.
    """
    from jaxsample.decoding import generate_ids, row_keys
    from jaxsample.model import load_pretrained
    from jaxsample.model.gpt import forward, forward_cached, init_cache

    unknown = [m for m in methods if m not in DECODE_METHODS]
    if unknown:
        raise ValueError(f"unknown decode methods {unknown}; valid: {list(DECODE_METHODS)}")
    model = load_pretrained()
    tok = model.tokenizer
    shipped = model.config
    params, config = timing_model(model.params, shipped, 1 + max(lengths))
    strategy = js.chain(_Forbid(tok.eos_id), js.Temperature(0.8))
    prompt = [[tok.bos_id]] * n_seeds
    key = jax.random.key(0)

    def draw(logits: jax.Array, keys: jax.Array, t: jax.Array) -> jax.Array:
        step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)
        return js.sample(step_keys, logits, strategy)

    def scan(n: int, cache: bool) -> Callable[[int], jax.Array]:
        def go(seed: int) -> jax.Array:
            g = generate_ids(
                params,
                config,
                prompt,
                jax.random.fold_in(key, seed),
                strategy,
                max_new_tokens=n,
                eos_id=tok.eos_id,
                pad_id=tok.pad_id,
                cache=cache,
            )
            return g.tokens

        return go

    # The Python loops use n slots, as generate_ids does for a 1-token prompt: slot 0
    # holds <bos>, slot t (1 <= t < n) token t - 1; token t is drawn from the logits of
    # slot t, so the last token is never fed back.
    def cached_start_impl(params: Any, keys: jax.Array, slots: int) -> tuple[jax.Array, Any]:
        bos = jnp.full((n_seeds, 1), tok.bos_id, jnp.int32)
        logits, cache = forward_cached(
            params,
            bos,
            init_cache(config, n_seeds, slots),
            config,
            slot=0,
            positions=jnp.zeros((n_seeds, 1), jnp.int32),
            key_valid=jnp.ones((n_seeds, slots), bool),
        )
        return draw(logits[:, 0], keys, jnp.int32(0)), cache

    cached_start = jax.jit(cached_start_impl, static_argnums=2)

    def cached_step_impl(
        params: Any, cache: Any, token: jax.Array, keys: jax.Array, t: jax.Array
    ) -> tuple[jax.Array, Any]:
        # Feed token t - 1 at slot (= position) t, draw token t.
        slots = cache.k.shape[3]
        logits, cache = forward_cached(
            params,
            token[:, None],
            cache,
            config,
            slot=t,
            positions=jnp.full((n_seeds, 1), t, jnp.int32),
            key_valid=jnp.ones((n_seeds, slots), bool),
        )
        return draw(logits[:, 0], keys, t), cache

    # The cache is donated, so that XLA updates it in place as inside lax.scan; without
    # donation every step copies the whole cache (3-4x slower at 128 tokens on a CPU).
    cached_step = jax.jit(cached_step_impl, donate_argnums=1)

    def python_cached(n: int) -> Callable[[int], jax.Array]:
        def go(seed: int) -> jax.Array:
            keys = row_keys(jax.random.fold_in(key, seed), n_seeds)
            token, cache = cached_start(params, keys, n)
            out = [token]
            for t in range(1, n):
                token, cache = cached_step(params, cache, token, keys, jnp.int32(t))
                out.append(token)
            return jnp.stack(out, axis=1)

        return go

    @jax.jit
    def recompute_step(
        params: Any, buf: jax.Array, keys: jax.Array, t: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        # Full forward over the whole buffer, draw token t from slot t, write it at
        # slot t + 1 (dropped after the last slot).
        logits = forward(params, buf, config)  # [B, n, V]
        token = draw(lax.dynamic_index_in_dim(logits, t, axis=1, keepdims=False), keys, t)
        return token, buf.at[:, t + 1].set(token, mode="drop")

    def python_recompute(n: int) -> Callable[[int], jax.Array]:
        def go(seed: int) -> jax.Array:
            keys = row_keys(jax.random.fold_in(key, seed), n_seeds)
            buf = np.full((n_seeds, n), tok.pad_id, np.int32)
            buf[:, 0] = tok.bos_id
            tokens = jnp.asarray(buf)
            out = []
            for t in range(n):
                token, tokens = recompute_step(params, tokens, keys, jnp.int32(t))
                out.append(token)
            return jnp.stack(out, axis=1)

        return go

    builders: dict[str, Callable[[int], Callable[[int], jax.Array]]] = {
        "scan_kv_cache": lambda n: scan(n, True),
        "scan_recompute": lambda n: scan(n, False),
        "python_loop_cached_step": python_cached,
        "python_loop_recompute": python_recompute,
    }
    seeds = list(range(budget.max_reps + 1))  # a different seed for every call
    last: dict[str, tuple[int, float]] = {}
    results: list[dict[str, Any]] = []
    for n in lengths:
        reference: np.ndarray[Any, Any] | None = None
        for name in methods:
            rec: dict[str, Any] = {"new_tokens": n, "method": name}
            if max_call_s is not None and n > always_up_to and name in last:
                n0, ms0 = last[name]
                estimate = ms0 / 1e3 * (n / n0) ** 2
                if estimate > max_call_s:
                    rec["skipped"] = (
                        f"estimated {estimate:.0f} s per call (from {n0} tokens, scaled "
                        f"by the squared length ratio) > {max_call_s:.0f} s cap"
                    )
                    results.append(rec)
                    log(f"  decode N={n:>3} {name:<24} skipped: {rec['skipped']}")
                    continue
            fn = builders[name](n)
            outputs: dict[int, jax.Array] = {}

            def keep(
                seed: int,
                fn: Callable[[int], jax.Array] = fn,
                outputs: dict[int, jax.Array] = outputs,
            ) -> jax.Array:
                out = fn(seed)
                if seed == 0:
                    outputs[seed] = out
                return out

            rec.update(time_call(keep, seeds, budget))
            rec["tokens_per_s"] = n_seeds * n / (rec["median_ms"] / 1e3)
            tokens = np.asarray(outputs[0])
            if tokens.shape != (n_seeds, n):
                raise AssertionError(f"{name} returned shape {tokens.shape}, not {(n_seeds, n)}")
            rec["eos_drawn"] = int(np.sum(tokens == tok.eos_id))
            if name == "scan_kv_cache":
                reference = tokens
            if reference is not None:
                rec["same_tokens_as_scan_kv_cache"] = float(np.mean(tokens == reference))
            last[name] = (n, rec["median_ms"])
            results.append(rec)
            log(
                f"  decode N={n:>3} {name:<24} {rec['tokens_per_s']:12.0f} tok/s "
                f"({rec['reps']} reps)"
            )
    growth = {
        name: _growth_exponent(
            [
                (r["new_tokens"], r["median_ms"])
                for r in results
                if r["method"] == name and "median_ms" in r
            ]
        )
        for name in methods
    }
    extended = config.n_ctx > shipped.n_ctx
    return {
        "model": f"shipped Mini-GPT {shipped}",
        "n_ctx": shipped.n_ctx,
        "timing_n_ctx": config.n_ctx,
        "note": (
            f"The shipped model's context is {shipped.n_ctx} positions, so a 1-token "
            f"<bos> prompt leaves room for {shipped.n_ctx - 1} new tokens. "
            + (
                f"The timing model is the shipped model with its {shipped.n_ctx} learned "
                f"position rows tiled to n_ctx = {config.n_ctx}; all other weights are "
                f"unchanged. Speed depends only on the shapes, so the figures are those "
                f"of the same architecture and weights, but tokens past position "
                f"{shipped.n_ctx - 1} are not meaningful text. "
                if extended
                else ""
            )
            + "<eos> is given probability 0 (chained before Temperature(0.8)), so every "
            "row of every method produces exactly the requested number of tokens; every "
            "method draws with the same per-row keys over the same number of slots. "
            "Growth: slope of log(time per call) against log(new tokens)"
        ),
        "n_seeds": n_seeds,
        "strategy": "Temperature(0.8), <eos> forbidden",
        "max_call_s": max_call_s,
        "growth_exponent": growth,
        "results": results,
    }
