"""The strategies that act on token ids: a logit bias, an allow list, a ban list.

See :mod:`._vocabulary` for what they share with the other engine strategies.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.samplers._strategies import (
    Strategy,
    _check_real,
    _concrete,
    _pytree,
)
from jaxsample.samplers._vocabulary import settle

__all__ = [
    "Allow",
    "Ban",
    "LogitBias",
]


def _check_finite_bias(bias: Any) -> None:
    _check_real("bias", bias, lambda a: ~np.isnan(a) & (a < np.inf), "finite or -inf, not NaN")


@_pytree
@dataclasses.dataclass(frozen=True)
class LogitBias(Strategy):
    """Add a bias to the logits: ``z + bias`` (the OpenAI ``logit_bias`` and vLLM's).

    Args:
        bias: float ``[V]`` (every row) or ``[..., V]`` (per row), broadcast against
            the logits. ``-inf`` removes a token. A row that the bias would leave
            without a finite entry is left unchanged; traced NaN entries remove the
            token and traced ``+inf`` entries keep only those tokens (uniformly).

    Raises:
        ValueError: at construction, for a concrete bias holding NaN or ``+inf``, or
            of zero rank.
    """

    bias: Any

    TRAILING: ClassVar[frozenset[str]] = frozenset({"bias"})

    def __post_init__(self) -> None:
        arr = _concrete(self.bias)
        if arr is not None and arr.ndim < 1:
            raise ValueError(f"bias must have shape [V] or [..., V], got shape {arr.shape}")
        _check_finite_bias(self.bias)

    def log_weights(self, z: jax.Array) -> jax.Array:
        """``z + bias``, kept valid (see the class docstring); ``[..., V]`` float32."""
        return settle(z + jnp.asarray(self.bias, jnp.float32), z)


@_pytree
@dataclasses.dataclass(frozen=True)
class Allow(Strategy):
    """Keep only the allowed tokens (vLLM's ``allowed_token_ids``).

    Args:
        mask: bool ``[V]`` or ``[..., V]``, True where a token may be drawn. A row
            that allows none of its finite tokens is left unchanged (a strategy
            keeps at least one token).

    Raises:
        ValueError: at construction, for a concrete mask that is not boolean or of
            zero rank.
    """

    mask: Any

    TRAILING: ClassVar[frozenset[str]] = frozenset({"mask"})

    def __post_init__(self) -> None:
        arr = _concrete(self.mask)
        if arr is not None and (arr.dtype != np.bool_ or arr.ndim < 1):
            raise ValueError(
                f"mask must be a bool array [V] or [..., V], got {arr.dtype} {arr.shape}"
            )

    def log_weights(self, z: jax.Array) -> jax.Array:
        """``z`` where allowed, ``-inf`` elsewhere; ``[..., V]`` float32."""
        return settle(jnp.where(jnp.asarray(self.mask, bool), z, -jnp.inf), z)


def scatter_max(ids: jax.Array, values: jax.Array, vocab: int, empty: Any) -> jax.Array:
    """``[..., V]``: at each id of ``ids`` ``[..., n]`` the largest of its ``values``.

    Tokens without an id hold ``empty``.

    Ids outside ``[0, V)`` are dropped. One scatter per row, never a ``[..., n, V]``
    comparison.
    """
    lead, n = ids.shape[:-1], ids.shape[-1]
    flat = ids.reshape(-1, n)
    rows = jnp.arange(flat.shape[0])[:, None]
    target = jnp.where((flat >= 0) & (flat < vocab), flat, vocab)
    base = jnp.full((flat.shape[0], vocab), empty, values.dtype)
    out = base.at[rows, target].max(jnp.broadcast_to(values, ids.shape).reshape(-1, n), mode="drop")
    return out.reshape(*lead, vocab)


def id_mask(ids: jax.Array, vocab: int) -> jax.Array:
    """Bool ``[..., V]``: True at the ids of ``ids`` ``[..., n]`` in ``[0, V)`` (others ignored)."""
    return scatter_max(ids, jnp.ones(ids.shape, bool), vocab, False)


@_pytree
@dataclasses.dataclass(frozen=True)
class Ban(Strategy):
    """Remove the given token ids (Hugging Face's ``bad_words_ids`` of single tokens).

    Args:
        ids: int ``[n]`` (every row) or ``[..., n]`` (per row). Ids outside ``[0, V)``
            ban nothing, so ``-1`` can pad per-row lists of different lengths. A row
            that would lose every finite token is left unchanged.

    Raises:
        ValueError: at construction, for concrete ids that are not integers or
            have zero rank.
    """

    ids: Any

    TRAILING: ClassVar[frozenset[str]] = frozenset({"ids"})

    def __post_init__(self) -> None:
        arr = _concrete(self.ids)
        if arr is not None and (
            not np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_ or arr.ndim < 1
        ):
            raise ValueError(f"ids must be an integer array [n] or [..., n], got {self.ids!r}")

    def log_weights(self, z: jax.Array) -> jax.Array:
        """``-inf`` at the banned ids; ``[..., V]`` float32."""
        banned = id_mask(jnp.asarray(self.ids, jnp.int32), z.shape[-1])
        return settle(jnp.where(banned, -jnp.inf, z), z)
