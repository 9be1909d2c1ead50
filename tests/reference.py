"""Plain NumPy (float64) reference implementations of the sampler semantics.

Written for clarity, not speed: a full stable sort per row. Used by the tests to
check the fast JAX kernels.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    finite = z > -np.inf
    w = np.where(finite, np.exp(z - z[finite].max()), 0.0)
    return w / w.sum()


def order(z: np.ndarray) -> np.ndarray:
    """Indices by descending value, lowest index first on ties."""
    return np.lexsort((np.arange(len(z)), -np.asarray(z, np.float64)))


def top_k_keep(z: np.ndarray, k: int) -> np.ndarray:
    keep = np.zeros(len(z), bool)
    if k <= 0 or k >= len(z):
        keep[:] = True
    else:
        keep[order(z)[:k]] = True
    return keep


def top_p_keep(z: np.ndarray, p: float) -> np.ndarray:
    q = softmax(z)
    idx = order(z)
    ahead = np.concatenate([[0.0], np.cumsum(q[idx])[:-1]])
    keep = np.zeros(len(z), bool)
    if p >= 1.0:
        keep[:] = True
        return keep
    kept = idx[ahead < p]
    keep[kept] = True
    keep[idx[0]] = True
    return keep


def top_p_margin(z: np.ndarray, p: float) -> float:
    """Distance from p of the nearest mass-ahead value (small: a float-boundary case)."""
    q = softmax(z)
    idx = order(z)
    ahead = np.concatenate([[0.0], np.cumsum(q[idx])[:-1]])
    return float(np.min(np.abs(ahead - p)))


def filtered(z: np.ndarray, keep: np.ndarray) -> np.ndarray:
    q = np.where(keep, softmax(z), 0.0)
    return q / q.sum()
