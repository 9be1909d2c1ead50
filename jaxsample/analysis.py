r"""Diversity and truncation measures for sampled completions and sampling distributions.

Two kinds of function live here:

* measures of a *set of samples*: :func:`distinct_n` (Li et al., 2016),
  :func:`distinct_completions`, :func:`distinct_fraction` (distinct / total) and
  :func:`coherence` (the share of the most common sample), with their exact
  expected values under a distribution, :func:`expected_distinct_fraction` and
  :func:`expected_coherence`;
* measures of a *truncated distribution*: :func:`kept_set_size` and
  :func:`kept_mass` (how many tokens a top-k or nucleus filter keeps, and how much
  of the untruncated probability they carry); these are ``jax.numpy`` functions
  that may be jitted and vmapped;

and :func:`pareto_front`, which picks the non-dominated (diversity, correctness)
points of a set of strategies.

References:
    Li, Galley, Brockett, Gao, Dolan. A Diversity-Promoting Objective Function for
    Neural Conversation Models. NAACL 2016 (arXiv:1510.03055): distinct-1 and
    distinct-2.

    Holtzman, Buys, Du, Forbes, Choi. The Curious Case of Neural Text
    Degeneration. ICLR 2020 (arXiv:1904.09751, 2019): nucleus (top-p) sampling,
    whose kept set :func:`kept_set_size` and :func:`kept_mass` describe.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

__all__ = [
    "coherence",
    "distinct_completions",
    "distinct_fraction",
    "distinct_n",
    "expected_coherence",
    "expected_distinct_fraction",
    "kept_mass",
    "kept_set_size",
    "pareto_front",
]

#: Largest sample count accepted by :func:`expected_coherence` (float64 factorials).
MAX_EXACT_SAMPLES = 150


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value}")
    return int(value)


def distinct_n(sequences: Sequence[Sequence[Hashable]], n: int = 1) -> float:
    r"""Distinct-n: the share of distinct n-grams among all n-grams of a set of sequences.

    .. math::
        \mathrm{distinct}\text{-}n = \frac{|\{g : g \text{ an } n\text{-gram of some } s\}|}
        {\sum_s \max(0, |s| - n + 1)}

    The n-grams are counted inside each sequence (none spans two sequences) and
    pooled over all of them; the numerator counts each distinct n-gram once. Li et
    al. (2016) introduced distinct-1 and distinct-2 to measure the lexical
    diversity of generated responses; they divide by the number of generated
    words, which equals the number of n-grams for ``n = 1``; here the denominator
    is the number of n-grams for every ``n``, so the value lies in ``[0, 1]``.

    Args:
        sequences: token sequences (lists of ids or words; any hashable items).
        n: n-gram length, ``>= 1``.

    Returns:
        A float in ``[0, 1]``; 0.0 when no sequence has ``n`` items.

    Raises:
        ValueError: if ``n`` is not an integer ``>= 1`` or ``sequences`` is a string.

    References:
        Li, Galley, Brockett, Gao, Dolan. A Diversity-Promoting Objective Function
        for Neural Conversation Models. NAACL 2016.
    """
    n = _check_positive_int("n", n)
    if isinstance(sequences, str):
        raise ValueError("sequences must be a sequence of token sequences, not a string")
    grams: set[tuple[Hashable, ...]] = set()
    total = 0
    for seq in sequences:
        items = tuple(seq)
        count = len(items) - n + 1
        if count <= 0:
            continue
        total += count
        grams.update(items[i : i + n] for i in range(count))
    return len(grams) / total if total else 0.0


def distinct_completions(completions: Sequence[Hashable]) -> int:
    """The number of different completions in a set of samples.

    Args:
        completions: the samples (strings, tuples of ids ...; anything hashable).

    Returns:
        An int between 0 (no samples) and ``len(completions)``.
    """
    return len(set(completions))


def distinct_fraction(samples: Sequence[Hashable]) -> float:
    r"""Distinct samples over total samples, :math:`|\{s_i\}| / n`.

    The "diversity" of a batch of draws: 1 when every draw differs, :math:`1/n`
    when all are equal.

    Args:
        samples: ``n >= 1`` hashable samples.

    Returns:
        A float in ``[1/n, 1]``.

    Raises:
        ValueError: if ``samples`` is empty.
    """
    if len(samples) == 0:
        raise ValueError("distinct_fraction needs at least one sample")
    return len(set(samples)) / len(samples)


def coherence(samples: Sequence[Hashable]) -> float:
    r"""The share of the most common sample, :math:`\max_v |\{i : s_i = v\}| / n`.

    A measure of agreement between draws: 1 when all draws are equal (greedy
    decoding), :math:`1/n` when all differ; the counterpart of
    :func:`distinct_fraction` (same argument, range and error).

    Args:
        samples: ``n >= 1`` hashable samples.
    """
    if len(samples) == 0:
        raise ValueError("coherence needs at least one sample")
    return Counter(samples).most_common(1)[0][1] / len(samples)


def _check_distribution(q: ArrayLike | Sequence[float]) -> np.ndarray[Any, np.dtype[np.float64]]:
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"q must be a non-empty 1-D distribution, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ValueError("q must hold finite, non-negative probabilities")
    if abs(float(arr.sum()) - 1.0) > 1e-4:
        raise ValueError(f"q must sum to 1 (within 1e-4), got {float(arr.sum())!r}")
    normalised: np.ndarray[Any, np.dtype[np.float64]] = arr / arr.sum()
    return normalised


def expected_distinct_fraction(q: ArrayLike | Sequence[float], n: int) -> float:
    r"""Exact :math:`E[\mathrm{distinct\_fraction}]` of ``n`` independent draws from ``q``.

    Token :math:`i` appears at least once with probability :math:`1 - (1 - q_i)^n`,
    so by linearity of expectation

    .. math::
        E\Big[\frac{\#\text{distinct}}{n}\Big] = \frac{1}{n} \sum_i \big(1 - (1 - q_i)^n\big).

    Args:
        q: a probability vector ``[V]`` (any float dtype; it must sum to 1 within
            ``1e-4`` and is renormalised in float64).
        n: number of draws, ``>= 1``.

    Returns:
        A float in ``[1/n, 1]``.

    Raises:
        ValueError: if ``q`` is not a 1-D distribution or ``n`` is not an integer ``>= 1``.
    """
    n = _check_positive_int("n", n)
    p = _check_distribution(q)
    with np.errstate(divide="ignore"):  # log1p(-1) = -inf: a certain token is always seen
        missed_log = n * np.log1p(-np.minimum(p, 1.0))
    return float(np.sum(-np.expm1(missed_log))) / n


def expected_coherence(q: ArrayLike | Sequence[float], n: int) -> float:
    r"""Exact :math:`E[\mathrm{coherence}]` of ``n`` independent draws from ``q``.

    With :math:`M` the largest count of the multinomial :math:`(n; q)`,
    coherence is :math:`M / n` and :math:`E[M] = \sum_{m=0}^{n-1} P(M > m)`, where

    .. math::
        P(M \le m) = n!\,[x^n] \prod_{i} \sum_{c=0}^{m} \frac{(q_i x)^c}{c!}

    (each token contributes at most :math:`m` draws). The coefficients are
    computed by truncated polynomial products in float64, in
    :math:`O(V n^3)` operations.

    Args:
        q: a probability vector ``[V]`` (must sum to 1 within ``1e-4``).
        n: number of draws, ``1 <= n <= 150`` (larger ``n`` overflows the factorials).

    Returns:
        A float in ``[1/n, 1]``.

    Raises:
        ValueError: if ``q`` is not a 1-D distribution or ``n`` is outside ``[1, 150]``.
    """
    n = _check_positive_int("n", n)
    if n > MAX_EXACT_SAMPLES:
        raise ValueError(f"n must be <= {MAX_EXACT_SAMPLES} for the exact computation, got {n}")
    p = _check_distribution(q)
    p = p[p > 0]
    inv_fact = np.array([1.0 / math.factorial(c) for c in range(n + 1)])
    expected_max = 0.0
    for m in range(n):  # P(M > m) = 1 - P(M <= m)
        poly = np.zeros(n + 1)
        poly[0] = 1.0
        powers = np.arange(m + 1)
        for qi in p:
            factor = (qi**powers) * inv_fact[: m + 1]
            poly = np.convolve(poly, factor)[: n + 1]
        at_most_m = math.factorial(n) * poly[n]
        expected_max += 1.0 - min(max(at_most_m, 0.0), 1.0)
    return expected_max / n


def kept_set_size(q: jax.Array) -> jax.Array:
    r"""The number of tokens a (truncated) distribution can produce, :math:`|\{i : q_i > 0\}|`.

    Applied to :func:`jaxsample.probs` of a top-k or top-p strategy it is the size
    of the kept set (exactly ``min(k, V)`` for top-k; the nucleus size for top-p,
    Holtzman et al., 2019). Jit- and vmap-compatible.

    Args:
        q: probabilities ``[..., V]`` (any float dtype).

    Returns:
        int32 ``[...]``.
    """
    size: jax.Array = jnp.sum(jnp.asarray(q) > 0, axis=-1, dtype=jnp.int32)
    return size


def kept_mass(q: jax.Array, reference: jax.Array) -> jax.Array:
    r"""The probability, under ``reference``, of the tokens that ``q`` keeps.

    .. math:: m = \sum_{i : q_i > 0} r_i

    With ``q`` a truncated distribution and ``r`` the untruncated one at the same
    temperature, :math:`m` is the share of the model's probability that survives
    the truncation: at least ``p`` for a nucleus of mass ``p`` (Holtzman et al.,
    2019), and the top-k mass for top-k. Jit- and vmap-compatible.

    Args:
        q: truncated probabilities ``[..., V]``.
        reference: untruncated probabilities, broadcastable against ``q``.

    Returns:
        float32 ``[...]`` in ``[0, 1]`` (up to rounding).
    """
    r = jnp.asarray(reference, jnp.float32)
    mass: jax.Array = jnp.sum(jnp.where(jnp.asarray(q) > 0, r, 0.0), axis=-1)
    return mass


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    r"""Indices of the points not dominated when both coordinates are to be maximised.

    Point :math:`a` dominates point :math:`b` iff :math:`a_x \ge b_x`,
    :math:`a_y \ge b_y` and :math:`a \ne b`. For (diversity, correctness) pairs the
    front holds the strategies for which no other strategy is at least as diverse
    *and* at least as correct while better in one of the two. Equal points are
    either all on the front or all off it.

    Args:
        points: ``(x, y)`` pairs of finite numbers.

    Returns:
        The indices of the non-dominated points, sorted by increasing ``x`` (then
        decreasing ``y``, then index); empty for no points.

    Raises:
        ValueError: if a point is not a pair of finite numbers.
    """
    pts: list[tuple[float, float]] = []
    for i, pt in enumerate(points):
        try:
            x, y = (float(v) for v in pt)
        except (TypeError, ValueError):
            raise ValueError(f"point {i} must be a pair of numbers, got {pt!r}") from None
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"point {i} must be finite, got {pt!r}")
        pts.append((x, y))
    front = [
        i
        for i, (x, y) in enumerate(pts)
        if not any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for j, (ox, oy) in enumerate(pts) if j != i
        )
    ]
    return sorted(front, key=lambda i: (pts[i][0], -pts[i][1], i))
