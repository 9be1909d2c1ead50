"""What every lab shares: its output folder, acceptance checks, tables and manifest."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

__all__ = ["Check", "LabReport", "default_out_dir", "environment", "print_table"]


def default_out_dir(name: str) -> Path:
    """``experiments/<YYYY-MM-DD>-<name>/`` under the current folder."""
    return Path.cwd() / "experiments" / f"{_dt.date.today().isoformat()}-{name}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, Any]:
    """Package versions and the device the lab ran on."""
    dev = jax.devices()[0]
    return {
        "versions": {p: _version(p) for p in ["jax", "jaxlib", "numpy", "optax", "jaxsample"]},
        "python": platform.python_version(),
        "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count()},
        "machine": platform.machine(),
    }


@dataclasses.dataclass(frozen=True)
class Check:
    """One acceptance line: what is checked, the measured value, the expectation, the verdict."""

    name: str
    measured: str
    expected: str
    passed: bool

    def line(self) -> str:
        """``PASS  name: measured (expected ...)``."""
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict}  {self.name}: {self.measured} (expected {self.expected})"


@dataclasses.dataclass
class LabReport:
    """Collects a lab's files, checks and parameters, then writes ``manifest.json``.

    Attributes:
        name: lab name (``temperature-sweep`` ...).
        out_dir: output folder, created on construction.
        seed: the lab's seed.
    """

    name: str
    out_dir: Path
    seed: int
    checks: list[Check] = dataclasses.field(default_factory=list)
    files: list[str] = dataclasses.field(default_factory=list)
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def check(self, name: str, measured: str, expected: str, passed: bool) -> Check:
        """Record (and return) an acceptance check."""
        c = Check(name, measured, expected, bool(passed))
        self.checks.append(c)
        return c

    def path(self, filename: str) -> Path:
        """Path of an output file, recorded in the manifest."""
        self.files.append(filename)
        return self.out_dir / filename

    def save_json(self, filename: str, data: Any) -> Path:
        """Write ``data`` as indented JSON."""
        p = self.path(filename)
        p.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
        return p

    @property
    def passed(self) -> bool:
        """True iff every check passed."""
        return all(c.passed for c in self.checks)

    def write_manifest(self) -> Path:
        """Write ``manifest.json``: seed, parameters, checks, files, versions, device."""
        manifest = {
            "lab": self.name,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "seed": self.seed,
            "parameters": self.parameters,
            **self.extra,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "all_passed": self.passed,
            "files": sorted(set(self.files)),
            **environment(),
        }
        p = self.out_dir / "manifest.json"
        p.write_text(json.dumps(manifest, indent=2) + "\n")
        return p

    def print_checks(self) -> None:
        """Print every acceptance line."""
        print("\nAcceptance checks")
        for c in self.checks:
            print("  " + c.line())
        print(
            f"\n{sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed; "
            f"files in {self.out_dir}"
        )


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print a plain-text table with right-aligned columns."""
    cells = [[str(h) for h in header]] + [[_fmt(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for j, r in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        if j == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)
