"""The sharded computations: ``jaxsample.sample``, ``probs`` and ``valid_rows`` in ``shard_map``.

Each public function checks its arguments on the host (:meth:`_Layout.of` and the
logits and strategy checks), then calls one jitted function whose static argument is
the :class:`_Layout`: it pads the rows and the vocabulary, lays the inputs out on the
mesh, runs the sampler's function on each device's block and trims the padding off.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from jaxsample import samplers
from jaxsample._checks import check_key
from jaxsample.samplers import Known, Strategy, known_from, sample_known
from jaxsample.sharding._layout import _check_logits, _check_strategy, _Layout, _spec

__all__ = ["probs", "sample", "valid_rows"]


def sample(
    key: jax.Array,
    logits: jax.Array,
    strategy: Strategy,
    *,
    mesh: Mesh,
    vocab_axis: str | None = "tp",
    batch_axis: str | None = "dp",
) -> jax.Array:
    """Draw one token per row of ``logits`` with the vocabulary split over ``mesh``.

    Sets up the :func:`jax.shard_map` of ``jaxsample.sample``: the logits' last
    axis is split over the mesh axis ``vocab_axis`` and its first axis over
    ``batch_axis`` (other mesh axes hold copies). ``logits`` may be an array on
    one device or one already sharded that way (the cheapest: nothing moves
    before sampling when ``V`` is a multiple of :data:`VOCAB_MULTIPLE` and ``B``
    of the batch-axis size). The tokens are those of ``jaxsample.sample(key,
    logits, strategy)`` on one device, bit for bit (see the module docstring for
    the keys and the padding). Between devices, each call moves ``O(B x n)``
    scalars (``O(B x n x k)`` with a top-k part: each shard's ``k`` candidates),
    never a row of logits; ``python -m benchmarks.sharding`` reads the bytes from
    the compiled program.

    Args:
        key: A ``jax.random.key`` (or legacy uint32 ``PRNGKey``), or one key per
            row with shape ``logits.shape[:-1]``.
        logits: ``[..., V]`` real logits, any float dtype.
        strategy: Any :class:`~jaxsample.Strategy`; parameter arrays broadcast
            against ``[...]`` (per-row parameters are split with the batch).
        mesh: The device mesh.
        vocab_axis: The mesh axis that splits the vocabulary; its size must
            divide :data:`MAX_VOCAB_SHARDS`. ``None``: every device sees whole rows.
        batch_axis: The mesh axis that splits the first axis of ``logits``;
            ``None``: every device sees every row.

    Returns:
        int32 ``[...]`` token ids in ``[0, V)``, split over ``batch_axis`` (on
        every device when the batch had to be padded).

    Raises:
        ValueError: If ``mesh`` is not a :class:`jax.sharding.Mesh`; an axis name
            is not one of its axes, or both name the same axis; the vocabulary
            axis has a size that does not divide :data:`MAX_VOCAB_SHARDS`; the
            batch axis splits more than one device but ``logits`` has no batch
            axis; or for the key, logits and strategy errors of
            :func:`jaxsample.sample`.
    """
    layout, x = _checked(logits, strategy, mesh, vocab_axis, batch_axis)
    lead = x.shape[:-1]
    keys = check_key(key, lead)
    if not math.prod(lead):  # no rows: nothing to draw
        return jnp.zeros(lead, jnp.int32)
    # What the concrete parameters rule out, read here: inside shard_map they are traced.
    known = known_from(strategy, x.shape[-1])
    ids: jax.Array = _sample(_row_keys(keys, lead), x, strategy, layout=layout, known=known)
    return ids


def probs(
    logits: jax.Array,
    strategy: Strategy,
    *,
    mesh: Mesh,
    vocab_axis: str | None = "tp",
    batch_axis: str | None = "dp",
) -> jax.Array:
    """The distribution :func:`sample` draws from, computed with the vocabulary split.

    Equal to ``jaxsample.probs(logits, strategy)`` up to float32 rounding (its sums
    run in another order across shards).

    Args:
        logits: ``[..., V]`` real logits, any float dtype.
        strategy: Any :class:`~jaxsample.Strategy`; parameter arrays broadcast
            against ``[...]``.
        mesh: The device mesh.
        vocab_axis: The mesh axis that splits the vocabulary (see :func:`sample`).
        batch_axis: The mesh axis that splits the first axis of ``logits``.

    Returns:
        float32 ``[..., V]``, sharded over ``batch_axis`` and ``vocab_axis``.

    Raises:
        ValueError: As :func:`sample`.
    """
    layout, x = _checked(logits, strategy, mesh, vocab_axis, batch_axis)
    if not math.prod(x.shape[:-1]):  # no rows: nothing to compute
        return jnp.zeros(x.shape, jnp.float32)
    out: jax.Array = _probs(x, strategy, layout=layout)
    return out


def valid_rows(
    logits: jax.Array,
    *,
    mesh: Mesh,
    vocab_axis: str | None = "tp",
    batch_axis: str | None = "dp",
) -> jax.Array:
    """The rows :func:`sample` can draw from as given, with the vocabulary split.

    A row is valid iff it holds no NaN and a logit other than ``-inf`` (the
    ``-inf`` padding of :func:`pad_vocab` changes nothing).

    Args:
        logits: ``[..., V]`` real logits, any float dtype.
        mesh: The device mesh.
        vocab_axis: The mesh axis that splits the vocabulary (see :func:`sample`).
        batch_axis: The mesh axis that splits the first axis of ``logits``.

    Returns:
        bool ``[...]``, sharded over ``batch_axis``.

    Raises:
        ValueError: As :func:`sample`.
    """
    layout, x = _checked(logits, None, mesh, vocab_axis, batch_axis)
    out: jax.Array = _valid_rows(x, layout=layout)
    return out


def _checked(
    logits: Any, strategy: Strategy | None, mesh: Any, vocab_axis: Any, batch_axis: Any
) -> tuple[_Layout, jax.Array]:
    """The checked layout and logits of a call (and its strategy, unless ``None``)."""
    layout = _Layout.of(mesh, vocab_axis, batch_axis)
    x = _check_logits(logits)
    layout.check_lead(x.shape[:-1])
    if strategy is not None:
        _check_strategy(strategy, x.shape[:-1])
    return layout, x


# ---------------------------------------------------------------------------------------
# The sharded computations
# ---------------------------------------------------------------------------------------


def _row_keys(key: jax.Array, lead: tuple[int, ...]) -> jax.Array:
    """One key per row: ``fold_in(key, r)`` with ``r`` the global row-major row index."""
    if key.shape == lead:
        return key
    n = math.prod(lead)
    rows = jnp.arange(n, dtype=jnp.uint32)
    keys: jax.Array = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)
    return keys.reshape(lead)


def _pad_rows(a: jax.Array, rows: int) -> jax.Array:
    """Pad the first axis to ``rows`` by repeating the last row (dropped afterwards)."""
    extra = rows - a.shape[0]
    if extra == 0:
        return a
    return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)], axis=0)


def _pad_logits(x: jax.Array, layout: _Layout) -> tuple[jax.Array, tuple[int, ...], int]:
    """Pad the vocabulary (:meth:`_Layout.pad`) and the rows to a multiple of the batch shards.

    Returns:
        ``(x, lead, rows)``: the padded logits, the original leading shape and the
        padded number of rows (0 for logits ``[V]`` without a row axis).
    """
    lead = x.shape[:-1]
    rows = -(-lead[0] // layout.batch_shards) * layout.batch_shards if lead else 0
    x = layout.pad(x)
    if lead:
        x = _pad_rows(x, rows)
    return x, lead, rows


def _split(
    x: jax.Array, strategy: Strategy, keys: jax.Array | None, layout: _Layout
) -> tuple[jax.Array, Strategy, jax.Array | None, tuple[int, ...], Any]:
    """Pad rows and vocabulary; per-row parameters broadcast; the shard_map in_specs."""
    x, lead, rows = _pad_logits(x, layout)
    leaves, tree = jax.tree_util.tree_flatten(strategy)
    params = []
    specs = []
    for leaf in leaves:
        a = jnp.asarray(leaf)
        if a.ndim == 0:
            params.append(a)
            specs.append(_spec())
        else:
            params.append(_pad_rows(jnp.broadcast_to(a, lead), rows))
            specs.append(layout.row_spec(len(lead)))
    if lead and keys is not None:
        keys = _pad_rows(keys, rows)
    padded = jax.tree_util.tree_unflatten(tree, params)
    strategy_spec = jax.tree_util.tree_unflatten(tree, specs)
    return x, padded, keys, lead, strategy_spec


@functools.partial(jax.jit, static_argnames=("layout", "known"))
def _sample(
    keys: jax.Array, x: jax.Array, strategy: Strategy, *, layout: _Layout, known: Known
) -> jax.Array:
    vocab = x.shape[-1]
    x, strategy, padded_keys, lead, strategy_spec = _split(x, strategy, keys, layout)
    axis, size = layout.vocab_axis, layout.local_vocab(vocab)

    def local(k: jax.Array, z: jax.Array, s: Strategy) -> jax.Array:
        ids: jax.Array = sample_known(k, z, s, axis, size, known)
        return ids

    row = layout.row_spec(len(lead))
    in_specs = (row, layout.logit_spec(x.ndim), strategy_spec)
    args = layout.place((padded_keys, x, strategy), in_specs)
    ids: jax.Array = jax.shard_map(local, mesh=layout.mesh, in_specs=in_specs, out_specs=row)(*args)
    return layout.trim(ids, lead, None)


@functools.partial(jax.jit, static_argnames=("layout",))
def _probs(x: jax.Array, strategy: Strategy, *, layout: _Layout) -> jax.Array:
    vocab = x.shape[-1]
    x, strategy, _, lead, strategy_spec = _split(x, strategy, None, layout)
    axis, size = layout.vocab_axis, layout.local_vocab(vocab)

    def local(z: jax.Array, s: Strategy) -> jax.Array:
        q: jax.Array = samplers.probs(z, s, vocab_axis=axis, vocab_size=size)
        return q

    spec = layout.logit_spec(x.ndim)
    args = layout.place((x, strategy), (spec, strategy_spec))
    q: jax.Array = jax.shard_map(
        local,
        mesh=layout.mesh,
        in_specs=(spec, strategy_spec),
        out_specs=spec,
    )(*args)
    return layout.trim(q, lead, vocab)


@functools.partial(jax.jit, static_argnames=("layout",))
def _valid_rows(x: jax.Array, *, layout: _Layout) -> jax.Array:
    vocab = x.shape[-1]
    x, lead, _ = _pad_logits(x, layout)
    axis, size = layout.vocab_axis, layout.local_vocab(vocab)

    def local(z: jax.Array) -> jax.Array:
        ok: jax.Array = samplers.valid_rows(z, vocab_axis=axis, vocab_size=size)
        return ok

    spec = layout.logit_spec(x.ndim)
    ok: jax.Array = jax.shard_map(
        local,
        mesh=layout.mesh,
        in_specs=(spec,),
        out_specs=layout.row_spec(len(lead)),
    )(layout.place(x, spec))
    return layout.trim(ok, lead, None)
