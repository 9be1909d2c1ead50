"""Sampling logits that live on more than one device.

A tensor-parallel model produces its logits split over the vocabulary: device
``i`` of mesh axis ``vocab_axis`` holds the contiguous slice of tokens
``[i * V_pad / n, (i + 1) * V_pad / n)``. Gathering the rows onto every device to
sample them moves the whole ``[B, V]`` array; :func:`sample` instead runs
``jaxsample.sample(..., vocab_axis=...)`` inside :func:`jax.shard_map`, where the
strategy's reductions (maxima, sums, masses above a pivot) become collectives over
``vocab_axis`` that carry a few scalars per row and shard (a top-k part: its
``k`` candidates per row and shard). The batch may at the
same time be split over another mesh axis, ``batch_axis``.

The result is the token ids, bit for bit, that ``jaxsample.sample(key, logits,
strategy)`` draws on one device with the same key:

* a single ``key`` gives row ``r`` (row-major over the leading axes) the key
  ``jax.random.fold_in(key, r)`` with ``r`` the *global* row index, derived before
  the batch is split;
* a vocabulary whose size ``V`` is not a multiple of :data:`VOCAB_MULTIPLE` is
  padded with ``-inf`` up to the next multiple (:func:`pad_vocab`), and the
  sampler is told the true ``V``, so a padding token is never drawn;
* a batch whose first axis is not a multiple of the ``batch_axis`` size is padded
  with rows that are dropped from the result.

Example (eight simulated CPU devices; the flag must be set before JAX starts)::

    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jaxsample as js
    from jaxsample import sharding

    mesh = jax.make_mesh((2, 4), ("dp", "tp"))
    logits = jax.random.normal(jax.random.key(0), (16, 50257))
    ids = sharding.sample(jax.random.key(1), logits, js.TopP(0.9, tau=0.8), mesh=mesh)
    assert (ids == js.sample(jax.random.key(1), logits, js.TopP(0.9, tau=0.8))).all()

Nothing here depends on the kind of device: the same code runs on a GPU or TPU
pod, where the mesh spans the chips of every host (see :func:`jax.make_mesh`).
"""

from __future__ import annotations

import functools
import math
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxsample import samplers
from jaxsample._checks import check_key
from jaxsample.samplers import Strategy

__all__ = [
    "MAX_VOCAB_SHARDS",
    "VOCAB_MULTIPLE",
    "pad_vocab",
    "padded_vocab",
    "probs",
    "sample",
    "valid_rows",
]

#: The padded vocabulary width is a multiple of this (the sampler's column layout).
VOCAB_MULTIPLE: int = samplers.VOCAB_MULTIPLE
#: The number of vocabulary shards must divide this.
MAX_VOCAB_SHARDS: int = samplers.MAX_VOCAB_SHARDS


def padded_vocab(vocab: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """The smallest multiple of ``multiple`` that is ``>= vocab``.

    Args:
        vocab: The true vocabulary size, ``>= 1``.
        multiple: The required multiple, ``>= 1``.

    Returns:
        ``ceil(vocab / multiple) * multiple``.

    Raises:
        ValueError: If either argument is not an int ``>= 1``.
    """
    vocab = _positive_int("vocab", vocab)
    multiple = _positive_int("multiple", multiple)
    return -(-vocab // multiple) * multiple


def pad_vocab(logits: jax.Array, multiple: int = VOCAB_MULTIPLE) -> jax.Array:
    """Pad the last axis of ``logits`` with ``-inf`` up to a multiple of ``multiple``.

    A ``-inf`` logit has probability 0 under every strategy, so the padded row has
    the same distribution as the original one over its first ``V`` tokens; pass
    ``vocab_size=V`` to ``jaxsample.sample`` inside ``shard_map`` so that even a
    row with no usable logit (all ``-inf`` or NaN, drawn uniformly) never yields a
    padding token.

    Args:
        logits: ``[..., V]`` real logits (float dtypes are kept; integers become
            float32, which can hold ``-inf``).
        multiple: The width must become a multiple of this, ``>= 1`` (default
            :data:`VOCAB_MULTIPLE`, what the vocabulary-sharded sampler needs).

    Returns:
        ``[..., ceil(V / multiple) * multiple]``; ``logits`` itself (cast if it
        was an integer array) when ``V`` already is a multiple.

    Raises:
        ValueError: If ``logits`` is not ``[..., V]`` with ``V >= 1`` or not real,
            or ``multiple`` is not an int ``>= 1``.
    """
    x = _check_logits(logits)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.float32)
    width = padded_vocab(x.shape[-1], multiple)
    if width == x.shape[-1]:
        return x
    pad = [(0, 0)] * (x.ndim - 1) + [(0, width - x.shape[-1])]
    return jnp.pad(x, pad, constant_values=-jnp.inf)


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
    layout = _Layout.of(mesh, vocab_axis, batch_axis)
    x = _check_logits(logits)
    lead = x.shape[:-1]
    layout.check_lead(lead)
    _check_strategy(strategy, lead)
    keys = _row_keys(check_key(key, lead), lead)
    ids: jax.Array = _sample(keys, x, strategy, layout=layout)
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
    layout = _Layout.of(mesh, vocab_axis, batch_axis)
    x = _check_logits(logits)
    layout.check_lead(x.shape[:-1])
    _check_strategy(strategy, x.shape[:-1])
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
    layout = _Layout.of(mesh, vocab_axis, batch_axis)
    x = _check_logits(logits)
    layout.check_lead(x.shape[:-1])
    out: jax.Array = _valid_rows(x, layout=layout)
    return out


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


def _spec(*axes: str | None) -> PartitionSpec:
    """``PartitionSpec(*axes)``: one entry per array axis, ``None`` for unsplit."""
    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be an int >= 1, got {number}")
    return number


def _check_logits(logits: Any) -> jax.Array:
    x = logits if isinstance(logits, jax.Array) else jnp.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"logits must be real numbers, got dtype {x.dtype}")
    return x


