"""Temperature x seeds x prompts sweeps of a model on every device given.

A sweep draws one completion for every cell ``(tau, s, p)`` of a grid of
temperatures, seeds and prompts, and records at every step the entropy of the
distribution the token was drawn from and the token's surprisal under the model.
Cell ``(tau, s, p)`` is exactly the first completion of ``jaxsample generate p
--seed s --temperature tau`` (its key is ``fold_in(key(s), 0)``), so the seeds are
common random numbers across temperatures and any cell can be replayed alone.

Layout: the grid is laid out over a 2-D mesh with axes ``("tau", "seed")``: device
``(i, j)`` decodes temperatures block ``i`` x seeds block ``j`` x every prompt, as
one batch of rows with no communication; the results are gathered at the end. On
several processes (``jax.distributed``) the mesh spans the devices of all of
them, and every process gets the whole result. Rows are independent and their
keys depend on the seed only, so the tokens do not depend on the layout: one
device, eight, or two processes of four give the same result.

The seeds run in chunks (a progress line after each); each chunk has the same
shape, so the sweep is compiled once.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxsample._checks import check_int
from jaxsample.decoding._mesh import global_array
from jaxsample.decoding.inputs import _prompt_tokens
from jaxsample.decoding.loop import _decode
from jaxsample.model import GPTConfig, Params
from jaxsample.samplers import Strategy, Temperature, TopK, TopP, chain, entropy, probs

__all__ = ["SWEEP_AXES", "SweepGrid", "run_sweep", "sweep_mesh"]

#: The names of the sweep mesh's axes: temperatures, then seeds.
SWEEP_AXES = ("tau", "seed")


@dataclasses.dataclass(frozen=True)
class SweepGrid:
    """The arrays of a sweep over ``T`` temperatures, ``S`` seeds and ``P`` prompts.

    Attributes:
        taus: float32 ``[T]``.
        tokens: int32 ``[T, S, P, N]`` generated ids (``pad_id`` after EOS).
        lengths: int32 ``[T, S, P]`` tokens up to and including EOS.
        finished: bool ``[T, S, P]``, True where the completion produced EOS.
        entropy: float32 ``[T, S, P, N]`` entropy in bits of the distribution each
            token was drawn from (the strategy's, after temperature and filters).
        surprisal: float32 ``[T, S, P, N]`` ``-log2`` of each token's probability
            under the model itself (temperature 1, no filter).
    """

    taus: np.ndarray[Any, Any]
    tokens: np.ndarray[Any, Any]
    lengths: np.ndarray[Any, Any]
    finished: np.ndarray[Any, Any]
    entropy: np.ndarray[Any, Any]
    surprisal: np.ndarray[Any, Any]

    def mask(self) -> np.ndarray[Any, Any]:
        """Which steps belong to the completion: bool ``[T, S, P, N]``."""
        steps = np.arange(self.tokens.shape[-1])
        out: np.ndarray[Any, Any] = steps < self.lengths[..., None]
        return out

    def digest(self) -> str:
        """SHA-256 of every array's bytes: equal digests mean bit-identical sweeps."""
        h = hashlib.sha256()
        for name in ("taus", "tokens", "lengths", "finished", "entropy", "surprisal"):
            a = np.ascontiguousarray(getattr(self, name))
            h.update(f"{name}{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


def sweep_mesh(n_taus: int, devices: Sequence[Any] | None = None) -> Mesh:
    """The 2-D ``("tau", "seed")`` mesh a sweep of ``n_taus`` temperatures uses.

    The temperature axis gets ``gcd(n_taus, n)`` of the ``n`` devices (so it divides
    the temperatures evenly) and the seed axis the rest.

    Args:
        n_taus: Number of temperatures, ``>= 1``.
        devices: The devices (default: ``jax.devices()``, every device of every process).

    Returns:
        A :class:`jax.sharding.Mesh` of shape ``(a, n // a)``.

    Raises:
        ValueError: If ``n_taus`` is not an int ``>= 1`` or ``devices`` is empty.
    """
    n_taus = check_int("n_taus", n_taus, 1)
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices must hold at least one device")
    a = math.gcd(n_taus, len(devs))
    grid = np.array(devs, dtype=object).reshape(a, len(devs) // a)
    return Mesh(grid, SWEEP_AXES)


def _check_taus(taus: Sequence[float]) -> np.ndarray[Any, Any]:
    arr = np.asarray(taus, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"taus must be a non-empty list of temperatures, got {taus!r}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError(f"every temperature must be finite and >= 0, got {arr.tolist()}")
    return arr.astype(np.float32)


def _strategy(tau: jax.Array, top_k: int, top_p: float) -> Strategy:
    """Temperature ``tau`` (0 is greedy), then top-k and top-p, as ``make_strategy``."""
    parts: list[Strategy] = [Temperature(tau)]
    if top_k > 0:
        parts.append(TopK(top_k))
    if top_p < 1:
        parts.append(TopP(top_p))
    return parts[0] if len(parts) == 1 else chain(*parts)


def run_sweep(
    params: Params,
    config: GPTConfig,
    prompts: Sequence[Sequence[int]],
    taus: Sequence[float],
    seeds: int,
    *,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    bos_id: int | None = None,
    top_k: int = 0,
    top_p: float = 1.0,
    mesh: Mesh | None = None,
    chunk_seeds: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> SweepGrid:
    """Draw one completion per (temperature, seed, prompt) on every device of ``mesh``.

    Args:
        params: Model parameters (the same on every process).
        config: The model configuration.
        prompts: ``P >= 1`` prompts of token ids (empty ones start from ``bos_id``).
        taus: ``T >= 1`` temperatures, finite and ``>= 0`` (0 is greedy).
        seeds: Number of seeds ``S >= 1``; seed ``s`` gives the key
            ``fold_in(jax.random.key(s), 0)``.
        max_new_tokens: Tokens per completion, ``>= 1``.
        eos_id: Token id that ends a completion.
        pad_id: Token id written after EOS and used to left-pad the prompts.
        bos_id: Token id an empty prompt starts from.
        top_k: Keep the ``k`` most likely tokens after the temperature; 0 disables.
        top_p: Then keep the nucleus of mass ``top_p`` in ``(0, 1]``; 1 disables.
        mesh: A mesh with axes ``("tau", "seed")`` whose ``tau`` size divides ``T``;
            default :func:`sweep_mesh` over every device.
        chunk_seeds: Seeds per compiled call (rounded up to a multiple of the seed
            axis); default about a quarter of the seeds.
        on_chunk: Called with the number of seeds finished after each chunk.

    Returns:
        A :class:`SweepGrid`, the same on every process.

    Raises:
        ValueError: For bad prompts, temperatures, counts or filters, a prompt plus
            ``max_new_tokens`` longer than the context, or a mesh without the
            sweep's axes or whose ``tau`` axis does not divide ``T``.
    """
    tau_arr = _check_taus(taus)
    seeds = check_int("seeds", seeds, 1)
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, 1)
    top_k = check_int("top_k", top_k, 0)
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 disables it), got {top_p}")
    tokens, lens = _prompt_tokens(
        prompts, None, config, max_new_tokens, pad_id=pad_id, bos_id=bos_id
    )

    mesh = sweep_mesh(len(tau_arr)) if mesh is None else mesh
    if not isinstance(mesh, Mesh) or tuple(mesh.axis_names) != SWEEP_AXES:
        raise ValueError(f"mesh must be a jax.sharding.Mesh with axes {SWEEP_AXES}, got {mesh}")
    a, b = int(mesh.shape["tau"]), int(mesh.shape["seed"])
    if len(tau_arr) % a:
        raise ValueError(f"the mesh's tau axis ({a} devices) must divide the {len(tau_arr)} taus")
    if chunk_seeds is None:
        chunk_seeds = math.ceil(seeds / 4)
    chunk = -(-check_int("chunk_seeds", chunk_seeds, 1) // b) * b
    chunk = min(chunk, -(-seeds // b) * b)

    run = _sweep_kernel(mesh, config, max_new_tokens, top_k, float(top_p))
    whole = NamedSharding(mesh, PartitionSpec())  # type: ignore[no-untyped-call]
    by_tau = NamedSharding(mesh, PartitionSpec("tau"))  # type: ignore[no-untyped-call]
    by_seed = NamedSharding(mesh, PartitionSpec("seed"))  # type: ignore[no-untyped-call]
    fixed = (
        jax.tree_util.tree_map(lambda x: global_array(np.asarray(x), whole), params),
        global_array(tokens, whole),
        global_array(lens, whole),
        global_array(tau_arr, by_tau),
        global_array(np.asarray(eos_id, np.int32), whole),
        global_array(np.asarray(pad_id, np.int32), whole),
    )
    parts: list[list[np.ndarray[Any, Any]]] = []
    for start in range(0, seeds, chunk):
        key_data = _seed_key_data(start, chunk)
        out = run(*fixed, global_array(key_data, by_seed))
        host = [np.asarray(multihost_utils.process_allgather(x, tiled=True)) for x in out]
        parts.append(host)
        if on_chunk is not None:
            on_chunk(min(start + chunk, seeds))
    full = [np.concatenate([p[i] for p in parts], axis=1)[:, :seeds] for i in range(5)]
    return SweepGrid(tau_arr, *full)


def _seed_key_data(start: int, n: int) -> np.ndarray[Any, Any]:
    """uint32 ``[n, 2]``: the data of ``fold_in(key(s), 0)`` for seeds ``start .. start+n-1``."""
    keys = [jax.random.fold_in(jax.random.key(s), 0) for s in range(start, start + n)]
    return np.stack([np.asarray(jax.random.key_data(k)) for k in keys])


@functools.cache
def _sweep_kernel(
    mesh: Mesh, config: GPTConfig, max_new_tokens: int, top_k: int, top_p: float
) -> Any:
    """The jitted ``shard_map`` that decodes one chunk of seeds (built once per setting)."""
    impl = jax.random.key_impl(jax.random.key(0))

    def local(
        params: Params,
        prompt: jax.Array,
        lens: jax.Array,
        taus: jax.Array,
        eos: jax.Array,
        pad: jax.Array,
        key_data: jax.Array,
    ) -> tuple[jax.Array, ...]:
        # This device's block: taus [t], seeds [s], every prompt [p] -> t * s * p rows.
        t, s, (p, width) = taus.shape[0], key_data.shape[0], prompt.shape
        shape = (t, s, p)
        n = t * s * p
        row_tau = jnp.broadcast_to(taus[:, None, None], shape).reshape(n)
        row_keys = jnp.broadcast_to(key_data[None, :, None, :], (*shape, 2)).reshape(n, 2)
        row_prompt = jnp.broadcast_to(prompt, (*shape, width)).reshape(n, width)
        row_lens = jnp.broadcast_to(lens, shape).reshape(n)
        keys = jax.random.wrap_key_data(row_keys, impl=impl)
        gen = _decode(
            params,
            row_prompt,
            row_lens,
            keys,
            _strategy(row_tau, top_k, top_p),
            eos,
            pad,
            config=config,
            max_new_tokens=max_new_tokens,
            use_cache=True,
            record_logits=True,
            logprobs=0,
        )
        logits = gen.logits
        assert logits is not None  # record_logits=True
        h = entropy(probs(logits, _strategy(row_tau[:, None], top_k, top_p)))  # [n, N]
        logp = jax.nn.log_softmax(logits, axis=-1)
        chosen = jnp.take_along_axis(logp, gen.tokens[..., None], axis=-1)[..., 0]
        surprisal = -chosen / jnp.float32(math.log(2.0))  # [n, N]
        steps = (*shape, max_new_tokens)
        return (
            gen.tokens.reshape(steps),
            gen.lengths.reshape(shape),
            gen.finished.reshape(shape),
            h.reshape(steps),
            surprisal.reshape(steps),
        )

    whole = PartitionSpec()  # type: ignore[no-untyped-call]
    grid = PartitionSpec("tau", "seed")  # type: ignore[no-untyped-call]
    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(
                whole,
                whole,
                whole,
                PartitionSpec("tau"),  # type: ignore[no-untyped-call]
                whole,
                whole,
                PartitionSpec("seed"),  # type: ignore[no-untyped-call]
            ),
            out_specs=(grid,) * 5,
            check_vma=False,
        )
    )
