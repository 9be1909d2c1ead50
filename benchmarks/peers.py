"""The sampler implementations compared: jaxsample, its peers and the floor.

Every implementation is built from a :class:`Spec` and exposes ``sample(x)`` (token
ids for a batch of float32 logits ``[B, V]``) and, for the exact ones, ``probs(row)``
(the full distribution it draws from for one row), used by the smoke checks.

* ``jaxsample``: :func:`jaxsample.sample` with the matching strategy.
* ``numpy``: the seeds' style, one row at a time: float32 softmax, ``argsort``,
  ``cumsum``, ``Generator.choice``.
* ``naive_jax``: what most JAX code does: full ``jnp.sort`` for the top-k / top-p
  thresholds, then ``jax.random.categorical`` (one Gumbel number per token).
* ``hf``: Hugging Face ``transformers`` logits warpers, softmax and
  ``torch.multinomial`` (only when torch and transformers import).
* ``floor``: one jitted read of the logits (a row max); no sampler can beat it.

``probs`` takes float32 rows ``[n, V]`` and returns float64 ``[n, V]``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxsample as js


@dataclasses.dataclass(frozen=True)
class Spec:
    """One sampler configuration; ``None`` disables a stage."""

    name: str
    greedy: bool = False
    tau: float = 1.0
    k: int | None = None
    p: float | None = None

    def strategy(self) -> js.Strategy:
        """The jaxsample strategy with these settings."""
        if self.greedy:
            return js.Greedy()
        parts: list[js.Strategy] = [js.Temperature(self.tau)]
        if self.k is not None:
            parts.append(js.TopK(self.k))
        if self.p is not None:
            parts.append(js.TopP(self.p))
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2 and self.k is not None:
            return js.TopK(self.k, tau=self.tau)
        if len(parts) == 2 and self.p is not None:
            return js.TopP(self.p, tau=self.tau)
        return js.chain(*parts)

    def code(self) -> str:
        """How :meth:`strategy` is written with jaxsample, e.g. ``TopP(0.9, tau=0.8)``."""
        if self.greedy:
            return "Greedy()"
        parts = [f"Temperature({self.tau:g})"]
        if self.k is not None:
            parts.append(f"TopK({self.k})")
        if self.p is not None:
            parts.append(f"TopP({self.p:g})")
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            return f"{parts[1][:-1]}, tau={self.tau:g})"
        return f"chain({', '.join(parts)})"


SPECS: tuple[Spec, ...] = (
    Spec("greedy", greedy=True),
    Spec("temperature", tau=0.8),
    Spec("top-k", tau=0.8, k=50),
    Spec("top-p", tau=0.8, p=0.9),
    Spec("chain", tau=0.8, k=50, p=0.9),
)
"""The samplers timed on every shape (the LLM-like logits), and checked by the smoke mode."""

TOP_P_HOT = Spec("top-p", tau=1.5, p=0.9)
"""Top-p 0.9 at a high temperature (a nucleus of thousands of tokens)."""


@dataclasses.dataclass
class Impl:
    """A runnable implementation: ``sample`` draws, ``probs`` (optional) is exact."""

    name: str
    sample: Callable[[Any], Any]
    probs: Callable[[np.ndarray], np.ndarray] | None = None
    is_jax: bool = False


# ---------------------------------------------------------------------------------------
# jaxsample and the floor
# ---------------------------------------------------------------------------------------


def jaxsample_impl(spec: Spec, seed: int = 0) -> Impl:
    strategy = spec.strategy()
    key = jax.random.key(seed)

    def sample(x: jax.Array) -> jax.Array:
        return js.sample(key, x, strategy)

    def probs(rows: np.ndarray) -> np.ndarray:
        return np.asarray(js.probs(jnp.asarray(rows), strategy), np.float64)

    return Impl("jaxsample", sample, probs, is_jax=True)


@jax.jit
def _row_max(x: jax.Array) -> jax.Array:
    return jnp.max(x, axis=-1)


def floor_impl() -> Impl:
    return Impl("floor", _row_max, None, is_jax=True)


# ---------------------------------------------------------------------------------------
# The seeds' NumPy style
# ---------------------------------------------------------------------------------------


def numpy_support(z: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """Token ids and their float32 probabilities after the spec's filters, one row.

    Plain NumPy as the seeds write it: float32 softmax, the default ``argsort``
    (not stable: exact ties may be ordered differently from jaxsample's lowest-index
    rule; random float logits have none).
    """
    if spec.greedy:
        return np.array([int(np.argmax(z))]), np.ones(1, np.float32)
    s = z.astype(np.float32) / np.float32(spec.tau)
    q = np.exp(s - s.max())
    q /= q.sum()
    ids = np.arange(len(z))
    if spec.k is not None or spec.p is not None:
        order = np.argsort(-q)
        ids, q = order, q[order]
        if spec.k is not None:
            ids, q = ids[: spec.k], q[: spec.k] / q[: spec.k].sum()
        if spec.p is not None:
            cum = np.cumsum(q)
            n = max(1, int(np.sum(cum - q < spec.p)))
            ids, q = ids[:n], q[:n] / q[:n].sum()
    return ids, q


def numpy_impl(spec: Spec, seed: int = 0) -> Impl:
    rng = np.random.default_rng(seed)

    def sample(x: np.ndarray) -> np.ndarray:
        out = np.empty(x.shape[0], np.int64)
        for r in range(x.shape[0]):
            ids, q = numpy_support(x[r], spec)
            out[r] = ids[0] if len(ids) == 1 else rng.choice(ids, p=q)
        return out

    def probs(row: np.ndarray) -> np.ndarray:
        if row.ndim == 2:
            return np.stack([probs(r) for r in row])
        ids, q = numpy_support(row, spec)
        full = np.zeros(len(row))
        full[ids] = q
        return full

    return Impl("numpy", sample, probs)


# ---------------------------------------------------------------------------------------
# Naive JAX: full sort plus jax.random.categorical
# ---------------------------------------------------------------------------------------


def _naive_filter(x: jax.Array, spec: Spec) -> jax.Array:
    z = x / spec.tau
    if spec.k is not None:
        kth = jnp.sort(z, axis=-1)[..., -spec.k][..., None]
        z = jnp.where(z < kth, -jnp.inf, z)
    if spec.p is not None:
        desc = -jnp.sort(-z, axis=-1)
        q = jax.nn.softmax(desc, axis=-1)
        ahead = jnp.cumsum(q, axis=-1) - q
        n = jnp.maximum(jnp.sum(ahead < spec.p, axis=-1, keepdims=True), 1)
        cut = jnp.take_along_axis(desc, n - 1, axis=-1)
        z = jnp.where(z < cut, -jnp.inf, z)
    return z


@functools.cache
def naive_jax_impl(spec: Spec, seed: int = 0) -> Impl:
    """Naive JAX (cached per spec, so that its jitted functions compile once)."""
    key = jax.random.key(seed)

    @jax.jit
    def sample(x: jax.Array) -> jax.Array:
        if spec.greedy:
            return jnp.argmax(x, axis=-1)
        return jax.random.categorical(key, _naive_filter(x, spec), axis=-1)

    @jax.jit
    def _probs(rows: jax.Array) -> jax.Array:
        if spec.greedy:
            return jax.nn.one_hot(jnp.argmax(rows, axis=-1), rows.shape[-1])
        return jax.nn.softmax(_naive_filter(rows, spec), axis=-1)

    def probs(rows: np.ndarray) -> np.ndarray:
        return np.asarray(_probs(jnp.asarray(rows)), np.float64)

    return Impl("naive_jax", sample, probs, is_jax=True)


# ---------------------------------------------------------------------------------------
# Hugging Face transformers warpers plus torch.multinomial
# ---------------------------------------------------------------------------------------


def hf_available() -> str | None:
    """``None`` when torch and transformers import, else the reason they do not."""
    try:
        import torch  # noqa: F401
        from transformers.generation.logits_process import TopPLogitsWarper  # noqa: F401
    except Exception as err:  # any import failure means: skip this peer
        return f"torch/transformers not importable ({type(err).__name__}: {err})"
    return None


def hf_impl(spec: Spec, seed: int = 0) -> Impl:
    import torch
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    warpers = LogitsProcessorList()
    if not spec.greedy:
        warpers.append(TemperatureLogitsWarper(spec.tau))
        if spec.k is not None:
            warpers.append(TopKLogitsWarper(spec.k))
        if spec.p is not None:
            warpers.append(TopPLogitsWarper(spec.p))
    gen = torch.Generator().manual_seed(seed)

    def scores(x: Any) -> Any:
        t = torch.from_numpy(np.ascontiguousarray(x))
        ids: Any = torch.zeros((t.shape[0], 1), dtype=torch.long)
        return warpers(ids, t)

    def sample(x: np.ndarray) -> Any:
        with torch.no_grad():
            t = torch.from_numpy(x)
            if spec.greedy:
                return torch.argmax(t, dim=-1)
            q = torch.softmax(scores(x), dim=-1)
            return torch.multinomial(q, 1, generator=gen)[:, 0]

    def probs(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            if spec.greedy:
                out = np.zeros(rows.shape)
                out[np.arange(len(rows)), np.argmax(rows, axis=-1)] = 1.0
                return out
            s = scores(rows.astype(np.float32))
            return np.asarray(torch.softmax(s.double(), dim=-1).numpy())

    return Impl("hf", sample, probs)


def implementations(spec: Spec, with_hf: bool) -> list[Impl]:
    """Every implementation of ``spec`` (HF only when ``with_hf``), the floor last."""
    impls = [jaxsample_impl(spec), numpy_impl(spec), naive_jax_impl(spec)]
    if with_hf:
        impls.append(hf_impl(spec))
    impls.append(floor_impl())
    return impls
