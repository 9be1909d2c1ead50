"""The lab's settings and measurements: kept sets, grids, temperature order, equivalences."""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.analysis import kept_mass, kept_set_size
from jaxsample.labs._model import first_step_logits
from jaxsample.model import Pretrained
from jaxsample.samplers import Greedy, Temperature, TopK, TopP, chain, entropy, probs, sample

#: Prompts: every tense, several subjects, and a prompt whose next word is the verb.
PROMPTS = (
    "Tomorrow she",
    "Yesterday Tom",
    "Every day I",
    "Right now they",
    "Next week we",
    "Usually Anna",
    "Tomorrow she will",
)
#: The prompt of the heatmaps and of the temperature-order example.
EXAMPLE = "Tomorrow she"
KS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 995)
PS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
GRID_TAUS = (0.5, 1.0, 1.5, 2.0)
GRID_KS = (1, 3, 10, 50)
GRID_PS = (0.3, 0.6, 0.9, 0.99)
#: Temperatures of the before/after comparison and the nucleus mass used there.
ORDER_TAUS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
ORDER_P = 0.9
#: The two temperatures shown in the before/after figure.
ORDER_SHOWN = (0.5, 2.0)
#: Temperatures at which top-p 1.0 and top-k 1 are compared with their equivalents.
EQUIV_TAUS = (0.5, 1.0, 2.0)
N_DRAWS = 500
#: Float32 rounding allowed when a kept mass is re-summed (the filter itself decides
#: boundaries within 1e-6 of p).
MASS_TOL = 1e-5
#: Columns of the distribution heatmaps: this many most likely tokens, then "rest".
HEATMAP_TOKENS = 12


@functools.partial(jax.jit, static_argnames=("k_max",))
def kept_against_k(z: jax.Array, ks: jax.Array, k_max: int) -> tuple[jax.Array, jax.Array]:
    """Kept-set size int32 [K, P] and kept mass float32 [K, P] of top-k at tau = 1.

    Args:
        z: logits float32 [P, V].
        ks: int32 [K].
        k_max: static bound on k (the vocabulary size here).
    """
    ref = probs(z, Temperature(1.0))

    def one(k: jax.Array) -> tuple[jax.Array, jax.Array]:
        q = probs(z, TopK(k, k_max=k_max))
        return kept_set_size(q), kept_mass(q, ref)

    return jax.vmap(one)(ks)