def _check_strategy(strategy: Any, lead: tuple[int, ...]) -> None:
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a jaxsample strategy, got {strategy!r}")
    for leaf in jax.tree_util.tree_leaves(strategy):
        shape = tuple(np.shape(leaf))
        try:
            full = np.broadcast_shapes(shape, lead)
        except ValueError:
            full = None
        if full != lead:
            raise ValueError(
                f"strategy parameters must broadcast against the rows {lead}; got a "
                f"parameter of shape {shape}"
            )


class _Layout:
    """How the rows and the vocabulary are split: a hashable jit static argument."""

    def __init__(self, mesh: Mesh, vocab_axis: str | None, batch_axis: str | None) -> None:
        self.mesh = mesh
        self.vocab_axis = vocab_axis
        self.batch_axis = batch_axis
        self.vocab_shards = 1 if vocab_axis is None else int(mesh.shape[vocab_axis])
        self.batch_shards = 1 if batch_axis is None else int(mesh.shape[batch_axis])
        self.explicit = all(t == AxisType.Explicit for t in mesh.axis_types)

    @classmethod
    def of(cls, mesh: Any, vocab_axis: Any, batch_axis: Any) -> _Layout:
        if not isinstance(mesh, Mesh):
            raise ValueError(
                f"mesh must be a jax.sharding.Mesh (e.g. jax.make_mesh), got {type(mesh).__name__}"
            )
        names = tuple(mesh.axis_names)
        for role, name in (("vocab_axis", vocab_axis), ("batch_axis", batch_axis)):
            if name is None:
                continue
            if not isinstance(name, str) or name not in names:
                raise ValueError(
                    f"{role} must be None or one of the mesh's axes {names}, got {name!r}"
                    + (f"; pass {role}=None to leave it unsplit" if isinstance(name, str) else "")
                )
        if vocab_axis is not None and vocab_axis == batch_axis:
            raise ValueError(
                f"vocab_axis and batch_axis must be different mesh axes, both are {vocab_axis!r}"
            )
        kinds = {t == AxisType.Explicit for t in mesh.axis_types}
        if len(kinds) > 1:
            raise ValueError(
                "the mesh's axes must be all explicit or all automatic, got axis types "
                f"{tuple(str(t) for t in mesh.axis_types)}"
            )
        layout = cls(mesh, vocab_axis, batch_axis)
        n = layout.vocab_shards
        if MAX_VOCAB_SHARDS % n:
            raise ValueError(
                f"the vocabulary axis {vocab_axis!r} has {n} devices; the number of "
                f"vocabulary shards must divide {MAX_VOCAB_SHARDS} (1, 2, 4, 8 or 16): "
                "reshape the mesh so that this axis has fewer devices"
            )
        return layout

    def check_lead(self, lead: tuple[int, ...]) -> None:
        if self.batch_shards > 1 and not lead:
            raise ValueError(
                f"logits of shape [V] have no batch axis to split over {self.batch_axis!r} "
                f"({self.batch_shards} devices); pass batch_axis=None"
            )

    def _key(self) -> tuple[Any, ...]:
        return (self.mesh, self.vocab_axis, self.batch_axis)

    def __hash__(self) -> int:
        return hash(self._key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Layout) and self._key() == other._key()

    def pad(self, x: jax.Array) -> jax.Array:
        """``pad_vocab(x)`` when the vocabulary is split, else ``x``."""
        return x if self.vocab_axis is None else pad_vocab(x)

    def local_vocab(self, vocab: int) -> int | None:
        """The ``vocab_size`` argument of the sampler inside ``shard_map``."""
        return None if self.vocab_axis is None else vocab

    def place(self, tree: Any, specs: Any) -> Any:
        """Lay ``tree`` out on the mesh as ``specs`` says (a pytree prefix of it).

        Needed on a mesh with explicit axes (the default of :func:`jax.make_mesh`),
        where ``shard_map`` takes its inputs only as they are already laid out;
        on automatic axes it is a sharding constraint.
        """

        def one(spec: PartitionSpec, sub: Any) -> Any:
            return jax.tree_util.tree_map(lambda a: self.lay_out(a, spec), sub)

        return jax.tree_util.tree_map(
            one, specs, tree, is_leaf=lambda v: isinstance(v, PartitionSpec)
        )

    def trim(self, a: jax.Array, lead: tuple[int, ...], vocab: int | None) -> jax.Array:
        """Drop the padding rows (and columns beyond ``vocab``) from a ``shard_map`` result.

        A padded axis is first gathered (on a mesh with explicit axes a slice must
        keep each shard's size): the ids of the padding rows are a few scalars, but
        the vocabulary of :func:`probs` is a whole row, so keep ``V`` a multiple of
        :data:`VOCAB_MULTIPLE` where that matters.
        """
        spec = list(self.logit_spec(a.ndim) if vocab is not None else self.row_spec(a.ndim))
        index: list[slice] = [slice(None)] * a.ndim
        if lead and a.shape[0] != lead[0]:
            spec[0] = None
            index[0] = slice(0, lead[0])
        if vocab is not None and a.shape[-1] != vocab:
            spec[-1] = None
            index[-1] = slice(0, vocab)
        if all(i == slice(None) for i in index):
            return a
        out: jax.Array = self.lay_out(a, _spec(*spec))[tuple(index)]
        return out

    def lay_out(self, a: jax.Array, spec: PartitionSpec) -> jax.Array:
        """``a`` laid out as ``spec``: a reshard on explicit axes, else a constraint."""
        sharding = NamedSharding(self.mesh, spec)
        out: jax.Array
        if self.explicit:
            out = jax.reshard(a, sharding)  # type: ignore[no-untyped-call]
        else:
            out = jax.lax.with_sharding_constraint(a, sharding)  # type: ignore[no-untyped-call]
        return out

    def row_spec(self, ndim: int) -> PartitionSpec:
        """The partition of an array whose first ``ndim`` axes are the rows."""
        if ndim == 0:
            return _spec()
        return _spec(self.batch_axis, *([None] * (ndim - 1)))

    def logit_spec(self, ndim: int) -> PartitionSpec:
        """The partition of ``[..., V_pad]`` logits of ``ndim`` axes in all."""
        rows = [self.batch_axis, *([None] * (ndim - 2))] if ndim > 1 else []
        return _spec(*rows, self.vocab_axis)


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


