"""The sampler core at LLM vocabulary sizes: the fast draw against the definition.

Every family of logits a user meets (peaked Zipf-like at several temperatures,
Gaussian, heavy-tailed, plateaus of near-equal logits, exact ties) at V = 50257:
no draw outside the support of ``probs``, a chi-square test of the draws
(alpha 1e-6, head tokens one by one, the tail in equal-mass buckets), the top-p
boundary decided exactly as the definition decides it, and the boundary against
a float64 reference at V = 128256. Compiled functions are shared across tests:
the parameters are traced, so one compilation serves every family.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import gammaincc

import jaxsample as js
from jaxsample.samplers import _layout, _reference, _sampling, _search

V = 50_257
DRAWS = 2048
BATCH = 256
ALPHA = 1e-6


def family(name: str, rows: int, vocab: int = V, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(name.encode()) + seed)
    if name == "zipf":
        base = -1.1 * np.log(np.arange(1, vocab + 1)) * 3
        z = np.stack([base[rng.permutation(vocab)] for _ in range(rows)])
        z = z + rng.normal(0, 0.5, z.shape)
    elif name == "gaussian":
        z = rng.normal(0, 3, (rows, vocab))
    elif name == "heavy":
        z = np.clip(rng.standard_cauchy((rows, vocab)), -50, 50)
    elif name == "plateau":  # groups of logits equal to within 1e-6
        z = np.repeat(rng.normal(0, 2, (rows, vocab // 64 + 1)), 64, axis=1)[:, :vocab]
        z = z + rng.uniform(0, 1e-6, z.shape)
    elif name == "ties":  # exact ties everywhere
        z = np.round(rng.normal(0, 2, (rows, vocab)) * 2) / 2
    else:
        raise ValueError(name)
    return z.astype(np.float32)


FAMILIES = ["zipf", "gaussian", "heavy", "plateau", "ties"]
#: (name, builder of the strategy from traced parameters, parameters).
KINDS: dict[str, tuple[Callable[..., js.Strategy], tuple[float, ...]]] = {
    "top-p": (lambda a, tau: js.TopP(a, tau=tau), (0.9,)),
    "top-p-small": (lambda a, tau: js.TopP(a, tau=tau), (0.3,)),
    "top-k": (lambda a, tau: js.TopK(a.astype(jnp.int32), tau=tau, k_max=64), (50,)),
    # Top-p after a cut of bound 256 (> NUCLEUS_CANDIDATES): rejection rounds over the
    # row with the cut applied; after one of bound 64: the nucleus on the candidates.
    "chain": (
        lambda a, tau: js.chain(js.Temperature(tau), js.TopK(200), js.TopP(a)),
        (0.95,),
    ),
    "top-k-then-top-p": (
        lambda a, tau: js.chain(js.Temperature(tau), js.TopK(50), js.TopP(a)),
        (0.95,),
    ),
    # The nucleus measured at another scale than the draw (temperature after it),
    # and before a later cut (top-k after it): the passes read two kinds of weights.
    "top-p-then-temperature": (
        lambda a, tau: js.chain(js.TopP(a, tau=tau), js.Temperature(0.6)),
        (0.9,),
    ),
    "top-p-then-top-k": (
        lambda a, tau: js.chain(js.TopP(a, tau=tau), js.TopK(100)),
        (0.95,),
    ),
}


#: Kinds with a top-k part (its k is always >= 1 and below V).
CUTS = {"top-k", "chain", "top-k-then-top-p", "top-p-then-top-k"}


@functools.cache
def _drawer(kind: str, general: bool, known: bool = False) -> Callable[..., jax.Array]:
    """The compiled draw; ``known``: the program ``js.sample`` compiles for concrete
    parameters (no whole-row route for rows whose cut is off, none for greedy rows:
    the tests' k are >= 1, their temperatures above 0), else the one with every route."""
    build = KINDS[kind][0]
    facts = _sampling.Known(cuts_on=kind in CUTS, sampled=True) if known else _sampling.Known()

    @jax.jit
    def draw(key: jax.Array, row: jax.Array, a: jax.Array, tau: jax.Array) -> jax.Array:
        rows = jnp.broadcast_to(row, (BATCH, row.shape[-1]))
        layout = _layout.whole(rows.shape[-1])
        return _sampling._sample(key, rows, build(a, tau), layout, general, None, facts)

    return draw


@functools.cache
def _definition(kind: str) -> Callable[..., jax.Array]:
    build = KINDS[kind][0]
    return jax.jit(lambda row, a, tau: js.probs(row, build(a, tau)))


def counts_of(
    kind: str,
    row: np.ndarray,
    a: float,
    tau: float,
    seed: int,
    general: bool = False,
    known: bool = True,
) -> np.ndarray:
    draw = _drawer(kind, general, known)
    out = np.zeros(row.shape[-1], np.int64)
    for b in range(DRAWS // BATCH):
        ids = draw(
            jax.random.key(seed * 1000 + b), jnp.asarray(row), jnp.float32(a), jnp.float32(tau)
        )
        out += np.bincount(np.asarray(ids), minlength=row.shape[-1])
    return out


def chi_square(counts: np.ndarray, p: np.ndarray, cell: float = 20.0) -> float:
    """p-value: tokens expected >= ``cell`` times one by one, the rest in equal-mass buckets."""
    n = counts.sum()
    order = np.argsort(-p, kind="stable")
    p, counts = p[order], counts[order]
    head = p * n >= cell
    obs, exp = list(counts[head]), list(p[head] * n)
    tail_p, tail_c = p[~head], counts[~head]
    if tail_p.sum() * n >= cell:
        edges = np.floor(np.cumsum(tail_p) * n / cell)
        for b in np.unique(edges):
            sel = edges == b
            obs.append(tail_c[sel].sum())
            exp.append(tail_p[sel].sum() * n)
    o, e = np.asarray(obs, np.float64), np.asarray(exp, np.float64)
    if len(o) < 2:
        return 1.0
    stat = float(np.sum((o - e) ** 2 / e))
    return float(gammaincc((len(o) - 1) / 2.0, stat / 2.0))


CASES = [
    (fam, tau, kind)
    for fam in FAMILIES
    for tau in ([0.5, 1.0, 2.0] if fam == "zipf" else [1.0])
    for kind in KINDS
]


@pytest.mark.parametrize(("fam", "tau", "kind"), CASES)
def test_draws_follow_the_definition(fam: str, tau: float, kind: str) -> None:
    row = family(fam, 1)[0]
    (a,) = KINDS[kind][1]
    p = np.asarray(
        _definition(kind)(jnp.asarray(row), jnp.float32(a), jnp.float32(tau)), np.float64
    )
    seed = zlib.crc32(f"{fam}{tau}{kind}".encode())
    counts = counts_of(kind, row, a, tau, seed)
    assert counts[p == 0].sum() == 0, "a draw outside the support"
    assert chi_square(counts, p / p.sum()) > ALPHA


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_known_facts_draw_as_the_program_with_every_route(kind: str) -> None:
    # The program compiled when every cut is known to be on and no row greedy, and the
    # one that can also draw rows whose cut is off or that are greedy, give the same
    # tokens.
    row = jnp.asarray(family("gaussian", 1)[0])
    (a,) = KINDS[kind][1]
    for seed in range(3):
        args = (jax.random.key(seed), row, jnp.float32(a), jnp.float32(1.2))
        np.testing.assert_array_equal(
            _drawer(kind, False, True)(*args), _drawer(kind, False)(*args)
        )


@pytest.mark.parametrize(
    ("vocab", "k_max"), [(50_257, 1), (50_257, 64), (128_256, 256), (5000, 256)]
)
def test_top_k_cut_is_the_ranking(vocab: int, k_max: int) -> None:
    # The candidates of a top-k cut are the k_max first tokens of the ranking, ties by
    # lowest index, whether groups are ranked first or not (5000 tokens, 256: not),
    # against a sort; rows with few finite logits, NaN, and the maximum in the last,
    # partial group.
    layout = _layout.whole(vocab)
    cut = jax.jit(_search.top_k_cut, static_argnums=(3, 4))
    for fam in FAMILIES:
        z = family(fam, 4, vocab)
        z[1, :] = -np.inf
        z[1, 5:9] = 1.0
        z[2, ::3] = np.nan
        z[3, -3:] = z[3].max() + 1.0
        x = jnp.asarray(z)
        top, maxima = _search.row_scan(x, None, _search.grouped(k_max, vocab))
        values, ids = cut(x, top, maxima, k_max, layout)
        clean = np.asarray(_reference.clean(x, top[:, None]))
        for r in range(4):
            want = np.lexsort((np.arange(vocab), -clean[r]))[:k_max]
            np.testing.assert_array_equal(np.asarray(ids[r]), want, err_msg=f"{fam} {r}")
            np.testing.assert_array_equal(np.asarray(values[r]), clean[r][want])


@pytest.mark.parametrize("vocab", [300, 50_257, 131_072])
def test_masses_ahead_are_the_layout_sums(vocab: int) -> None:
    # A top-p part after a top-k cut sums the candidates' weights alone: every mass
    # ahead and the total must be the bits the definition forms over the whole row.
    # Tokens crowd into shared columns and chunks, where the nesting of the sums shows.
    layout = _layout.whole(vocab)
    rng = np.random.default_rng(vocab)
    rows, k = 3, 64
    ids = np.stack([rng.choice(vocab, k, replace=False) for _ in range(rows)])
    start = int(rng.integers(0, vocab - 40 * layout.column))
    crowd = np.concatenate(
        [start + layout.column * np.arange(20), start + 1 + layout.column * np.arange(12)]
    )
    crowd = np.concatenate([crowd, start + np.arange(2, 30)])
    crowd = np.unique(crowd)[:k]
    rest = rng.choice(np.setdiff1d(np.arange(vocab), crowd), k - crowd.size, replace=False)
    ids[1] = rng.permutation(np.concatenate([crowd, rest]))
    ids = ids.astype(np.int32)
    w = (rng.exponential(1.0, (rows, k)) * 10.0 ** rng.integers(-7, 3, (rows, k))).astype(
        np.float32
    )
    w[:, :: k // 5] = 0.0
    got = np.asarray(jax.jit(_layout.masses_ahead, static_argnums=2)(w, ids, layout))
    total = jax.jit(lambda a: _layout.mass(a, layout))
    for r in range(rows):
        full = np.zeros((k + 1, vocab), np.float32)
        for j in range(k + 1):
            full[j, ids[r, :j]] = w[r, :j]
        np.testing.assert_array_equal(got[r], np.asarray(total(jnp.asarray(full))), err_msg=r)


@pytest.mark.parametrize("kind", ["top-p", "chain"])
def test_general_route_draws_the_same_distribution(kind: str) -> None:
    row = family("gaussian", 1, 5000, seed=3)[0]  # the definition sorts: a shorter row
    (a,) = KINDS[kind][1]
    p = np.asarray(
        _definition(kind)(jnp.asarray(row), jnp.float32(a), jnp.float32(1.3)), np.float64
    )
    counts = counts_of(kind, row, a, 1.3, 11, general=True)
    assert counts[p == 0].sum() == 0
    assert chi_square(counts, p / p.sum()) > ALPHA


def test_chi_square_rejects_a_kept_set_one_token_too_wide() -> None:
    # The row's third token weighs about 0.2: draws of top-3 judged against top-2 must
    # fail the test (observed counts where none are expected), and pass against top-3.
    z, _ = _boundary_row()
    two = np.asarray(_definition("top-k")(jnp.asarray(z), jnp.float32(2), jnp.float32(1.0)))
    three = np.asarray(_definition("top-k")(jnp.asarray(z), jnp.float32(3), jnp.float32(1.0)))
    counts = counts_of("top-k", z, 3, 1.0, 5)
    assert chi_square(counts, three.astype(np.float64)) > ALPHA
    wider = 0.999 * two.astype(np.float64) + 0.001 * three  # no zero cell: the chi-square decides
    assert chi_square(counts, wider / wider.sum()) < ALPHA


def _boundary_row() -> tuple[np.ndarray, int]:
    """A wide row whose token of rank 2 is heavy (its own mass about 0.2)."""
    z = family("gaussian", 1, seed=7)[0] * 0.3
    top = np.argsort(-z, kind="stable")[:3]
    z[top] = np.float32(12.0) - np.arange(3, dtype=np.float32) * np.float32(0.25)
    return z, int(top[2])


#: The cut before the top-p part of the kinds that have one.
CUT_BEFORE = {"chain": 200, "top-k-then-top-p": 50}


@pytest.mark.parametrize("kind", ["top-p", "chain", "top-k-then-top-p"])
def test_top_p_boundary_decided_exactly_as_the_definition(kind: str) -> None:
    # p walks ulp by ulp across the value at which the heavy token leaves the nucleus;
    # the fast draw must keep it exactly when the definition does (top-k-then-top-p
    # measures its nucleus on the top-k candidates, the chain by rejection rounds).
    z, tok = _boundary_row()
    row = jnp.asarray(z)[None]
    zr, m = _reference.sanitise(row)
    w = _reference.weights(zr, m[:, None], jnp.float32(1.0))
    if kind in CUT_BEFORE:  # only the first tokens of the ranking weigh
        rank = jnp.argsort(jnp.argsort(-zr, stable=True), stable=True)
        w = jnp.where(rank < CUT_BEFORE[kind], w, 0.0)
    before = _reference.ahead(zr, jnp.arange(V), zr[:, tok : tok + 1], tok)
    share = np.float32(_layout.mass(jnp.where(before, w, 0.0))[0] / _layout.mass(w)[0])
    p = np.float32(share - np.float32(js.TOP_P_SLACK))
    for _ in range(3):
        p = np.nextafter(p, np.float32(0))
    decided = set()
    for step in range(7):
        q = _definition(kind)(row[0], jnp.float32(p), jnp.float32(1.0))
        kept = bool(np.asarray(q)[tok] > 0)
        counts = counts_of(kind, z, float(p), 1.0, 23 + step)
        assert (counts[tok] > 0) == kept, (float(p), kept, int(counts[tok]))
        decided.add(kept)
        p = np.nextafter(p, np.float32(1))
    assert decided == {True, False}  # both sides of the boundary were met


def test_no_token_below_p_is_dropped_at_llama3_vocabulary() -> None:
    vocab, p = 128_256, 0.9
    rows = np.concatenate([family(f, 8, vocab) for f in ["zipf", "gaussian", "heavy"]]) / 1.3
    q = np.asarray(js.probs(jnp.asarray(rows), js.TopP(p)))
    for r in range(rows.shape[0]):
        z = rows[r].astype(np.float64)
        w = np.exp(z - z.max())
        order = np.lexsort((np.arange(vocab), -z))
        ahead = np.empty(vocab)
        ahead[order] = np.concatenate([[0.0], np.cumsum(w[order])[:-1]]) / w.sum()
        kept = q[r] > 0
        assert np.all(kept[ahead < p]), f"row {r}: a token with exact mass ahead < p dropped"
        assert not np.any(kept[ahead >= p + 4 * js.TOP_P_SLACK]), f"row {r}: kept far past p"


@pytest.mark.parametrize("fam", FAMILIES)
def test_equal_distributions_draw_identical_tokens(fam: str) -> None:
    z = jnp.asarray(family(fam, 16))
    key = jax.random.key(zlib.crc32(fam.encode()))
    for tau in [0.7, 1.5]:
        want = np.asarray(js.sample(key, z, js.Temperature(tau)))
        for s in [js.TopP(1.0, tau=tau), js.TopK(0, tau=tau), js.TopK(V, tau=tau, k_max=V)]:
            np.testing.assert_array_equal(js.sample(key, z, s), want, err_msg=repr(s))
    greedy = np.asarray(js.sample(key, z, js.Greedy()))
    np.testing.assert_array_equal(greedy, np.argmax(np.asarray(z), -1))
    for s in [js.TopK(1), js.Temperature(0.0), js.TopP(1e-9), js.TopK(1, tau=0.0)]:
        np.testing.assert_array_equal(js.sample(key, z, s), greedy, err_msg=repr(s))
    # A greedy temperature inside top-p strategies, also per row beside sampled rows.
    rows = z.shape[0]
    for s in [js.TopP(0.9, tau=0.0), js.chain(js.TopP(0.7), js.Temperature(jnp.zeros(rows)))]:
        np.testing.assert_array_equal(js.sample(key, z, s), greedy, err_msg=repr(s))
    half = jnp.where(jnp.arange(rows) % 2 == 0, 0.0, 0.8)
    mixed = np.asarray(js.sample(key, z, js.chain(js.TopK(40), js.TopP(0.9, tau=half))))
    np.testing.assert_array_equal(mixed[::2], greedy[::2])


def test_top_k_rows_with_the_cut_off_draw_from_the_whole_row() -> None:
    # A top-k draw reads its candidates; a row whose cut is off (k = 0 or k >= V) draws
    # from the whole row, as Temperature does, also beside rows with a cut and under vmap.
    # (A traced k may exceed k_max: V disables the cut; a concrete one is refused.)
    z = jnp.asarray(family("zipf", 6))
    ks = jnp.array([0, 5, V, 50, 0, 1], jnp.int32)
    key = jax.random.key(8)

    @jax.jit
    def top_k(key: jax.Array, x: jax.Array, k: jax.Array) -> jax.Array:
        return js.sample(key, x, js.TopK(k, tau=0.9, k_max=64))

    got = np.asarray(top_k(key, z, ks))
    temperature = np.asarray(js.sample(key, z, js.Temperature(0.9)))
    off = np.asarray((ks == 0) | (ks >= V))
    np.testing.assert_array_equal(got[off], temperature[off])
    assert got[5] == int(jnp.argmax(z[5]))
    q = np.asarray(js.probs(z, js.TopK(ks, tau=0.9)))
    assert np.all(q[np.arange(6), got] > 0)
    keys = jax.random.split(key, 6)
    mapped = np.asarray(jax.vmap(top_k, in_axes=(0, None, 0))(keys, z[0], ks))
    for i in range(6):
        assert mapped[i] == int(top_k(keys[i], z[0], ks[i])), i


def test_jit_equals_eager_and_rows_ignore_their_batch() -> None:
    z = jnp.asarray(family("zipf", 8))
    key = jax.random.key(4)
    s = js.chain(js.Temperature(1.4), js.TopK(300), js.TopP(0.9))
    eager = np.asarray(js.sample(key, z, s))
    np.testing.assert_array_equal(jax.jit(lambda k, x: js.sample(k, x, s))(key, z), eager)
    with jax.disable_jit():
        np.testing.assert_array_equal(js.sample(key, z[:2], s), eager[:2])
    for r in [0, 5]:
        alone = js.sample(jax.random.fold_in(key, r), z[r], s)
        assert int(alone) == eager[r]


def test_strategies_are_pytrees_that_map_and_vmap() -> None:
    ps, taus = jnp.array([0.5, 0.9, 1.0]), jnp.array([0.7, 1.0, 1.5])
    z = jax.random.normal(jax.random.key(0), (300,)) * 2
    keys = jax.random.split(jax.random.key(1), 3)
    # A sweep written as a vmap over strategies (the README's form).
    ids = jax.vmap(lambda s, k: js.sample(k, z, s))(js.TopP(ps, tau=taus), keys)
    for i in range(3):
        assert int(ids[i]) == int(js.sample(keys[i], z, js.TopP(float(ps[i]), tau=float(taus[i]))))
    # in_axes built with tree.map, a scalar leaf left unmapped, and a chain.
    s = js.TopP(ps, tau=0.8)
    axes = jax.tree.map(lambda x: 0 if jnp.ndim(x) else None, s)
    got = jax.vmap(lambda s_, k: js.sample(k, z, s_), in_axes=(axes, 0))(s, keys)
    assert got.shape == (3,)
    c = js.chain(js.Temperature(taus), js.TopK(jnp.array([5, 10, 20]), k_max=64), js.TopP(ps))
    axes = jax.tree.map(lambda x: 0 if jnp.ndim(x) else None, c)
    got = jax.vmap(lambda c_, k: js.sample(k, z, c_), in_axes=(axes, 0))(c, keys)
    for i in range(3):
        one = js.chain(
            js.Temperature(taus[i]), js.TopK(int([5, 10, 20][i]), k_max=64), js.TopP(ps[i])
        )
        assert int(got[i]) == int(js.sample(keys[i], z, one))
    # Unflattening does not validate (placeholder leaves); construction does.
    assert jax.tree.structure(s).unflatten([None, None]).p is None
    with pytest.raises(ValueError, match="p must be in"):
        js.TopP(1.5)


def test_two_nuclei_and_custom_parts_take_the_definition() -> None:
    z = jnp.asarray(family("gaussian", 2, 2000))
    two = js.chain(js.TopP(0.95, tau=1.2), js.TopP(0.5))
    q = np.asarray(js.probs(z, two))
    ids = np.asarray(js.sample(jax.random.key(2), jnp.broadcast_to(z[0], (4096, 2000)), two))
    assert np.all(q[0][ids] > 0)
    inner = np.asarray(js.probs(z, js.TopP(0.95, tau=1.2)))
    assert np.all((q > 0) <= (inner > 0)) and (q > 0).sum() < (inner > 0).sum()


def test_uniforms_are_the_keys_streams() -> None:
    """Counter ``j`` of a row key is entry ``j`` of ``jax.random.uniform(key, (N,))``, any N."""
    from jaxsample.samplers._random import uniforms

    keys = jax.random.split(jax.random.key(11), 5)
    counters = jnp.array([0, 1, 2, 7, 40], jnp.int32)
    got = np.asarray(uniforms(keys, counters))
    for n in (41, 64):
        stream = jax.vmap(lambda k, n=n: jax.random.uniform(k, (n,)))(keys)
        assert np.array_equal(got, np.asarray(stream)[:, np.asarray(counters)])
    first = jax.vmap(lambda k: jax.random.uniform(k, ()))(keys)
    assert np.array_equal(got[:, 0], np.asarray(first))


#: Kinds drawn under every tuning: those above, a temperature (with greedy rows) and
#: a top-p after a top-k whose cut is off (the rejection route behind a cut).
TUNED: dict[str, tuple[Callable[..., js.Strategy], tuple[float, ...]]] = {
    **KINDS,
    "temperature": (lambda a, tau: js.Temperature(tau), (0.0,)),
    "top-k-off-then-top-p": (
        lambda a, tau: js.chain(js.TopK(a.astype(jnp.int32)), js.TopP(0.8, tau=tau)),
        (0,),
    ),
}


def _bad_rows(rows: int, vocab: int) -> np.ndarray:
    z = family("gaussian", rows, vocab, seed=5)
    z[0, ::7] = np.nan  # NaN entries
    z[1, 5], z[1, 900] = np.inf, np.inf  # +inf entries: uniform among them
    z[2] = -np.inf  # no usable logit
    z[3] = np.nan
    z[4, 100], z[4, 3] = np.nan, np.inf
    return z


@pytest.mark.parametrize("kind", sorted(TUNED))
def test_every_tuning_draws_the_same_tokens(kind: str) -> None:
    """The CPU's and the accelerators' program shapes (``_layout.Tuning``), both run here,
    draw the same tokens bit for bit on every family, bad rows and greedy rows included."""
    build, (value,) = TUNED[kind]
    a = jnp.float32(value)
    rows = 24
    # Per-row temperatures: greedy rows (0) beside sampled ones.
    tau = jnp.asarray(np.resize([0.0, 0.5, 0.8, 1.5, 2.0, 1.0], rows), jnp.float32)
    draws = {
        t: jax.jit(
            lambda key, z, a, tau, t=t: _sampling._sample(
                key, z, build(a, tau), _layout.whole(V), tune=t
            )
        )
        for t in (_layout.CPU, _layout.ACCELERATOR)
    }
    for i, fam in enumerate([*FAMILIES, "bad"]):
        z = jnp.asarray(_bad_rows(rows, V) if fam == "bad" else family(fam, rows))
        key = jax.random.key(100 + i)
        cpu, accel = (np.asarray(draw(key, z, a, tau)) for draw in draws.values())
        assert np.array_equal(cpu, accel), (fam, np.flatnonzero(cpu != accel))


def _first_max_reference(z: np.ndarray) -> np.ndarray:
    """The definition's greedy token of each row, in NumPy: the first cleaned maximum."""
    out = []
    for row in z:
        c = np.where(np.isnan(row), -np.inf, row)
        if np.any(c == np.inf):
            out.append(int(np.flatnonzero(c == np.inf)[0]))
        elif np.all(c == -np.inf):
            out.append(0)
        else:
            out.append(int(np.argmax(c)))  # the first of equal maxima; -0.0 equals 0.0
    return np.array(out)


def _greedy_rows(vocab: int) -> np.ndarray:
    """Rows that test where the first maximum is found: groups, NaN, infinities, ties."""
    rng = np.random.default_rng(vocab)
    z = rng.normal(0, 1, (14, vocab)).astype(np.float32)
    last = vocab - 1
    z[0, [3 % vocab, min(40, last)]] = 9.0  # ties in different groups
    z[1, last] = 9.0  # the maximum in the last (partial) group
    z[2, min(16, last)], z[2, min(17, last)] = np.nan, 9.0  # a NaN just before it
    z[3, 0], z[3, min(1, last)] = np.nan, 9.0
    z[4, min(20, last)], z[4, last] = np.inf, np.inf  # +inf entries: the first one
    z[5] = -np.inf
    z[6] = np.nan
    z[7, ::2] = np.nan
    z[7, 1::2] = -np.inf
    z[8] = -np.abs(z[8]) - 1.0
    z[8, min(5, last)], z[8, min(9, last)] = -0.0, 0.0  # -0.0 and 0.0 tie as the maximum
    z[9] = -np.inf
    z[9, min(33, last)] = -7.0  # one usable logit
    z[10] = np.round(z[10])  # many exact ties
    z[11, min(15, last)], z[11, min(31, last)] = 9.0, 9.0  # ties at the ends of groups
    z[12, :] = 2.0  # all equal
    z[13, min(30, last)], z[13, min(31, last)] = np.nan, np.inf  # NaN beside +inf
    return z


@pytest.mark.parametrize("vocab", [1, 15, 17, 1000, V])
def test_greedy_finds_the_first_maximum_on_every_route(vocab: int) -> None:
    # The greedy draw takes the first group whose maximum is the row's, then the first
    # token of that group equal to it. Greedy rows of Greedy(), of a temperature of 0
    # (its own pass) and of TopK(1), under both tunings, against NumPy.
    z = _greedy_rows(vocab)
    want = _first_max_reference(z)
    rows = z.shape[0]
    kinds = [js.Greedy(), js.Temperature(jnp.zeros(rows)), js.TopK(1, k_max=1)]
    key = jax.random.key(3)
    for t in (_layout.CPU, _layout.ACCELERATOR):
        for s in kinds:
            got = _sampling._sample(key, jnp.asarray(z), s, _layout.whole(vocab), tune=t)
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{s!r} {t}")


_SPECIAL = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, -3.5, 2.0], np.float32)


def _operand(kind: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "f32":
        return rng.choice(_SPECIAL, shape).astype(np.float32)
    if kind == "i32":
        return rng.integers(-5, 5, shape).astype(np.int32)
    return rng.integers(0, 2, shape).astype(bool)


@pytest.mark.parametrize(
    ("kind", "a_shape", "b"),
    [
        ("f32", (3, 1), (4,)),
        ("f32", (2, 3), 0.5),
        ("f32", (2, 3), -np.inf),
        ("i32", (5,), 3),
        ("i32", (2, 1), np.arange(3)),  # a NumPy int64 constant, as the core passes them
        ("bool", (3,), (2, 3)),
        ("bool", (2, 3), True),
    ],
)
def test_core_arithmetic_is_jnps(kind: str, a_shape: tuple[int, ...], b: object) -> None:
    """The lax-traced arithmetic of the sampler core gives jnp's dtype, shape and bits."""
    a = _operand(kind, a_shape, 0)
    b_arr = _operand(kind, b, 1) if isinstance(b, tuple) else b
    pairs: list[tuple[Callable[..., jax.Array], Callable[..., jax.Array]]] = [
        (_layout.lt, lambda x, y: x < y),
        (_layout.le, lambda x, y: x <= y),
        (_layout.gt, lambda x, y: x > y),
        (_layout.ge, lambda x, y: x >= y),
        (_layout.eq, lambda x, y: x == y),
        (_layout.ne, lambda x, y: x != y),
    ]
    if kind == "bool":
        pairs += [(_layout.both, lambda x, y: x & y), (_layout.either, lambda x, y: x | y)]
    else:
        pairs += [
            (_layout.add, lambda x, y: x + y),
            (_layout.sub, lambda x, y: x - y),
            (_layout.mul, lambda x, y: x * y),
            (_layout.minimum, lambda x, y: jnp.minimum(x, y)),
        ]

    def same(f: Callable[[jax.Array], jax.Array], g: Callable[[jax.Array], jax.Array]) -> None:
        got, want = jax.jit(f)(a), jax.jit(g)(a)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(
            np.asarray(got).view(np.uint8), np.asarray(want).view(np.uint8)
        )

    for ours, theirs in pairs:
        # The traced operand first, then second; the other a constant, as in the core.
        same(functools.partial(ours, b=b_arr), functools.partial(theirs, y=b_arr))
        same(functools.partial(ours, b_arr), functools.partial(theirs, b_arr))


def test_lanes_are_a_stack() -> None:
    parts = [_operand("f32", (2, 3), seed) for seed in range(3)]
    got = jax.jit(lambda *p: _layout.lanes(*p))(*parts)
    want = jnp.stack(parts, -1)
    assert got.dtype == want.dtype and got.shape == want.shape == (2, 3, 3)
    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), np.asarray(want).view(np.uint32))
    ints = jax.jit(lambda x: _layout.lanes(x, jnp.full((4,), -1, jnp.int32)))(jnp.arange(4))
    np.testing.assert_array_equal(ints, np.stack([np.arange(4), np.full(4, -1)], -1))


def test_the_bound_of_k_changes_no_draw() -> None:
    """``k_max`` sizes the selection, not the distribution: for ``k <= k_max`` every bound
    draws the same tokens (the extra candidates weigh 0 and are added last)."""

    def draws(z: jax.Array, k: int, bound: int | None) -> np.ndarray:
        strategy = js.TopK(k, k_max=bound)
        return np.stack([np.asarray(js.sample(jax.random.key(s), z, strategy)) for s in range(6)])

    for fam in ("zipf", "ties"):
        z = jnp.asarray(family(fam, 8, vocab=5000))
        for k in (1, 7, 50):
            first = draws(z, k, k)
            for bound in (64, 100, None):
                np.testing.assert_array_equal(draws(z, k, bound), first)
