"""Description of the machine and software a benchmark ran on."""

from __future__ import annotations

import glob
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


def last_level_cache_bytes() -> int | None:
    """Size of the CPU's largest (last-level) cache, from Linux's sysfs; ``None`` if unknown."""
    sizes = []
    for index in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(os.path.join(index, "size"), encoding="utf-8") as f:
                text = f.read().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes) if sizes else None


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
        "cpu_last_level_cache_bytes": last_level_cache_bytes(),
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