def _split(
    x: jax.Array, strategy: Strategy, keys: jax.Array | None, layout: _Layout
) -> tuple[jax.Array, Strategy, jax.Array | None, tuple[int, ...], Any]:
    """Pad rows and vocabulary; per-row parameters broadcast; the shard_map in_specs."""
    lead = x.shape[:-1]
    rows = -(-lead[0] // layout.batch_shards) * layout.batch_shards if lead else 0
    x = layout.pad(x)
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
    if lead:
        x = _pad_rows(x, rows)
        keys = None if keys is None else _pad_rows(keys, rows)
    padded = jax.tree_util.tree_unflatten(tree, params)
    strategy_spec = jax.tree_util.tree_unflatten(tree, specs)
    return x, padded, keys, lead, strategy_spec


@functools.partial(jax.jit, static_argnames=("layout",))
def _sample(keys: jax.Array, x: jax.Array, strategy: Strategy, *, layout: _Layout) -> jax.Array:
    vocab = x.shape[-1]
    x, strategy, padded_keys, lead, strategy_spec = _split(x, strategy, keys, layout)
    axis, size = layout.vocab_axis, layout.local_vocab(vocab)

    def local(k: jax.Array, z: jax.Array, s: Strategy) -> jax.Array:
        ids: jax.Array = samplers.sample(k, z, s, vocab_axis=axis, vocab_size=size)
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
    lead = x.shape[:-1]
    rows = -(-lead[0] // layout.batch_shards) * layout.batch_shards if lead else 0
    x = layout.pad(x)
    if lead:
        x = _pad_rows(x, rows)
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
