"""Helpers shared by the tests: import them as ``from tests.helpers import ...``.

* Plain NumPy (float64) reference implementations of the sampler semantics, written
  for clarity, not speed (a full stable sort per row), to check the JAX kernels;
* :func:`chi_square_p_value`, the goodness-of-fit test of sampled counts.
"""

from __future__ import annotations

import numpy as np
from jax.scipy.special import gammaincc


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


#: Significance level of the chi-square goodness-of-fit tests of the samplers.
ALPHA = 1e-6


def chi_square_p_value(counts: np.ndarray, p: np.ndarray) -> float:
    """Pearson chi-square p-value of counts against p (cells with expected < 5 pooled)."""
    expected = p * counts.sum()
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    stat = float(np.sum((obs - exp) ** 2 / exp))
    df = len(obs) - 1
    if df == 0:
        return 1.0
    return float(gammaincc(df / 2.0, stat / 2.0))
