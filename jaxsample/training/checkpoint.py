"""Atomic, verified checkpoints of array pytrees plus JSON metadata, on orbax-checkpoint.

A run folder's checkpoints live in ``<run>/checkpoints/<step>/``. Each step directory
holds one orbax item per array pytree (for training: ``params`` and ``train_state``)
and a JSON item ``meta``. Orbax writes a step into ``<step>.orbax-checkpoint-tmp`` and
renames it into place only once every item is on disk, so a process killed during a
save leaves the previous checkpoints untouched; leftovers of such a save are removed
when the folder is next opened for writing. Old steps beyond ``max_to_keep`` are first
moved into ``checkpoints/.trash`` (a rename, hence atomic) and then deleted.

Every step also carries ``file_sha256.json``, the SHA-256 of each file of its array
items, written into the temporary folder just before the commit (so it is committed
atomically with the files it lists).

Reading is defensive: :meth:`CheckpointDir.restore_arrays` first checks every file
against that list (a truncated or modified file is named before any of it is parsed),
then compares the stored shapes and dtypes with an *expected* abstract pytree,
restores into that structure, and checks each leaf's SHA-256 against the digest
recorded in the metadata at save time. Any mismatch or unreadable file raises
:class:`CheckpointError` naming the directory or file and the field; nothing partially
loaded is ever returned.

Test hook: if the environment variable ``JAXSAMPLE_TEST_KILL_DURING_SAVE`` is set to a
step number, the process sends itself ``SIGKILL`` while saving that step, after every
item has been written to the temporary directory and just before the rename that
commits it. It exists only so that the kill-during-save tests can hit the worst
moment deterministically; it has no effect when the variable is unset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

__all__ = [
    "KILL_DURING_SAVE_ENV",
    "CheckpointDir",
    "CheckpointError",
    "leaf_digests",
    "named_leaves",
    "params_sha256",
    "path_name",
]

KILL_DURING_SAVE_ENV = "JAXSAMPLE_TEST_KILL_DURING_SAVE"
"""Environment variable of the kill-during-save test hook (see the module docstring)."""

_META_ITEM = "meta"
_FILE_DIGESTS = "file_sha256.json"
_TRASH = ".trash"
_TMP_MARKER = ocp.path.atomicity.TMP_DIR_SUFFIX


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, damaged or does not match what was expected.

    The message names the checkpoint directory (or file) and, where one can be
    identified, the field that is wrong.
    """


def _sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def _file_digests(step_dir: Path) -> dict[str, str]:
    """SHA-256 of every file of the array items of a step folder, by relative path."""
    out: dict[str, str] = {}
    for path in sorted(step_dir.rglob("*")):
        rel = path.relative_to(step_dir)
        if path.is_file() and len(rel.parts) > 1 and rel.parts[0] != _META_ITEM:
            out[rel.as_posix()] = _sha256_file(path)
    return out


