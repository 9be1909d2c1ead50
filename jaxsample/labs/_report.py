"""What every lab shares: its output folder, checks, findings, tables and manifest.

A lab separates two kinds of result:

* a *check* tests the software (an exact identity, or agreement with an exact
  value within a stated number of standard errors); a failed check makes the lab
  exit with status 1;
* a *finding* compares a claim made by the lab's source text with the measured
  figure and reports whether it holds; a claim that does not hold is a result to
  read, never a failed run.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

__all__ = [
    "Check",
    "Finding",
    "LabReport",
    "default_out_dir",
    "environment",
    "print_table",
    "z_score",
]


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


@dataclasses.dataclass(frozen=True)
class Finding:
    """One claim from the lab's source text, set against what the lab measured.

    Attributes:
        name: the claim, in a few words.
        measured: the measured figure, as printed.
        claim: what the source text says.
        holds: whether the measured figure agrees with the claim.
        note: optional one-sentence explanation (why it does or does not hold).
    """

    name: str
    measured: str
    claim: str
    holds: bool
    note: str = ""

    def line(self) -> str:
        """``holds          name: measured (claim: ...)``."""
        verdict = "holds" if self.holds else "does not hold"
        text = f"{verdict:<13}  {self.name}: {self.measured} (claim: {self.claim})"
        return text + (f"\n                 {self.note}" if self.note else "")


def z_score(difference: float, se: float, atol: float = 0.0) -> float:
    """``difference / se``, defined when the standard error is zero.

    A zero standard error means the quantity cannot vary (a probability of exactly 0
    or 1, or identical paired values), so any non-zero difference is infinitely
    many standard errors away and a zero difference is none.

    Args:
        difference: measured minus expected (any finite float).
        se: its standard error, ``>= 0``.
        atol: differences of at most this size are float rounding and count as 0
            (for a mean of identical values, whose computed spread is rounding too).

    Returns:
        ``difference / se``; ``0.0`` or ``+-inf`` when ``se == 0``; ``0.0`` when
        ``|difference| <= atol``.

    Raises:
        ValueError: if ``se`` is negative or NaN.
    """
    if not se >= 0:
        raise ValueError(f"a standard error must be >= 0, got {se}")
    if abs(difference) <= atol:
        return 0.0
    if se == 0:
        return 0.0 if difference == 0 else math.copysign(math.inf, difference)
    return difference / se


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
    findings: list[Finding] = dataclasses.field(default_factory=list)
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

    def finding(self, name: str, measured: str, claim: str, holds: bool, note: str = "") -> Finding:
        """Record (and return) a finding: a source claim and whether it holds here.

        Findings never change :attr:`passed` or the exit status.
        """
        f = Finding(name, measured, claim, bool(holds), note)
        self.findings.append(f)
        return f

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
        """Write ``manifest.json``: seed, parameters, checks, findings, files, versions."""
        manifest = {
            "lab": self.name,
            "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "seed": self.seed,
            "parameters": self.parameters,
            **self.extra,
            "checks": [dataclasses.asdict(c) for c in self.checks],
            "all_passed": self.passed,
            "findings": [dataclasses.asdict(f) for f in self.findings],
            "files": sorted(set(self.files)),
            **environment(),
        }
        p = self.out_dir / "manifest.json"
        p.write_text(json.dumps(manifest, indent=2) + "\n")
        return p

    def print_checks(self) -> None:
        """Print the findings (claims: holds / does not hold), then the checks (PASS/FAIL)."""
        if self.findings:
            print("\nFindings (claims of the source text; they do not change the exit status)")
            for f in self.findings:
                print("  " + f.line())
        print("\nChecks of the software (a failed check makes the lab exit with status 1)")
        for c in self.checks:
            print("  " + c.line())
        held = sum(f.holds for f in self.findings)
        print(
            f"\n{sum(c.passed for c in self.checks)}/{len(self.checks)} checks passed; "
            f"{held}/{len(self.findings)} claims hold; files in {self.out_dir}"
        )

    def finish(self) -> LabReport:
        """End the lab: write ``manifest.json``, print the checks, return the report."""
        self.write_manifest()
        self.print_checks()
        return self


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
