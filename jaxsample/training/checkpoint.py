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

Leaf naming, hashing and layout checks are :mod:`jaxsample.model.params`' (loading an
exported model uses them too, without orbax).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from jaxsample.model.params import (
    CheckpointError,
    check_layout,
    layout,
    leaf_digests,
)

__all__ = ["CheckpointDir"]

_META_ITEM = "meta"
_FILE_DIGESTS = "file_sha256.json"
_TRASH = ".trash"
_TMP_MARKER = ocp.path.atomicity.TMP_DIR_SUFFIX


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


class _AtomicRenameWithFileList(ocp.path.atomicity.AtomicRenameTemporaryPath):  # type: ignore[misc]
    """Orbax's write-to-tmp-then-rename commit, plus a list of the files it commits.

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
        return await super().finalize(*args, **kwargs)


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
            temporary_path_class=_AtomicRenameWithFileList,
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
            return layout(tree, is_leaf=lambda m: hasattr(m, "shape") and hasattr(m, "dtype"))
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
            check_layout(
                self._stored_layout(step, item), layout(target), f"checkpoint item {where}"
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
