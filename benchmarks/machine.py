"""Description of the machine and software a benchmark ran on."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import jax
import numpy as np


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except ImportError:
        return None
    return str(getattr(mod, "__version__", "unknown"))


def describe() -> dict[str, Any]:
    """Machine, accelerator and library versions, as JSON-ready values."""
    device = jax.devices()[0]
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return {
        "cpu_model": _cpu_model(),
        "cpu_cores_visible": os.cpu_count(),
        "cpu_cores_usable": len(affinity) if affinity is not None else os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "jax_backend": jax.default_backend(),
        "jax_device_kind": device.device_kind,
        "jax_device_count": jax.device_count(),
        "versions": {
            "jax": jax.__version__,
            "jaxlib": _version("jaxlib"),
            "numpy": np.__version__,
            "torch": _version("torch"),
            "transformers": _version("transformers"),
        },
    }


def device_label() -> str:
    """Short name of the device for folder names, e.g. ``cpu`` or ``nvidia-h100``."""
    device = jax.devices()[0]
    if jax.default_backend() == "cpu":
        return "cpu"
    kind = device.device_kind.lower().replace(" ", "-")
    return "".join(c for c in kind if c.isalnum() or c in "-_") or jax.default_backend()
