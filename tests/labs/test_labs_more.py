"""jaxsample.analysis on hand-made inputs, and the registry of the labs."""

from __future__ import annotations

import importlib
import itertools
import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from jaxsample.analysis import (
    coherence,
    distinct_completions,
    distinct_fraction,
    distinct_n,
    expected_coherence,
    expected_distinct_fraction,
    kept_mass,
    kept_set_size,
    pareto_front,
)
from jaxsample.labs.commands import LABS

NEW_LABS = {
    "top-k-top-p": "jaxsample.labs.top_k_top_p",
    "diversity-vs-correctness": "jaxsample.labs.diversity",
    "exercises": "jaxsample.labs.exercises",
}


# ---------------------------------------------------------------------------------------
# analysis: exact values on hand-made inputs
# ---------------------------------------------------------------------------------------


def test_distinct_n_counts_ngrams_within_sequences() -> None:
    seqs = [[1, 2, 3], [1, 2, 4]]
    assert distinct_n(seqs, 1) == pytest.approx(4 / 6)
    assert distinct_n(seqs, 2) == pytest.approx(3 / 4)  # (1,2) twice, (2,3), (2,4)
    assert distinct_n(seqs, 3) == 1.0
    assert distinct_n(seqs, 4) == 0.0  # no sequence is long enough
    # No n-gram spans two sequences: (3, 1) is not counted.
    assert distinct_n([["a", "b"], ["a", "b"]], 2) == 0.5
    assert distinct_n([], 1) == 0.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_distinct_n_rejects_bad_n(bad: object) -> None:
    with pytest.raises(ValueError, match="n must be"):
        distinct_n([[1, 2]], bad)  # type: ignore[arg-type]


def test_distinct_n_rejects_a_string() -> None:
    with pytest.raises(ValueError, match="not a string"):
        distinct_n("abc", 1)


def test_sample_measures() -> None:
    samples = ["a", "a", "b", "c"]
    assert distinct_completions(samples) == 3
    assert distinct_completions([]) == 0
    assert distinct_fraction(samples) == 0.75
    assert coherence(samples) == 0.5
    assert coherence(["x"] * 10) == 1.0
    assert distinct_fraction(["x"] * 10) == 0.1
    for fn in (distinct_fraction, coherence):
        with pytest.raises(ValueError, match="at least one sample"):
            fn([])


def _brute_force(q: list[float], n: int) -> tuple[float, float]:
    """E[distinct_fraction] and E[coherence] by enumerating every sequence of n draws."""
    e_div = e_coh = 0.0
    for seq in itertools.product(range(len(q)), repeat=n):
        weight = math.prod(q[i] for i in seq)
        e_div += weight * len(set(seq)) / n
        e_coh += weight * Counter(seq).most_common(1)[0][1] / n
    return e_div, e_coh


@pytest.mark.parametrize(
    ("q", "n"), [([0.5, 0.3, 0.2], 4), ([0.25, 0.25, 0.25, 0.25], 3), ([0.9, 0.1], 6)]
)
def test_expected_measures_match_enumeration(q: list[float], n: int) -> None:
    e_div, e_coh = _brute_force(q, n)
    assert expected_distinct_fraction(q, n) == pytest.approx(e_div, abs=1e-12)
    assert expected_coherence(q, n) == pytest.approx(e_coh, abs=1e-12)


def test_expected_measures_closed_forms() -> None:
    # Two fair tokens, two draws: distinct with prob 1/2.
    assert expected_distinct_fraction([0.5, 0.5], 2) == pytest.approx(0.75)
    assert expected_coherence([0.5, 0.5], 2) == pytest.approx(0.75)
    # A certain token (zeros allowed, including a probability of exactly 1).
    assert expected_distinct_fraction([1.0, 0.0, 0.0], 5) == pytest.approx(0.2)
    assert expected_coherence([0.0, 1.0], 5) == pytest.approx(1.0)
    # One draw: always one distinct token, coherence 1.
    assert expected_distinct_fraction([0.2, 0.8], 1) == pytest.approx(1.0)
    assert expected_coherence([0.2, 0.8], 1) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("q", "n", "message"),
    [
        ([0.5, 0.4], 3, "sum to 1"),
        ([1.2, -0.2], 3, "non-negative"),
        ([[0.5, 0.5]], 3, "1-D"),
        ([0.5, 0.5], 0, "n must be"),
        ([0.5, float("nan")], 3, "finite"),
    ],
)
def test_expected_measures_reject_bad_input(q: object, n: int, message: str) -> None:
    for fn in (expected_distinct_fraction, expected_coherence):
        with pytest.raises(ValueError, match=message):
            fn(q, n)  # type: ignore[arg-type]


def test_expected_coherence_limits_n() -> None:
    with pytest.raises(ValueError, match="<= 150"):
        expected_coherence([0.5, 0.5], 151)


def test_kept_set_size_and_mass() -> None:
    q = jnp.asarray([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    ref = jnp.asarray([0.4, 0.3, 0.2, 0.1])
    np.testing.assert_array_equal(kept_set_size(q), [2, 1])
    assert kept_set_size(q).dtype == jnp.int32
    np.testing.assert_allclose(kept_mass(q, ref), [0.7, 0.4], rtol=1e-6)


def test_kept_measures_of_a_nucleus_under_jit_and_vmap() -> None:
    # Probabilities [0.3, 0.1, 0.1, 0.5]: the nucleus of p = 0.79 is {0.5, 0.3}.
    z = jnp.log(jnp.asarray([0.3, 0.1, 0.1, 0.5]))

    @jax.jit
    def measures(ps: jax.Array) -> tuple[jax.Array, jax.Array]:
        ref = js.probs(z, js.Temperature(1.0))
        qs = jax.vmap(lambda p: js.probs(z, js.TopP(p)))(ps)
        return kept_set_size(qs), kept_mass(qs, ref)

    size, mass = measures(jnp.asarray([0.49, 0.79, 0.81, 1.0]))
    np.testing.assert_array_equal(size, [1, 2, 3, 4])
    np.testing.assert_allclose(mass, [0.5, 0.8, 0.9, 1.0], rtol=1e-5)


def test_pareto_front() -> None:
    pts = [(0.0, 1.0), (1.0, 0.5), (0.5, 0.5), (1.0, 0.5), (0.2, 1.0), (0.9, 0.9)]
    # (0, 1) is dominated by (0.2, 1); (0.5, 0.5) by (1, 0.5); the equal (1, 0.5) both stay.
    assert pareto_front(pts) == [4, 5, 1, 3]
    assert pareto_front([]) == []
    assert pareto_front([(0.3, 0.3)]) == [0]
    with pytest.raises(ValueError, match="finite"):
        pareto_front([(0.1, float("nan"))])
    with pytest.raises(ValueError, match="pair"):
        pareto_front([(0.1, 0.2, 0.3)])  # type: ignore[list-item]


def test_analysis_exports() -> None:
    import jaxsample.analysis as analysis

    for name in analysis.__all__:
        fn = getattr(analysis, name)
        assert callable(fn) and fn.__doc__, name


# ---------------------------------------------------------------------------------------
# The labs
# ---------------------------------------------------------------------------------------


def test_labs_are_registered() -> None:
    for name, module in NEW_LABS.items():
        assert LABS[name] == module
        assert callable(importlib.import_module(module).run)
