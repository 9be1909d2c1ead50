"""Running a snippet of Python in a fresh process that sees simulated CPU devices.

The number of CPU devices must be chosen before JAX starts, so every multi-device
check runs in a subprocess; one subprocess should make several checks (each costs
a JAX start-up and its compilations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MARK = "RESULT-JSON:"


def device_env(devices: int) -> dict[str, str]:
    """The environment of a process with ``devices`` simulated CPU devices."""
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["JAXSAMPLE_CACHE_DIR"] = "off"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_on_devices(code: str, devices: int = 8, timeout: float = 600) -> Any:
    """Run ``code`` with ``devices`` CPU devices; return what it passed to ``report``.

    The snippet gets a function ``report(obj)`` that prints ``obj`` as JSON on one
    marked line; the last such line is parsed and returned. A failing snippet
    fails the test with its stderr.
    """
    prelude = (
        "import json as _json\n"
        f"def report(obj):\n    print({MARK!r} + _json.dumps(obj), flush=True)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        env=device_env(devices),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if not lines:
        raise AssertionError(f"subprocess reported nothing:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1][len(MARK) :])
