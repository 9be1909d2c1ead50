"""Parameter pytrees by name: naming, fingerprinting and checking a stored layout.

These are the pieces that loading a model and restoring a training checkpoint share:
a leaf is named by its ``/``-joined path (``"h/0/attn/c_attn/w"``), a pytree is
fingerprinted by the SHA-256 of its named leaves, and a stored set of leaves is
checked against the layout that ``init_params`` would build before any of it is used.
Nothing here needs the optimiser or orbax.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np

from jaxsample.model.gpt import GPTConfig, Params, init_params

__all__ = [
    "CheckpointError",
    "Layout",
    "abstract_params",
    "check_layout",
    "layout",
    "leaf_digests",
    "named_leaves",
    "params_sha256",
    "path_name",
]

Layout = Mapping[str, tuple[tuple[int, ...], str]]
"""Leaf name -> (shape, dtype name)."""


class CheckpointError(ValueError):
    """A checkpoint or model file is missing, unreadable, damaged or not what was expected.

    The message names the checkpoint directory (or file) and, where one can be
    identified, the field that is wrong.
    """


def path_name(path: Iterable[Any]) -> str:
    """Return the ``/``-joined name of a pytree key path (dict keys, indices, fields).

    Args:
        path: A key path from ``jax.tree_util.tree_flatten_with_path``.

    Returns:
        E.g. ``"h/0/attn/c_attn/w"``.

    """
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return "/".join(parts)


def named_leaves(
    tree: Any, *, is_leaf: Callable[[Any], bool] | None = None
) -> list[tuple[str, Any]]:
    """List a pytree's leaves with ``/``-joined path names, sorted by name.

    Dict keys, sequence indices and named-tuple field names become path components,
    e.g. ``"h/0/attn/c_attn/w"`` or ``"opt_state/1/0/mu/wte"``. ``None`` and empty
    containers contribute no leaves.

    Args:
        tree: Any pytree.
        is_leaf: Optional predicate marking subtrees to treat as leaves.

    Returns:
        ``(name, leaf)`` pairs in lexicographic order of ``name``.

    Raises:
        ValueError: If two leaves get the same name.

    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)
    named = sorted((path_name(path), leaf) for path, leaf in flat)
    names = [name for name, _ in named]
    if len(set(names)) != len(names):
        raise ValueError(f"pytree has duplicate leaf names: {names}")
    return named


def _leaf_bytes(leaf: Any) -> tuple[np.ndarray[Any, Any], bytes]:
    arr = np.ascontiguousarray(np.asarray(leaf))
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr, arr.tobytes()


def _hash_leaf(hasher: Any, name: str, leaf: Any) -> None:
    arr, raw = _leaf_bytes(leaf)
    hasher.update(f"{name}\0{arr.dtype.name}\0{arr.shape}\0".encode())
    hasher.update(raw)


def params_sha256(params: Any) -> str:
    """Compute the SHA-256 of a parameter pytree, independent of how it is stored.

    The hash covers every leaf in the canonical order of :func:`named_leaves`; for each
    leaf it absorbs the path name, the dtype name, the shape and the raw little-endian
    C-order bytes. Two pytrees have the same digest iff they have the same leaf names,
    dtypes, shapes and bit patterns (so ``0.0`` and ``-0.0`` differ, as do two NaN
    payloads).

    Args:
        params: Pytree of arrays (JAX or NumPy), e.g. model parameters.

    Returns:
        The 64-character lowercase hex digest.

    """
    hasher = hashlib.sha256()
    for name, leaf in named_leaves(params):
        _hash_leaf(hasher, name, leaf)
    return hasher.hexdigest()


def leaf_digests(tree: Any) -> dict[str, str]:
    """Compute the SHA-256 of each leaf of a pytree (name, dtype, shape, bytes), by name.

    Args:
        tree: Pytree of arrays.

    Returns:
        ``{name: hex digest}`` with the names of :func:`named_leaves`.

    """
    out: dict[str, str] = {}
    for name, leaf in named_leaves(tree):
        hasher = hashlib.sha256()
        _hash_leaf(hasher, name, leaf)
        out[name] = hasher.hexdigest()
    return out


def abstract_params(config: GPTConfig) -> Params:
    """The parameter structure of a model, as ``jax.ShapeDtypeStruct`` leaves.

    Args:
        config: The model configuration.

    Returns:
        What :func:`jaxsample.model.init_params` returns for ``config``, without
        computing (or allocating) any array.

    """
    return jax.eval_shape(  # type: ignore[no-any-return]
        functools.partial(init_params, config=config), jax.random.key(0)
    )


def layout(tree: Any, *, is_leaf: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """The named shapes and dtype names of a pytree's leaves (arrays or abstract arrays).

    Args:
        tree: Pytree whose leaves have ``shape`` and ``dtype``.
        is_leaf: Optional predicate marking subtrees to treat as leaves.

    Returns:
        ``{name: (shape, dtype name)}`` with the names of :func:`named_leaves`.

    """
    return {
        name: (tuple(int(d) for d in leaf.shape), np.dtype(leaf.dtype).name)
        for name, leaf in named_leaves(tree, is_leaf=is_leaf)
    }


def check_layout(stored: Layout, expected: Layout, where: str) -> None:
    """Check stored leaves against the expected ones: same names, shapes and dtypes.

    Nothing is cast, padded or ignored: a missing or extra leaf, or one of another
    shape or dtype, is an error.

    Args:
        stored: The layout found in the file or checkpoint item.
        expected: The layout wanted, e.g. ``layout(abstract_params(config))``.
        where: What was read, for the message (e.g. a file path).

    Raises:
        CheckpointError: Naming ``where`` and the first leaf (in name order) that is
            missing, unexpected or has the wrong shape or dtype.

    """
    missing = sorted(set(expected) - set(stored))
    extra = sorted(set(stored) - set(expected))
    if missing:
        raise CheckpointError(f"{where} lacks field '{missing[0]}'")
    if extra:
        raise CheckpointError(f"{where} has unexpected field '{extra[0]}'")
    for name, (shape, dtype) in expected.items():
        got_shape, got_dtype = stored[name]
        if got_shape != shape:
            raise CheckpointError(
                f"{where}: field '{name}' has shape {got_shape}, expected {shape}"
            )
        if got_dtype != dtype:
            raise CheckpointError(
                f"{where}: field '{name}' has dtype {got_dtype}, expected {dtype}"
            )
