"""The decode benchmark: four decode loops on the shipped Mini-GPT, tokens per second.

:func:`decode_suite` times :func:`jaxsample.decoding.generate_ids` (one ``lax.scan``,
with or without a key/value cache) against Python loops of one jitted step per token;
:func:`timing_model` stretches the shipped model's context for the longer lengths.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jaxsample as js
from benchmarks.timing import Budget, time_call

__all__ = ["DECODE_METHODS", "decode_suite", "timing_model"]


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
    def cached_step_impl(
        params: Any, cache: Any, token: jax.Array, keys: jax.Array, t: jax.Array
    ) -> tuple[jax.Array, Any]:
        # Feed token t - 1 (<bos> for t = 0) at slot (= position) t, draw token t.
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

    def cached_start_impl(params: Any, keys: jax.Array, slots: int) -> tuple[jax.Array, Any]:
        # The prefill: step 0 on an empty cache of ``slots`` slots, fed <bos>.
        bos = jnp.full((n_seeds,), tok.bos_id, jnp.int32)
        empty = init_cache(config, n_seeds, slots)
        return cached_step_impl(params, empty, bos, keys, jnp.int32(0))

    cached_start = jax.jit(cached_start_impl, static_argnums=2)

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