@jax.jit
def kept_against_p(z: jax.Array, ps: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Kept size int32 [S, P], kept mass float32 [S, P] and the smallest kept probability.

    The third output, float32 [S, P], is the untruncated probability of the least
    likely kept token (used to check that the nucleus is minimal).

    Args:
        z: logits float32 [P, V].
        ps: float32 [S].
    """
    ref = probs(z, Temperature(1.0))

    def one(p: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        q = probs(z, TopP(p))
        smallest = jnp.min(jnp.where(q > 0, ref, jnp.inf), axis=-1)
        return kept_set_size(q), kept_mass(q, ref), smallest

    return jax.vmap(one)(ps)


@functools.partial(jax.jit, static_argnames=("k_max",))
def truncation_grid(
    z: jax.Array, taus: jax.Array, ks: jax.Array, ps: jax.Array, k_max: int
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions under every (tau, k) and every (tau, p) pair.

    Args:
        z: logits float32 [P, V].
        taus: float32 [G], paired element-wise with ``ks`` and with ``ps``.
        ks: int32 [G].
        ps: float32 [G].
        k_max: static bound on k.

    Returns:
        ``(q_topk, q_topp)``, each float32 [G, P, V].
    """
    q_k = jax.vmap(lambda t, k: probs(z, TopK(k, tau=t, k_max=k_max)))(taus, ks)
    q_p = jax.vmap(lambda t, p: probs(z, TopP(p, tau=t)))(taus, ps)
    return q_k, q_p


@jax.jit
def temperature_order(
    z: jax.Array, taus: jax.Array, p: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Nucleus with the temperature before and after the cut, for every tau.

    Args:
        z: logits float32 [P, V].
        taus: float32 [T].
        p: float32 scalar nucleus mass.

    Returns:
        ``(before, after, reference)``, each float32 [T, P, V]: ``TopP(p, tau)``,
        ``chain(TopP(p), Temperature(tau))`` and ``Temperature(tau)``.
    """
    before = jax.vmap(lambda t: probs(z, TopP(p, tau=t)))(taus)
    after = jax.vmap(lambda t: probs(z, chain(TopP(p), Temperature(t))))(taus)
    reference = jax.vmap(lambda t: probs(z, Temperature(t)))(taus)
    return before, after, reference


@jax.jit
def equivalences(
    key: jax.Array, z: jax.Array, taus: jax.Array, seeds: jax.Array
) -> dict[str, jax.Array]:
    """Distributions [T, P, V] and draws [T, P, D] of the strategies compared exactly."""
    rows = jnp.broadcast_to(z[:, None, :], (z.shape[0], seeds.shape[0], z.shape[1]))
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(seeds)
    keys = jnp.broadcast_to(keys[None, :], rows.shape[:2])

    def per_tau(t: jax.Array) -> dict[str, jax.Array]:
        return {
            "q_top_p_1": probs(z, TopP(1.0, tau=t)),
            "q_temperature": probs(z, Temperature(t)),
            "q_top_k_1": probs(z, TopK(1, tau=t)),
            "d_top_p_1": sample(keys, rows, TopP(1.0, tau=t)),
            "d_temperature": sample(keys, rows, Temperature(t)),
            "d_top_k_1": sample(keys, rows, TopK(1, tau=t)),
        }

    out: dict[str, jax.Array] = jax.vmap(per_tau)(taus)
    out["q_greedy"] = probs(z, Greedy())
    out["d_greedy"] = sample(keys, rows, Greedy())
    return out


Array = np.ndarray[Any, Any]


@dataclasses.dataclass(frozen=True)
class Measures:
    """What the lab measures on the prompts' first-step logits (NumPy arrays).

    The tables, files, plots and checks all read it; ``P`` is the prompt axis.
    """

    words: tuple[str, ...]
    ks_used: tuple[int, ...]
    size_k: Array
    mass_k: Array
    size_p: Array
    mass_p: Array
    smallest_p: Array
    grid: list[tuple[float, int]]
    h_gk: Array
    h_gp: Array
    n_gk: Array
    n_gp: Array
    q_gk_np: Array
    q_gp_np: Array
    keep_before: Array
    keep_after: Array
    size_before: Array
    size_after: Array
    mass_before: Array
    mass_after: Array
    before_np: Array
    after_np: Array
    ref: Array
    eq: dict[str, Array]
    argmax: Array
    one_hot: Array
    q1: Array
    h1: Array


def measure(model: Pretrained, seed: int) -> Measures:
    """Measure kept sets, the grids, the temperature order and the equivalence draws.

    The draws of the equivalence checks use ``fold_in(key(seed), d)``.
    """
    words = tuple(model.tokenizer.vocab)
    vocab = len(words)
    z = jnp.stack([first_step_logits(model, p) for p in PROMPTS])  # [P, V]
    ks_used = tuple(min(k, vocab) for k in KS)

    # 1. Kept set against k and against p (tau = 1).
    size_k, mass_k = (
        np.asarray(a) for a in kept_against_k(z, jnp.asarray(ks_used, jnp.int32), vocab)
    )
    size_p, mass_p, smallest_p = (
        np.asarray(a, np.float64) for a in kept_against_p(z, jnp.asarray(PS, jnp.float32))
    )
    size_p = size_p.astype(np.int64)
    mass_k = mass_k.astype(np.float64)

    # 2. The (tau, k) and (tau, p) grids.
    grid = list(itertools.product(GRID_TAUS, range(len(GRID_KS))))
    g_taus = jnp.asarray([t for t, _ in grid], jnp.float32)
    g_ks = jnp.asarray([GRID_KS[i] for _, i in grid], jnp.int32)
    g_ps = jnp.asarray([GRID_PS[i] for _, i in grid], jnp.float32)
    q_gk, q_gp = truncation_grid(z, g_taus, g_ks, g_ps, vocab)
    h_gk = np.asarray(entropy(q_gk), np.float64) + 0.0  # [G, P]; + 0.0 turns -0.0 into 0.0
    h_gp = np.asarray(entropy(q_gp), np.float64) + 0.0
    n_gk = np.asarray(kept_set_size(q_gk))
    n_gp = np.asarray(kept_set_size(q_gp))
    q_gk_np = np.asarray(q_gk, np.float64)
    q_gp_np = np.asarray(q_gp, np.float64)

    # 3. Temperature before / after the nucleus.
    before, after, ref = temperature_order(
        z, jnp.asarray(ORDER_TAUS, jnp.float32), jnp.float32(ORDER_P)
    )
    keep_before = np.asarray(before) > 0  # [T, P, V]
    keep_after = np.asarray(after) > 0
    size_before = keep_before.sum(-1)
    size_after = keep_after.sum(-1)
    mass_before = np.asarray(kept_mass(before, ref), np.float64)
    mass_after = np.asarray(kept_mass(after, ref), np.float64)
    before_np, after_np = np.asarray(before, np.float64), np.asarray(after, np.float64)

    # 4. Exact equivalences.
    n_draws = N_DRAWS
    eq = {
        k: np.asarray(v)
        for k, v in equivalences(
            jax.random.key(seed),
            z,
            jnp.asarray(EQUIV_TAUS, jnp.float32),
            jnp.arange(n_draws, dtype=jnp.uint32),
        ).items()
    }
    argmax = np.argmax(np.asarray(z), axis=-1)
    one_hot = np.eye(vocab, dtype=np.float32)[argmax]

    q1 = np.asarray(probs(z, Temperature(1.0)), np.float64)
    h1 = np.asarray(entropy(jnp.asarray(q1, jnp.float32)), np.float64)
    return Measures(
        words=words,
        ks_used=ks_used,
        size_k=size_k,
        mass_k=mass_k,
        size_p=size_p,
        mass_p=mass_p,
        smallest_p=smallest_p,
        grid=grid,
        h_gk=h_gk,
        h_gp=h_gp,
        n_gk=n_gk,
        n_gp=n_gp,
        q_gk_np=q_gk_np,
        q_gp_np=q_gp_np,
        keep_before=keep_before,
        keep_after=keep_after,
        size_before=size_before,
        size_after=size_after,
        mass_before=mass_before,
        mass_after=mass_after,
        before_np=before_np,
        after_np=after_np,
        ref=np.asarray(ref),
        eq=eq,
        argmax=argmax,
        one_hot=one_hot,
        q1=q1,
        h1=h1,
    )
