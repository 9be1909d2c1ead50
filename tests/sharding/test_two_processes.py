"""``jaxsample sweep`` on two processes of four CPU devices equals one process of eight."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.sharding.devices import ROOT, device_env

SETTINGS = ["--taus", "0", "0.7", "1.4", "2", "--seeds", "4", "--max-tokens", "6"]
SETTINGS += ["--prompts", "Tomorrow she", "the dog"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _sweep(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "jaxsample", "sweep", *SETTINGS, "--out", str(out), *extra]


def _join(port: int, process: int) -> list[str]:
    """The flags of process ``process`` of two with four CPU devices each."""
    address = f"127.0.0.1:{port}"
    return [
        "--cpu-devices",
        "4",
        "--coordinator",
        address,
        "--num-processes",
        "2",
        "--process-id",
        str(process),
    ]


def _read(out: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((out / "sweep.json").read_text())
    return record


def test_two_processes_equal_one(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    env = device_env(1)  # the device counts come from --cpu-devices
    single = subprocess.run(
        _sweep(one, "--cpu-devices", "8"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    port = _free_port()
    procs = [
        subprocess.Popen(
            _sweep(two, *_join(port, i)),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    for proc in procs:
        try:
            stdout, stderr = proc.communicate(timeout=240)
        finally:
            proc.kill()
        logs.append((proc.returncode, stdout, stderr))
    for code, _, stderr in logs:
        assert code == 0, stderr[-3000:]
    a, b = _read(one), _read(two)
    assert a["layout"]["processes"] == 1 and b["layout"]["processes"] == 2
    assert a["layout"]["devices"] == b["layout"]["devices"] == 8
    assert b["layout"]["devices_per_process"] == 4
    assert a["layout"]["mesh"] == b["layout"]["mesh"] == {"tau": 4, "seed": 2}
    assert a["sha256"] == b["sha256"]
    for field in ("settings", "per_tau", "per_prompt", "completions"):
        assert a[field] == b[field], field
    assert (two / "sweep.png").stat().st_size > 0
    # Only process 0 reports (Gloo, the CPU collectives, logs its connections on stdout).
    assert "sha256" in logs[0][1] and "sha256" not in logs[1][1]
    assert "sweep: 4/4 seeds" in logs[0][2]
    assert "process 1 of 2 joined" in logs[1][2]
