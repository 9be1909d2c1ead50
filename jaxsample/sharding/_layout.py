"""The layout of a sharded sampling call: which mesh axes split the rows and the vocabulary.

:class:`_Layout` checks the mesh and the axis names once and answers every question
the ``shard_map`` set-up asks: the partition specs of rows and logits, the padding of
the vocabulary (:func:`pad_vocab`) and of the rows, and how a result is trimmed back.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxsample import samplers
from jaxsample._checks import check_int, check_strategy

__all__ = ["MAX_VOCAB_SHARDS", "VOCAB_MULTIPLE", "pad_vocab", "padded_vocab"]

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
    vocab = check_int("vocab", vocab, 1)
    multiple = check_int("multiple", multiple, 1)
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


def _spec(*axes: str | None) -> PartitionSpec:
    """``PartitionSpec(*axes)``: one entry per array axis, ``None`` for unsplit."""
    return PartitionSpec(*axes)  # type: ignore[no-untyped-call]


def _check_logits(logits: Any) -> jax.Array:
    """``logits`` as a ``jax.Array`` of real numbers with shape ``[..., V]``, ``V >= 1``."""
    x = logits if isinstance(logits, jax.Array) else jnp.asarray(logits)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got shape {x.shape}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"logits must be real numbers, got dtype {x.dtype}")
    return x


def _check_strategy(strategy: Any, lead: tuple[int, ...]) -> None:
    """Check that ``strategy`` is a strategy whose parameters broadcast against ``lead``."""
    check_strategy(strategy)
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
        """The checked layout of a call (see the ``Raises`` of ``jaxsample.sharding.sample``)."""
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
        """Raise ``ValueError`` if a split batch axis meets logits without rows (``lead == ()``)."""
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
