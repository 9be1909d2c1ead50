"""The fast paths at vocabulary sizes where they engage: exact selection and exact draws.

`sample` draws Temperature, TopK and TopP rows from the raw logits (two-stage top-k
window, fused inverse CDF) and redraws the other rows on the general path. These
tests check, at V in the tens of thousands, that the window equals `lax.top_k`, that
draws follow `probs` (chi-square, fixed keys), and that a row's token does not depend
on which path the other rows of its batch take.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxsample as js
from jaxsample.labs.temperature_sweep import entropy_sweep
from jaxsample.samplers._filters import (
    _INTRUDERS,
    _top_groups,
    _top_positions,
    _window_parts,
    chunk_max_and_mass,
    chunk_maxima,
    group_maxima,
    prefix_sums,
    top_window,
)
from jaxsample.samplers._random import row_uniforms
from jaxsample.samplers._sampling import _columns, _fast_draw, _inverse_cdf, _tempered, _total
from tests.test_statistics import ALPHA, chi_square_p_value

V = 20_011  # not a multiple of any block or chunk size
N = 40_000


def _peaked(seed: int, ties: bool = False) -> jax.Array:
    """A Zipf-like row over V tokens (a few hundred carry almost all the mass)."""
    rng = np.random.default_rng(seed)
    z = -1.6 * np.log(rng.permutation(V) + 1.0) + 0.2 * rng.standard_normal(V)
    if ties:
        z = np.round(z * 4) / 4  # many exact ties, also at the top
    return jnp.asarray(z, jnp.float32)


def _nested_window(z: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    return _top_positions(z, width)


@pytest.mark.parametrize("window", [top_window, _nested_window], ids=["platform", "nested"])
@pytest.mark.parametrize("width", [1, 7, 64, 128])
def test_top_window_equals_lax_top_k(window: Any, width: int) -> None:
    rng = np.random.default_rng(width)
    rows = np.stack(
        [
            np.asarray(_peaked(1)),
            np.asarray(_peaked(2, ties=True)),
            np.round(rng.standard_normal(V) * 2),  # ties everywhere
            np.zeros(V),  # all tied: lowest indices first
            np.where(rng.random(V) < 0.5, 0.0, -0.0),  # -0.0 reads as 0.0
        ]
    ).astype(np.float32)
    values, indices = jax.jit(window, static_argnums=1)(jnp.asarray(rows), width)
    ref_v, ref_i = lax.top_k(jnp.where(jnp.asarray(rows) == 0, 0.0, jnp.asarray(rows)), width)
    np.testing.assert_array_equal(values, ref_v)
    np.testing.assert_array_equal(indices, ref_i)


@pytest.mark.parametrize("window", [top_window, _nested_window], ids=["platform", "nested"])
def test_top_window_with_few_finite_entries(window: Any) -> None:
    z = np.full((1, V), -np.inf, np.float32)
    z[0, [5, 17_000, 20_010]] = [1.0, 3.0, 1.0]
    values, indices = jax.jit(window, static_argnums=1)(jnp.asarray(z), 64)
    assert indices[0, :3].tolist() == [17_000, 5, 20_010]
    assert bool(jnp.all(jnp.isneginf(values[0, 3:])))
    assert bool(jnp.all((indices >= 0) & (indices < V)))


def test_group_maxima_are_the_maxima_of_interleaved_groups() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((3, V)).astype(np.float32)
    z[1, 777] = np.nan
    q = -(-V // 16)
    padded = np.full((3, 16 * q), -np.inf, np.float32)
    padded[:, :V] = z
    expected = padded.reshape(3, 16, q).max(axis=1)  # NaN propagates
    np.testing.assert_array_equal(group_maxima(jnp.asarray(z)), expected)


def test_top_groups_match_lax_top_k() -> None:
    rng = np.random.default_rng(4)
    gm = jnp.asarray(rng.standard_normal((6, 3000)).astype(np.float32))
    values, indices = jax.jit(_top_groups, static_argnums=1)(gm, 128)
    ref_v, ref_i = lax.top_k(gm, 128)
    np.testing.assert_array_equal(values, ref_v)
    np.testing.assert_array_equal(indices, ref_i)  # distinct values: same order


def _window_routes(z: np.ndarray, width: int = 128) -> tuple[np.ndarray, np.ndarray]:
    x = jnp.asarray(z)

    @jax.jit
    def parts(x: jax.Array) -> tuple[tuple[jax.Array, jax.Array], jax.Array, jax.Array]:
        gm = jnp.where(group_maxima(x) == 0, 0.0, group_maxima(x))
        window, exact, cut_clean, _ = _window_parts(x, width, gm)
        return window, exact, cut_clean

    (values, indices), exact, cut_clean = parts(x)
    ref_v, ref_i = lax.top_k(x, width)
    # Wherever the merged window claims to be exact, it is.
    for r in np.flatnonzero(np.asarray(exact)):
        np.testing.assert_array_equal(values[r], ref_v[r])
        np.testing.assert_array_equal(indices[r], ref_i[r])
    window = jax.jit(top_window, static_argnums=1)
    np.testing.assert_array_equal(window(x, width)[1], ref_i)  # whatever the route
    return np.asarray(exact), np.asarray(cut_clean)


def test_top_window_merges_directly_on_distinct_rows() -> None:
    rows = np.stack([np.asarray(_peaked(s)) for s in range(40, 48)])
    exact, cut_clean = _window_routes(rows)
    assert exact.all() and cut_clean.all()


def test_top_window_merges_up_to_two_intruders_per_group() -> None:
    base = np.asarray(_peaked(60))
    q = -(-V // 16)
    rows = []
    for count in (3, 4):  # a group's maximum and 2 or 3 other members at the top
        row = base.copy()
        row[5 + q * np.arange(count)] = 40.0 - np.arange(count)
        rows.append(row)
    exact, cut_clean = _window_routes(np.stack(rows).astype(np.float32))
    assert exact.tolist() == [True, False]
    assert cut_clean.tolist() == [True, True]


def test_top_window_falls_back_on_many_intruders_and_on_ties() -> None:
    base = np.asarray(_peaked(50))
    q = -(-V // 16)
    crowded = base.copy()
    members = (np.arange(16)[:, None] * q + np.array([5, 6])).ravel()  # two whole groups
    assert len(members) - 2 > _INTRUDERS
    crowded[members] = 50.0 + np.arange(len(members))
    cut_tie = base.copy()
    cut_tie[:] = np.minimum(cut_tie, 0.0)
    cut_tie[np.arange(200) * 3] = 1.0  # 200 equal maxima in distinct groups: a tie at the cut
    inner_tie = base.copy()
    top = np.argsort(-inner_tie)[:2]
    inner_tie[top[1]] = inner_tie[top[0]]  # equal maxima inside the window
    exact, cut_clean = _window_routes(np.stack([crowded, cut_tie, inner_tie]).astype(np.float32))
    assert exact.tolist() == [False, False, False]
    assert cut_clean.tolist() == [True, False, True]


def test_prefix_sums_match_a_running_sum() -> None:
    rng = np.random.default_rng(6)
    for m in (16, 197, 512, 700):
        w = rng.random((4, m)).astype(np.float32)
        got = jax.jit(prefix_sums)(jnp.asarray(w))
        np.testing.assert_allclose(got, np.cumsum(w, -1), rtol=1e-5)


def test_row_uniforms_reproduce_jax_random() -> None:
    key = jax.random.key(11)
    rows = jnp.arange(60, dtype=jnp.uint32)
    folded = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, rows)
    expected = jax.vmap(lambda k: jax.random.uniform(k, ()))(folded)
    np.testing.assert_array_equal(jax.jit(lambda k: row_uniforms(k, (6, 10)))(key), expected)
    keys = jax.random.split(key, (3, 4))
    per_row = jax.vmap(lambda k: jax.random.uniform(k, ()))(keys.reshape(-1))
    np.testing.assert_array_equal(row_uniforms(keys, (3, 4)), per_row)
    assert row_uniforms(key, ())[0] == jax.random.uniform(key, ())
    rbg = jax.random.key(11, impl="rbg")
    rbg_rows = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(rbg, jnp.arange(5, dtype=jnp.uint32))
    np.testing.assert_array_equal(
        row_uniforms(rbg, (5,)), jax.vmap(lambda k: jax.random.uniform(k, ()))(rbg_rows)
    )


def test_total_and_inverse_cdf_cover_the_whole_row() -> None:
    z = jnp.stack([_peaked(60), _peaked(61)])
    m = jnp.max(z, axis=-1)
    s = jnp.asarray([1.25, 0.5], jnp.float32)
    weight = _tempered(m, s)
    total = jax.jit(lambda z: _total(z, weight))(z)
    np.testing.assert_allclose(total, jnp.sum(weight(z), axis=-1), rtol=1e-5)
    # The inverse CDF walks column c = t mod q, then member t // q: u = 0 reaches
    # the first token of that order, u just below 1 the last (all weights here
    # are positive, and the last one is far above the rounding of the sums).
    q = _columns(V)
    walk = (np.arange(V) % q) * 16 + np.arange(V) // q
    assert bool(jnp.all(weight(z) > 0))
    draw = jax.jit(lambda z, u: _inverse_cdf(z, weight, u))
    ends = draw(z, jnp.asarray([0.0, np.nextafter(np.float32(1), 0)]))
    assert ends.tolist() == [int(np.argmin(walk)), int(np.argmax(walk))]


CASES = {
    "temperature": (_peaked(10), js.Temperature(0.8)),
    "temperature-ties": (_peaked(11, ties=True), js.Temperature(1.3)),
    "top-k": (_peaked(12), js.TopK(50, tau=0.8)),
    "top-k-ties": (_peaked(13, ties=True), js.TopK(20, tau=1.0)),
    "top-p": (_peaked(14), js.TopP(0.9, tau=0.8)),
    "top-p-ties": (_peaked(15, ties=True), js.TopP(0.7, tau=1.0)),
    "top-p-wider-than-window": (_peaked(16), js.TopP(0.99, tau=1.5, window=16)),
    "chain-temperatures": (_peaked(17), js.chain(js.Temperature(0.5), js.Temperature(1.7))),
    "chain-k-then-p": (_peaked(18), js.chain(js.Temperature(0.8), js.TopK(50), js.TopP(0.9))),
    "chain-p-then-k": (_peaked(19, ties=True), js.chain(js.TopP(0.8, tau=1.2), js.TopK(30))),
    "chain-p-then-temperature": (_peaked(23), js.chain(js.TopP(0.9), js.Temperature(2.0))),
    "chain-temperature-then-p": (
        _peaked(26),
        js.chain(js.Temperature(0.7), js.TopP(0.85, tau=1.3)),
    ),
    "chain-disabled-head": (_peaked(24), js.chain(js.TopK(0), js.TopP(0.6, tau=0.9))),
}


#: The cases the fast path must not hand to the general path.
FAST = {name for name in CASES if name not in ("top-p-wider-than-window", "chain-disabled-head")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_draws_follow_probs_at_large_vocab(name: str) -> None:
    logits, strategy = CASES[name]
    fast = _fast_draw(logits[None], strategy, jnp.array([0.5]), (1,))
    assert fast is not None and bool(fast[1][0]) == (name in FAST)
    p = np.asarray(js.probs(logits, strategy), np.float64)
    keys = jax.random.split(jax.random.key(sum(map(ord, name))), N)
    ids = np.asarray(jax.vmap(lambda k: js.sample(k, logits, strategy))(keys))
    counts = np.bincount(ids, minlength=V)
    assert counts[p == 0].sum() == 0
    assert chi_square_p_value(counts, p) > ALPHA


@pytest.mark.parametrize(
    "name",
    [
        "top-k",
        "top-k-ties",
        "top-p",
        "top-p-ties",
        "chain-k-then-p",
        "chain-p-then-k",
        "chain-temperature-then-p",
    ],
)
def test_nested_selection_draws_follow_probs(name: str) -> None:
    # The selection used off CPU (nested chunk maxima, one-pass mass), run here.
    logits, strategy = CASES[name]

    @jax.jit
    def draw(u: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = _fast_draw(logits[None], strategy, u[None], (1,), nested=True)
        assert out is not None
        return out[0][0], out[1][0]

    u = jax.random.uniform(jax.random.key(sum(map(ord, name)) + 1), (N,))
    ids, ok = jax.vmap(draw)(u)
    assert bool(jnp.all(ok))
    p = np.asarray(js.probs(logits, strategy), np.float64)
    counts = np.bincount(np.asarray(ids), minlength=V)
    assert counts[p == 0].sum() == 0
    assert chi_square_p_value(counts, p) > ALPHA


def test_chunk_max_and_mass_in_one_pass() -> None:
    z = jnp.stack([_peaked(62), _peaked(63, ties=True), _peaked(64).at[:5000].set(-jnp.inf)])
    s = jnp.asarray([1.25, 0.5, 3.0], jnp.float32)
    maxima, mass = jax.jit(chunk_max_and_mass)(z, s)
    np.testing.assert_array_equal(maxima, chunk_maxima(z))
    m = jnp.max(z, axis=-1, keepdims=True)
    np.testing.assert_allclose(mass, jnp.sum(jnp.exp((z - m) * s[:, None]), axis=-1), rtol=1e-5)


def test_chi_square_at_large_vocab_detects_a_wrong_temperature() -> None:
    # Power check: the same test rejects draws made at a nearby temperature.
    logits = _peaked(10)
    keys = jax.random.split(jax.random.key(0), N)
    ids = np.asarray(jax.vmap(lambda k: js.sample(k, logits, js.Temperature(0.9)))(keys))
    p = np.asarray(js.probs(logits, js.Temperature(0.8)), np.float64)
    assert chi_square_p_value(np.bincount(ids, minlength=V), p) < ALPHA


@pytest.mark.parametrize(
    "strategy",
    [
        js.Temperature(0.8),
        js.TopK(50, tau=0.8),
        js.TopP(0.9, tau=0.8),
        js.Greedy(),
        js.chain(js.Temperature(0.8), js.TopK(50), js.TopP(0.9)),
    ],
    ids=["temperature", "top-k", "top-p", "greedy", "chain"],
)
def test_row_does_not_depend_on_the_path_of_other_rows(strategy: js.Strategy) -> None:
    good = jnp.stack([_peaked(20), _peaked(21, ties=True), _peaked(22)])
    bad = jnp.stack(
        [
            good[0].at[3].set(jnp.nan),  # general path for this row
            jnp.full((V,), -jnp.inf),
            good[2].at[9].set(jnp.inf),
        ]
    )
    key = jax.random.key(5)
    keys = jax.vmap(lambda r: jax.random.fold_in(key, r))(jnp.arange(6))
    mixed = js.sample(keys, jnp.concatenate([good, bad]), strategy)
    clean = js.sample(keys[:3], good, strategy)
    np.testing.assert_array_equal(mixed[:3], clean)
    for r in range(3):
        np.testing.assert_array_equal(js.sample(keys[r], good[r], strategy), clean[r])
    assert int(mixed[5]) == 9  # the +inf token


def test_greedy_inside_a_chain_draws_the_first_maximum() -> None:
    z = _peaked(25, ties=True)
    first = int(jnp.argmax(z))
    for s in [
        js.chain(js.TopP(0.9), js.Temperature(0.0)),
        js.chain(js.Temperature(0.0), js.TopK(40)),
        js.chain(js.TopK(40), js.Greedy()),
    ]:
        keys = jax.random.split(jax.random.key(1), 50)
        ids = jax.vmap(lambda k, s=s: js.sample(k, z, s))(keys)
        assert set(np.asarray(ids).tolist()) == {first}


@pytest.mark.parametrize("n_wide", [1, 3, 20])
def test_rows_redrawn_on_the_general_path_match_the_rows_alone(n_wide: int) -> None:
    # 24 rows with per-row parameters; n_wide of them hold a nucleus wider than the window
    # (redrawn on the general path); the rest stay on the fast path.
    rows = [_peaked(30 + r) for r in range(24)]
    rng = np.random.default_rng(n_wide)
    for r in rng.choice(24, n_wide, replace=False):
        rows[r] = jnp.asarray(rng.standard_normal(V) * 0.5, jnp.float32)
    batch = jnp.stack(rows)
    tau = jnp.asarray(rng.uniform(0.6, 1.4, 24), jnp.float32)
    strategy = js.TopP(0.9, tau=tau)
    key = jax.random.key(9)
    got = js.sample(key, batch, strategy)
    for r in range(24):
        alone = js.sample(jax.random.fold_in(key, r), batch[r], js.TopP(0.9, tau=tau[r]))
        assert int(alone) == int(got[r]), r


def test_truncation_ranks_the_logits_before_scaling() -> None:
    # (z - max z) / 3 flushes -FLT_MIN to zero on CPU, which would tie it with the
    # zeros at the front; ranked by the logits, the first zero is the maximum.
    z = np.zeros((2, 16), np.float32)
    z[0, 0] = -np.finfo(np.float32).tiny
    for strategy in (js.TopK(1, tau=3.0), js.TopP(0.01, tau=3.0)):
        q = np.asarray(js.probs(jnp.asarray(z), strategy))
        ids = np.asarray(js.sample(jax.random.key(0), jnp.asarray(z), strategy))
        assert ids.tolist() == [1, 0] == np.argmax(q, axis=-1).tolist()
        np.testing.assert_array_equal(q[[0, 1], ids], [1.0, 1.0])


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="XLA:CPU's fusion decisions")
def test_entropy_sweep_stores_no_tau_by_vocab_array() -> None:
    # The lab's sweep forms the weights slice by slice inside the pass that sums
    # them: the compiled program holds no [T, V] buffer, where the composition
    # entropy(probs(...)) under vmap holds several.
    taus = jnp.linspace(0.1, 3.0, 64)
    z = jnp.zeros(4099)

    def plain(z: jax.Array) -> jax.Array:
        return jax.vmap(lambda t: js.entropy(js.probs(z, js.Temperature(t))))(taus)

    big = "f32[64,4099]"
    assert big not in entropy_sweep.lower(z, taus).compile().as_text()
    assert big in jax.jit(plain).lower(z).compile().as_text()