class _AtomicRenameWithTestHook(ocp.path.atomicity.AtomicRenameTemporaryPath):  # type: ignore[misc]
    """Orbax's write-to-tmp-then-rename commit, plus a file list and the test hook.

    Just before the rename, the SHA-256 of every array file is written into the
    temporary step folder (so the list is committed together with the files it
    describes); restoring checks it before any array is read.
    """

    async def finalize(self, *args: Any, **kwargs: Any) -> Any:
        final_name = self.get_final().name
        if final_name.isdigit():
            tmp = Path(str(self.get()))
            text = json.dumps(_file_digests(tmp), indent=0, sort_keys=True)
            with open(tmp / _FILE_DIGESTS, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        target = os.environ.get(KILL_DURING_SAVE_ENV)
        if target is not None and final_name == target.strip():
            os.kill(os.getpid(), signal.SIGKILL)
        return await super().finalize(*args, **kwargs)


# ---------------------------------------------------------------------------------------
# Leaf naming and hashing
# ---------------------------------------------------------------------------------------


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


def _first_line(err: BaseException, limit: int = 300) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else ""
    line = f"{type(err).__name__}: {line}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# The checkpoint folder
# ---------------------------------------------------------------------------------------


class CheckpointDir:
    """The ``checkpoints`` folder of a run: save, list and restore verified steps.

    Args:
        directory: The folder that holds one sub-folder per saved step.
        items: Names of the array pytrees stored in every step (``"meta"`` is
            reserved for the JSON metadata).
        max_to_keep: Number of most recent steps kept when saving.
        read_only: Open for reading only; nothing is created, cleaned or deleted.

    Raises:
        FileNotFoundError: If ``read_only`` and ``directory`` does not exist.
        ValueError: If ``items`` contains ``"meta"`` or ``max_to_keep < 1``.

    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        items: Iterable[str],
        *,
        max_to_keep: int = 3,
        read_only: bool = False,
    ) -> None:
        self.directory = Path(directory).absolute()
        self.items = tuple(items)
        if _META_ITEM in self.items:
            raise ValueError(f"item name {_META_ITEM!r} is reserved for the metadata")
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        self.read_only = read_only
        if read_only:
            if not self.directory.is_dir():
                raise FileNotFoundError(f"checkpoint folder {self.directory} does not exist")
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.remove_incomplete()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None if read_only else max_to_keep,
            save_interval_steps=0 if read_only else 1,
            enable_async_checkpointing=False,
            create=not read_only,
            read_only=read_only,
            todelete_subdir=None if read_only else _TRASH,
            temporary_path_class=_AtomicRenameWithTestHook,
        )
        # Orbax logs a warning whenever a folder is opened read-only; that is the
        # intended use here, so keep it off the user's terminal.
        absl_logger = logging.getLogger("absl")
        level = absl_logger.level
        if read_only:
            absl_logger.setLevel(logging.ERROR)
        try:
            self._manager = ocp.CheckpointManager(
                self.directory, options=options, handler_registry=self._registry()
            )
        finally:
            absl_logger.setLevel(level)

    def _registry(self) -> Any:
        registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
        for item in self.items:
            handler = ocp.StandardCheckpointHandler()
            registry.add(item, ocp.args.StandardSave, handler)
            registry.add(item, ocp.args.StandardRestore, handler)
        meta_handler = ocp.JsonCheckpointHandler()
        registry.add(_META_ITEM, ocp.args.JsonSave, meta_handler)
        registry.add(_META_ITEM, ocp.args.JsonRestore, meta_handler)
        return registry

    # -- housekeeping -------------------------------------------------------------------

    def remove_incomplete(self) -> list[str]:
        """Delete uncommitted saves (orbax temporary folders) and deleted-step leftovers.

        Returns:
            The names of the entries removed.

        """
        removed: list[str] = []
        for entry in sorted(self.directory.iterdir()):
            if _TMP_MARKER in entry.name or entry.name == _TRASH:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    def close(self) -> None:
        """Release orbax resources (idempotent)."""
        self._manager.close()

    def __enter__(self) -> CheckpointDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listing ------------------------------------------------------------------------

    def steps(self) -> list[int]:
        """Return the committed steps, ascending."""
        self._manager.reload()
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """Return the most recent committed step, or ``None`` if there is none."""
        steps = self.steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> Path:
        """Return the folder of a committed step."""
        return self.directory / str(step)

    # -- saving -------------------------------------------------------------------------

    def save(self, step: int, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
        """Write one step atomically and prune old steps.

        The per-leaf digests of every item are added to the metadata under
        ``"leaf_sha256"`` so that :meth:`restore_arrays` can detect silent damage.

        Args:
            step: Step number (the folder name); must not exist yet.
            arrays: One pytree of arrays per name in ``items``.
            meta: JSON-serialisable metadata (``"leaf_sha256"`` is overwritten).

        Returns:
            The committed step folder.

        Raises:
            ValueError: If the folder is read-only, the item names differ from
                ``items`` or ``meta`` is not JSON-serialisable.

        """
        if self.read_only:
            raise ValueError(f"checkpoint folder {self.directory} was opened read-only")
        if set(arrays) != set(self.items):
            raise ValueError(f"expected items {sorted(self.items)}, got {sorted(arrays)}")
        host = {name: jax.device_get(tree) for name, tree in arrays.items()}
        full_meta = dict(meta)
        full_meta["leaf_sha256"] = {name: leaf_digests(tree) for name, tree in host.items()}
        json.dumps(full_meta)  # fail before touching the disk if not serialisable
        args: dict[str, Any] = {name: ocp.args.StandardSave(tree) for name, tree in host.items()}
        args[_META_ITEM] = ocp.args.JsonSave(full_meta)
        self._manager.save(step, args=ocp.args.Composite(**args), force=True)
        self._manager.wait_until_finished()
        shutil.rmtree(self.directory / _TRASH, ignore_errors=True)
        return self.step_dir(step)

    # -- reading ------------------------------------------------------------------------

    def read_meta(self, step: int) -> dict[str, Any]:
        """Read the JSON metadata of a step.

        Args:
            step: A committed step.

        Returns:
            The metadata dict.

        Raises:
            CheckpointError: If the metadata file is missing, truncated or not a JSON
                object; the message names the file.

        """
        path = self.step_dir(step) / _META_ITEM
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(**{_META_ITEM: ocp.args.JsonRestore()})
            )
            meta = restored[_META_ITEM]
        except Exception as err:
            raise CheckpointError(
                f"checkpoint metadata {path} is unreadable ({_first_line(err)})"
            ) from err
        if not isinstance(meta, dict):
            raise CheckpointError(f"checkpoint metadata {path} is not a JSON object")
        return meta

    def _stored_layout(self, step: int, item: str) -> dict[str, tuple[tuple[int, ...], str]]:
        where = self.step_dir(step) / item
        try:
            metadata = ocp.StandardCheckpointHandler().metadata(where)
            tree = getattr(metadata, "tree", metadata)
            flat = named_leaves(tree, is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
            return {
                name: (tuple(int(d) for d in m.shape), np.dtype(m.dtype).name) for name, m in flat
            }
        except Exception as err:
            raise CheckpointError(
                f"checkpoint item {where} has unreadable metadata ({_first_line(err)})"
            ) from err

    def _check_files(self, step: int, items: Iterable[str]) -> None:
        step_dir = self.step_dir(step)
        listing = step_dir / _FILE_DIGESTS
        try:
            recorded = json.loads(listing.read_text(encoding="utf-8"))
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise CheckpointError(
                f"checkpoint file list {listing} is missing or unreadable ({_first_line(err)})"
            ) from err
        for item in items:
            names = sorted(n for n in recorded if str(n).startswith(f"{item}/"))
            if not names:
                raise CheckpointError(f"checkpoint file list {listing} has no files for '{item}'")
            for name in names:
                path = step_dir / name
                if not path.is_file():
                    raise CheckpointError(f"checkpoint file {path} is missing")
                if _sha256_file(path) != recorded[name]:
                    raise CheckpointError(
                        f"checkpoint file {path} is damaged (truncated or modified: its "
                        "SHA-256 differs from the one recorded when it was written)"
                    )

    def restore_arrays(
        self, step: int, targets: Mapping[str, Any], meta: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Restore array items into an expected structure, verifying every leaf.

        Every file of the requested items must match the step's file list; then, for
        each item, the stored leaf names, shapes and dtypes must equal those of the
        target exactly (no silent casting or padding); after reading, each leaf's
        SHA-256 must equal the digest recorded in ``meta["leaf_sha256"]``.

        Args:
            step: A committed step.
            targets: ``{item: pytree of jax.ShapeDtypeStruct}`` for the items to read
                (any subset of ``items``).
            meta: The step's metadata from :meth:`read_meta`.

        Returns:
            ``{item: pytree}`` with the structure of the targets and JAX array leaves.

        Raises:
            CheckpointError: If a file is missing or damaged (the message names it), or
                a leaf is missing, extra, of another shape or dtype, unreadable or fails
                its digest (the message names the item folder and the leaf).

        """
        self._check_files(step, targets)
        digests = meta.get("leaf_sha256")
        if not isinstance(digests, dict):
            raise CheckpointError(
                f"checkpoint metadata {self.step_dir(step) / _META_ITEM} has no 'leaf_sha256'"
            )
        for item, target in targets.items():
            where = self.step_dir(step) / item
            if item not in self.items:
                raise ValueError(f"unknown checkpoint item {item!r}; known: {self.items}")
            stored = self._stored_layout(step, item)
            expected = {
                name: (tuple(int(d) for d in leaf.shape), np.dtype(leaf.dtype).name)
                for name, leaf in named_leaves(target)
            }
            missing = sorted(set(expected) - set(stored))
            extra = sorted(set(stored) - set(expected))
            if missing:
                raise CheckpointError(f"checkpoint item {where} lacks field '{missing[0]}'")
            if extra:
                raise CheckpointError(f"checkpoint item {where} has unexpected field '{extra[0]}'")
            for name, (shape, dtype) in expected.items():
                got_shape, got_dtype = stored[name]
                if got_shape != shape:
                    raise CheckpointError(
                        f"checkpoint item {where}: field '{name}' has shape {got_shape}, "
                        f"expected {shape}"
                    )
                if got_dtype != dtype:
                    raise CheckpointError(
                        f"checkpoint item {where}: field '{name}' has dtype {got_dtype}, "
                        f"expected {dtype}"
                    )
            if not isinstance(digests.get(item), dict):
                raise CheckpointError(
                    f"checkpoint metadata {self.step_dir(step) / _META_ITEM} has no digests "
                    f"for item '{item}'"
                )
        try:
            restored = self._manager.restore(
                step,
                args=ocp.args.Composite(
                    **{item: ocp.args.StandardRestore(t) for item, t in targets.items()}
                ),
            )
        except Exception as err:
            raise CheckpointError(
                f"checkpoint {self.step_dir(step)} could not be read ({_first_line(err)})"
            ) from err
        out: dict[str, Any] = {}
        for item in targets:
            tree = restored[item]
            recorded = digests[item]
            actual = leaf_digests(tree)
            for name, digest in actual.items():
                if recorded.get(name) != digest:
                    raise CheckpointError(
                        f"checkpoint item {self.step_dir(step) / item}: field '{name}' is "
                        "damaged (its SHA-256 differs from the one recorded at save time)"
                    )
            out[item] = tree
        return out
