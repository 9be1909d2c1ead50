"""The decode loop with the batch split over the devices of a mesh.

Each device decodes its block of rows with no communication (rows are independent
and their keys were derived from the global row index before the split); the
results are gathered onto every device at the end, so a process of a multi-process
run can read all rows. A batch that the mesh axes do not divide is padded with
copies of its last row, dropped afterwards.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as PSpec

from jaxsample.decoding.loop import Generation, _decode
from jaxsample.model import Params
from jaxsample.samplers import Strategy

__all__ = ["decode_on_mesh", "global_array"]


def global_array(host: np.ndarray[Any, Any], sharding: NamedSharding) -> jax.Array:
    """A global array laid out as ``sharding`` from the copy of it that every process holds.

    Args:
        host: The whole array, the same on every process.
        sharding: Where its blocks go; each device receives ``host[index]`` for its block.

    Returns:
        A ``jax.Array`` of ``host``'s shape and dtype spanning the sharding's devices.
    """
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def decode_on_mesh(
    mesh: Mesh,
    batch_axis: str | tuple[str, ...],
    params: Params,
    tokens: np.ndarray[Any, Any],
    lens: np.ndarray[Any, Any],
    keys: jax.Array,
    strategy: Strategy,
    eos_id: int,
    pad_id: int,
    static: dict[str, Any],
) -> Generation:
    """:func:`~jaxsample.decoding.loop._decode` with the batch split over ``batch_axis``.

    Every input is built as a global array from the host copy that each process
    holds (:func:`global_array`), so the same call runs on one process or on several.

    Args:
        mesh: The devices; ``batch_axis`` names one or more of its axes.
        batch_axis: The mesh axis (or axes, outermost first) that splits the rows.
        params: Model parameters, copied to every device.
        tokens: int32 ``[B, P]`` left-padded prompts (host copy).
        lens: int32 ``[B]`` their lengths.
        keys: typed keys ``[B]``, one per row.
        strategy: A strategy checked against ``B`` rows; parameters of shape ``[B]``
            are split with the rows, the others copied.
        eos_id: Token id that ends a row.
        pad_id: Token id written after EOS.
        static: The static keyword arguments of ``_decode``.

    Returns:
        The :class:`~jaxsample.decoding.Generation` of the ``B`` rows, on every device.

    Raises:
        ValueError: If ``mesh`` is not a ``Mesh`` or ``batch_axis`` does not name
            distinct axes of it.
    """
    if not isinstance(mesh, Mesh):
        raise ValueError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axes = (batch_axis,) if isinstance(batch_axis, str) else tuple(batch_axis)
    if not axes or any(a not in mesh.axis_names for a in axes) or len(set(axes)) < len(axes):
        raise ValueError(
            f"batch_axis must name distinct axes of the mesh {tuple(mesh.axis_names)}, "
            f"got {batch_axis!r}"
        )
    shards = int(np.prod([mesh.shape[a] for a in axes]))
    B = tokens.shape[0]
    rows = -(-B // shards) * shards
    fill = np.concatenate([np.arange(B), np.full(rows - B, B - 1)])  # pad: copies of the last row

    def put(a: Any, split: bool) -> jax.Array:
        host = np.asarray(a)
        if split:
            host = host[fill]
        spec = PSpec(axes) if split else PSpec()  # type: ignore[no-untyped-call]
        return global_array(host, NamedSharding(mesh, spec))

    leaves, tree = jax.tree_util.tree_flatten(strategy)
    per_row = [np.shape(leaf) == (B,) and B > 1 for leaf in leaves]
    strategy_in = jax.tree_util.tree_unflatten(
        tree, [put(leaf, split) for leaf, split in zip(leaves, per_row, strict=True)]
    )
    run = _mesh_decoder(
        mesh, axes, jax.random.key_impl(keys), tree, tuple(per_row), tuple(sorted(static.items()))
    )
    result: Generation = run(
        jax.tree_util.tree_map(lambda a: put(a, False), params),
        put(tokens, True),
        put(lens, True),
        put(jax.random.key_data(keys), True),
        strategy_in,
        put(np.int32(eos_id), False),
        put(np.int32(pad_id), False),
    )
    if rows == B:
        return result
    trimmed: Generation = jax.tree_util.tree_map(lambda a: a[:B], result)
    return trimmed


@functools.cache
def _mesh_decoder(
    mesh: Mesh,
    axes: tuple[str, ...],
    impl: Any,
    tree: Any,
    per_row: tuple[bool, ...],
    static: tuple[tuple[str, Any], ...],
) -> Any:
    """The jitted ``shard_map`` of :func:`_decode`, built once per layout and settings."""
    row, whole = PSpec(axes), PSpec()  # type: ignore[no-untyped-call]

    def local(
        params: Params,
        tokens: jax.Array,
        lens: jax.Array,
        key_data: jax.Array,
        strategy: Strategy,
        eos: jax.Array,
        pad: jax.Array,
    ) -> Generation:
        keys = jax.random.wrap_key_data(key_data, impl=impl)
        out: Generation = _decode(params, tokens, lens, keys, strategy, eos, pad, **dict(static))
        # Gather the rows onto every device: ids and flags are a few bytes per row.
        gathered: Generation = jax.tree_util.tree_map(
            lambda a: lax.all_gather(a, axes, axis=0, tiled=True), out
        )
        return gathered

    strategy_spec = jax.tree_util.tree_unflatten(tree, [row if s else whole for s in per_row])
    return jax.jit(
        jax.shard_map(
            local,
            mesh=mesh,
            in_specs=(whole, row, row, row, strategy_spec, whole, whole),
            out_specs=whole,
            check_vma=False,
        )
    )
