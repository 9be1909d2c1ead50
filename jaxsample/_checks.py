"""Validators shared by the samplers and the decode loop: one check per kind of input.

Both run on the host, before anything is traced, so a bad argument raises a
``ValueError`` that names it instead of a tracer error from deep inside ``jit``.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

__all__ = ["check_int", "check_key", "check_strategy", "dataclass_from_dict"]

_T = TypeVar("_T")


def check_key(key: ArrayLike, lead: tuple[int, ...] | None = None) -> jax.Array:
    """Return ``key`` as a typed PRNG key, checking its dtype and (optionally) its shape.

    Args:
        key: A ``jax.random.key`` array, or legacy uint32 ``PRNGKey`` data with a last
            axis of 2 (wrapped with ``jax.random.wrap_key_data``).
        lead: If given, the key must be a single key (shape ``()``) or have exactly
            this shape (one key per row); ``None`` accepts any shape.

    Returns:
        The typed key array.

    Raises:
        ValueError: If ``key`` is neither a typed key nor uint32 key data, or its shape
            is neither ``()`` nor ``lead``.

    """
    k = key if isinstance(key, jax.Array) else jnp.asarray(key)
    if not jnp.issubdtype(k.dtype, jax.dtypes.prng_key):
        if k.dtype != jnp.uint32 or k.shape[-1:] != (2,):
            raise ValueError(
                "key must be a jax.random.key (or a legacy uint32 PRNGKey), "
                f"got dtype {k.dtype} and shape {k.shape}"
            )
        k = jax.random.wrap_key_data(k)
    if lead is not None and k.shape not in ((), lead):
        raise ValueError(
            f"key must be a single key or one key per row with shape {lead}, got shape {k.shape}"
        )
    return k


def check_strategy(strategy: Any, batch: int | None = None) -> None:
    """Check that ``strategy`` is a jaxsample strategy (and fits a batch of rows).

    Args:
        strategy: The value passed as a strategy.
        batch: If given, every numeric parameter must be a scalar, shape ``(1,)`` or
            shape ``(batch,)`` (one value per row).

    Raises:
        ValueError: If ``strategy`` is not a :class:`jaxsample.Strategy`, or a
            parameter's shape does not fit ``batch`` (the message gives both shapes).

    """
    from jaxsample.samplers import Strategy, check_rows  # the samplers import this module

    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy must be a jaxsample strategy, got {strategy!r}")
    if batch is not None:
        check_rows(strategy, batch)


def dataclass_from_dict(cls: type[_T], d: Mapping[str, Any]) -> _T:
    """Build a dataclass from a mapping that holds exactly its fields (``to_dict``'s inverse).

    Args:
        cls: A dataclass type; its own ``__post_init__`` checks the values.
        d: Mapping with exactly the field names as keys.

    Returns:
        ``cls(**d)``.

    Raises:
        ValueError: If keys are missing or unknown (the message names them and
            ``cls``), or as ``cls`` does for an invalid value.

    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    missing = [k for k in names if k not in d]
    unknown = sorted(str(k) for k in d if k not in names)
    if missing or unknown:
        raise ValueError(
            f"{cls.__name__}.from_dict: missing keys {missing}, unknown keys {unknown}"
        )
    return cls(**{k: d[k] for k in names})


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as a Python int in ``[low, high)`` (``[low, inf)`` without ``high``).

    Args:
        name: The argument's name, for the message.
        value: Any integer (Python, NumPy or a 0-d integer array): ``operator.index``
            must accept it.
        low: The smallest value allowed.
        high: One past the largest value allowed; ``None`` for no upper bound.

    Returns:
        ``value`` as an ``int``.

    Raises:
        ValueError: If ``value`` is a ``bool`` or not an integer, or lies outside the
            range (the message names the argument, the range and the value).

    """
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an int, got {value!r}") from None
    if number < low or (high is not None and number >= high):
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{name} must be {bound}, got {number}")
    return number
