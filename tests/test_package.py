"""The package's shape: what importing it loads, its public surface, who imports whom."""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxsample"


def _run(code: str) -> str:
    """Run Python code in a fresh interpreter; return what it printed."""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return proc.stdout.strip()


TRAINING_STACK = "sorted({m.split('.')[0] for m in sys.modules} & {'optax', 'orbax'})"


def test_import_jaxsample_loads_neither_optax_nor_orbax() -> None:
    imports = "import sys, jaxsample, jaxsample.model, jaxsample.decoding, jaxsample.samplers"
    assert _run(f"{imports}; print({TRAINING_STACK})") == "[]"


def test_loading_the_shipped_model_needs_no_training_stack() -> None:
    load = "import sys; from jaxsample.model import load_pretrained; load_pretrained()"
    printed = _run(f"{load}; print({TRAINING_STACK}, 'jaxsample.training' in sys.modules)")
    assert printed == "[] False"


@pytest.mark.parametrize(
    "name",
    [
        "jaxsample",
        "jaxsample.analysis",
        "jaxsample.data",
        "jaxsample.decoding",
        "jaxsample.labs",
        "jaxsample.model",
        "jaxsample.samplers",
        "jaxsample.training",
    ],
)
def test_every_exported_name_exists_and_is_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    for export in module.__all__:
        value = getattr(module, export)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert value.__doc__, f"{name}.{export} has no docstring"


def _imports(path: Path) -> list[str]:
    """Every module a file imports (at any depth, lazily or not)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def _room(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(rel.parts[:2]) if len(rel.parts) > 2 else ".".join(rel.parts)


def test_no_module_imports_another_subpackages_private_module() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(path)
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "jaxsample" or len(parts) < 3:
                continue
            owner = ".".join(parts[:2])
            private = any(p.startswith("_") and p != "__init__" for p in parts[2:])
            assert not private or owner == room, f"{path}: imports {name}"


def test_only_training_and_the_exercises_lab_import_training() -> None:
    # Loading a run folder (an orbax checkpoint) reads it through training, on demand.
    lazy = {PACKAGE / "model" / "pretrained.py"}
    users = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if not any(n.startswith("jaxsample.training") for n in _imports(path)):
            continue
        users.append(path)
        inside = path.is_relative_to(PACKAGE / "training")
        exercises = path.is_relative_to(PACKAGE / "labs" / "exercises")
        assert inside or exercises or path in lazy, f"{path} imports jaxsample.training"
    assert PACKAGE / "labs" / "exercises" / "resume.py" in users  # the check sees imports
