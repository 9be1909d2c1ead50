"""The logit families the sampler benchmarks draw from (:data:`LOGIT_NOTE` describes them)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "LOGITS",
    "LOGIT_NOTE",
    "gaussian_logits",
    "heavy_tailed_logits",
    "llm_like_logits",
    "near_tie_logits",
]

LOGIT_NOTE = (
    "Logit families (float32, a fresh draw per buffer; nucleus sizes for top-p 0.9 at "
    "V = 50257): 'llm-like', row r has z = -1.2 * log(rank) + 0.3 * N(0, 1) over a random "
    "permutation of the ranks 1..V (a Zipf-like head: about 50 tokens in the nucleus at "
    "tau 0.8, about 30,600 at tau 1.5); 'gaussian', z = 3 * N(0, 1) (about 520 at tau "
    "0.8, 12,000 at tau 1.5); 'heavy-tailed', a standard Cauchy clipped to [-50, 50] "
    "(about 300: the tokens at the cap, exact ties); 'near-tie', groups of 64 tokens at "
    "random positions sharing a 2 * N(0, 1) logit up to a jitter below 1e-6 (about "
    "5,000). Every sampler runs on the llm-like logits at every shape; top-p at tau 1.5 "
    "on them and top-p at tau 0.8 and 1.5 on the gaussian logits join where the peers "
    "are cheap enough (B * V <= 32 * 128256 on a CPU, every shape on an accelerator); "
    "top-p at tau 0.8 on the heavy-tailed and near-tie logits at [32, 50257] (and the "
    "GPU target shape). 'kept': the mean number of tokens the NumPy peer keeps per row, "
    "over the first 4 rows of the first buffer."
)


def llm_like_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Zipf-like float32 logits, a random token order per row (see ``LOGIT_NOTE``)."""
    out = np.empty((batch, vocab), np.float32)
    profile = -1.2 * np.log(np.arange(1, vocab + 1, dtype=np.float64))
    for r in range(batch):
        noise = 0.3 * rng.standard_normal(vocab)
        out[r, rng.permutation(vocab)] = (profile + noise).astype(np.float32)
    return out


def gaussian_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Gaussian float32 logits with standard deviation 3 (a wide nucleus)."""
    return (3.0 * rng.standard_normal((batch, vocab))).astype(np.float32)


def heavy_tailed_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Standard Cauchy float32 logits clipped to [-50, 50] (a few huge outliers)."""
    return np.clip(rng.standard_cauchy((batch, vocab)), -50.0, 50.0).astype(np.float32)


def near_tie_logits(rng: np.random.Generator, batch: int, vocab: int) -> np.ndarray:
    """Groups of 64 tokens sharing a ``2 * N(0, 1)`` logit up to a jitter below 1e-6.

    The groups lie at random positions (a random permutation per row); the jitter
    (uniform in [0, 1e-6)) makes almost every pair within a group differ in float32
    by a few units in the last place, so rankings and nucleus cuts fall inside groups
    of nearly equal tokens.
    """
    out = np.empty((batch, vocab), np.float32)
    for r in range(batch):
        levels = np.repeat(2.0 * rng.standard_normal(vocab // 64 + 1), 64)[:vocab]
        row = levels + rng.uniform(0.0, 1e-6, vocab)
        out[r, rng.permutation(vocab)] = row.astype(np.float32)
    return out


#: The logit families of the sampler table, by the name its records carry.
LOGITS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "llm-like": llm_like_logits,
    "gaussian": gaussian_logits,
    "heavy-tailed": heavy_tailed_logits,
    "near-tie": near_tie_logits,
}
