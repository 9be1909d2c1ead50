"""Shared test fixtures."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# The tests write nothing outside their temporary folders: no compilation cache in
# the user's cache folder (the command line would otherwise turn it on).
os.environ.setdefault("JAXSAMPLE_CACHE_DIR", "off")

import jax
import pytest


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(20261122)


@dataclasses.dataclass(frozen=True)
class LabRun:
    """One ``jaxsample lab NAME --quick`` run through the command line."""

    name: str
    status: int
    stdout: str
    out: Path
    manifest: dict[str, Any]


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], LabRun]:
    """Run a lab's quick mode once per test session (seed 0) and share the result.

    Every lab test that reads the quick run's output reuses it, so each lab is run
    (and compiled) once for the whole suite.
    """
    from jaxsample.cli import main

    runs: dict[str, LabRun] = {}

    def run(name: str) -> LabRun:
        if name not in runs:
            out = tmp_path_factory.mktemp(f"lab-{name}")
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                status = main(["lab", name, "--quick", "--out", str(out)])
            manifest = json.loads((out / "manifest.json").read_text())
            runs[name] = LabRun(name, status, buffer.getvalue(), out, manifest)
        return runs[name]

    return run
