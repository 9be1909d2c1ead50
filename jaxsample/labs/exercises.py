"""Lab: six sampling exercises (5.1 to 5.6), answered with exact values and measurements.

* 5.1 How often is "pizza" drawn at each temperature from the five-token example?
  Exactly (softmax), from 100 draws, and from a large number of draws with a
  simultaneous 95 % confidence interval.
* 5.2 A temperature x top-k grid on the same example: exact distributions, draws,
  and which settings suit which uses (from the entropies and top-token shares).
* 5.3 Every way to make the Mini-GPT's generation deterministic: greedy,
  temperature 0, top-k 1 (the key then does not matter), or a fixed key with any
  strategy (the same key then gives the same text).
* 5.4 Continued pretraining: a tiny model trained for N steps, resumed from its
  checkpoint (parameters *and* optimiser state) for one more epoch, ends
  bit-identical to an uninterrupted run of the same length.
* 5.5 The shipped model's training and validation losses, from its manifest and
  recomputed on the corpus.
* 5.6 Model sizes compared (the shipped ``small`` against a ``tiny`` trained here,
  and ``large`` when a trained one is shipped), and the notebook's decoding methods
  (greedy, plain sampling, nucleus, nucleus then top-k) on the five-token example
  with their diversity (distinct / total) and coherence (most common share),
  computed exactly and by sampling.

Nucleus sampling: Holtzman et al., The Curious Case of Neural Text Degeneration,
2019. Distinct-n: Li et al., A Diversity-Promoting Objective Function for Neural
Conversation Models, 2016.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from jaxsample.analysis import (
    distinct_completions,
    distinct_n,
    expected_coherence,
    expected_distinct_fraction,
)
from jaxsample.data import (
    MAX_SENTENCE_WORDS,
    Tokenizer,
    check_completion,
    encode_sentences,
    generate_corpus,
    heldout_prompts,
)
from jaxsample.decoding import completion_ids, generate_ids
from jaxsample.labs._model import model_identity
from jaxsample.labs._plotting import new_figure, save_figure
from jaxsample.labs._report import LabReport, print_table, z_score
from jaxsample.labs.diversity import lab_prompts
from jaxsample.model import GPTConfig, Params, count_params, loss_fn
from jaxsample.progress import note
from jaxsample.samplers import (
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    chain,
    entropy,
    probs,
    sample,
)
from jaxsample.training import (
    SHIPPED_MODEL_DIR,
    Pretrained,
    TrainConfig,
    load_pretrained,
    restore_checkpoint,
    train,
)

__all__ = [
    "FOOD",
    "FOOD_LOGITS",
    "decoding_methods",
    "food_grid",
    "pizza_draws",
    "run",
    "split_loss",
]

FOOD = ("pizza", "burger", "pasta", "salad", "sushi")
FOOD_LOGITS = (2.0, 1.5, 0.5, 0.2, -0.1)

# 5.1
TAUS_51 = (0.5, 1.0, 1.5, 2.0)
N_SMALL = 100
N_LARGE = 1_000_000
N_LARGE_QUICK = 100_000
#: The 100-draw frequencies printed by the exercises' notebook, for comparison.
NOTEBOOK_100 = {0.5: 0.67, 1.0: 0.49, 1.5: 0.44, 2.0: 0.24}
CONFIDENCE = 0.95
#: Standard errors within which the notebook's 100-draw values count as agreeing.
NOTEBOOK_Z = 3.0
#: The large-N CI half-width must be at most this fraction of the 100-draw standard error.
NARROW_FACTOR = 10.0

# 5.2
TAUS_52 = (0.5, 1.0, 1.5)
KS_52 = (2, 3, 5)
N_SHOWN_52 = 5
N_FREQ_52 = 10_000
MAX_Z = 5.0

# 5.3
PROMPTS_53 = ("Tomorrow she", "Yesterday Tom", "Every day I", "Right now they")
N_KEYS_53 = 8

# 5.4
STEPS_N = 100
STEPS_N_QUICK, STEPS_M_QUICK = 20, 10

# 5.5
LOSS_TOL = 1e-4
N_TRAIN_SAMPLE = 3000
N_LARGER_QUICK = 300
LOSS_BATCH = 256

# 5.6
N_56 = 10
N_56_QUICK = 4
DECODING_P, DECODING_K, DECODING_TAU = 0.9, 3, 1.0
NUM_SAMPLES_56 = 10
REPEATS_56 = 20_000
REPEATS_56_QUICK = 2_000
NUCLEUS_TAUS = (0.7, 1.0)
NUCLEUS_PS = (0.8, 0.9, 0.95)
HYBRID_PS = (0.8, 0.9)
HYBRID_KS = (2, 3)
METHODS = ("greedy", "stochastic", "nucleus", "hybrid")


# ---------------------------------------------------------------------------------------
# Jitted sweeps
# ---------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("n",))
def pizza_draws(key: jax.Array, z: jax.Array, taus: jax.Array, n: int) -> jax.Array:
    """How many of ``n`` draws at each temperature are token 0: int32 [T].

    Draw ``i`` at temperature ``t`` (index ``j``) uses ``fold_in(fold_in(key, j), i)``.

    Args:
        key: a typed key.
        z: logits float32 [V].
        taus: float32 [T].
        n: draws per temperature (static).
    """
    rows = jnp.broadcast_to(z, (n, z.shape[0]))

    def one(j: jax.Array, t: jax.Array) -> jax.Array:
        ids = sample(jax.random.fold_in(key, j), rows, Temperature(t))
        return jnp.sum(ids == 0, dtype=jnp.int32)

    return jax.vmap(one)(jnp.arange(taus.shape[0], dtype=jnp.uint32), taus)


@functools.partial(jax.jit, static_argnames=("n",))
def food_grid(
    key: jax.Array, z: jax.Array, taus: jax.Array, ks: jax.Array, n: int
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions float32 [G, V] and ``n`` draws int32 [G, n] of ``TopK(k, tau)``.

    Args:
        key: a typed key; setting ``g`` draws with ``fold_in(key, g)``.
        z: logits float32 [V].
        taus: float32 [G], paired with ``ks``.
        ks: int32 [G].
        n: draws per setting (static).
    """
    vocab = z.shape[0]
    rows = jnp.broadcast_to(z, (n, vocab))

    def one(g: jax.Array, t: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        s = TopK(k, tau=t, k_max=vocab)
        return probs(z, s), sample(jax.random.fold_in(key, g), rows, s)

    return jax.vmap(one)(jnp.arange(taus.shape[0], dtype=jnp.uint32), taus, ks)


def _decoding_strategy(tau: jax.Array, p: jax.Array, k: jax.Array, vocab: int) -> Strategy:
    """The notebook's methods as one structure: nucleus at ``tau``, then top-k.

    ``tau = 0`` is greedy, ``p = 1`` turns the nucleus off and ``k = 0`` the top-k.
    """
    return chain(TopP(p, tau=tau), TopK(k, k_max=vocab))


@functools.partial(jax.jit, static_argnames=("repeats", "num_samples"))
def decoding_methods(
    key: jax.Array,
    z: jax.Array,
    taus: jax.Array,
    ps: jax.Array,
    ks: jax.Array,
    repeats: int,
    num_samples: int,
) -> tuple[jax.Array, jax.Array]:
    """Exact distributions [M, V] and draws int32 [M, repeats, num_samples] of each method.

    Method ``m`` is ``chain(TopP(ps[m], tau=taus[m]), TopK(ks[m]))``; it draws with
    ``fold_in(key, m)``.
    """
    vocab = z.shape[0]
    rows = jnp.broadcast_to(z, (repeats, num_samples, vocab))

    def one(m: jax.Array, t: jax.Array, p: jax.Array, k: jax.Array) -> tuple[jax.Array, jax.Array]:
        s = _decoding_strategy(t, p, k, vocab)
        return probs(z, s), sample(jax.random.fold_in(key, m), rows, s)

    return jax.vmap(one)(jnp.arange(taus.shape[0], dtype=jnp.uint32), taus, ps, ks)


@jax.jit
def _nucleus_grids(
    z: jax.Array,
    n_taus: jax.Array,
    n_ps: jax.Array,
    h_taus: jax.Array,
    h_ps: jax.Array,
    h_ks: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    vocab = z.shape[0]
    nucleus = jax.vmap(lambda t, p: probs(z, TopP(p, tau=t)))(n_taus, n_ps)
    hybrid = jax.vmap(lambda t, p, k: probs(z, _decoding_strategy(t, p, k, vocab)))(
        h_taus, h_ps, h_ks
    )
    return nucleus, hybrid


@functools.partial(jax.jit, static_argnames=("config", "pad_id"))
def _loss_sum(
    params: Params, inputs: jax.Array, targets: jax.Array, config: GPTConfig, pad_id: int
) -> tuple[jax.Array, jax.Array]:
    count = jnp.sum(targets != pad_id).astype(jnp.float32)
    return loss_fn(params, inputs, targets, config, pad_id=pad_id) * count, count


def split_loss(model: Pretrained, sentences: list[str] | tuple[str, ...]) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` on ``sentences``.

    Each sentence is encoded as ``<bos> words <eos>`` and padded; every non-pad
    target counts once (the training loss of :mod:`jaxsample.training`), summed in
    batches of 256 rows and divided by the number of targets. (GPT-2 pads with its
    end token, so its final ``<|endoftext|>`` target is not counted.)

    Args:
        model: a loaded model.
        sentences: the sentences (words of the model's vocabulary).

    Returns:
        The loss in nats per token.

    Raises:
        ValueError: if ``sentences`` is empty or holds unknown words.
    """
    if len(sentences) == 0:
        raise ValueError("split_loss needs at least one sentence")
    tok = model.tokenizer
    rows = encode_sentences(list(sentences), tok, model.config.n_ctx)
    # Columns that are padding in every row change nothing (causal attention, pad
    # targets ignored); one fixed width keeps a single compilation. Subword tokens can
    # need more columns than words: the width then grows to the last non-pad column.
    used = np.flatnonzero(np.any(rows != tok.pad_id, axis=0))
    width = min(rows.shape[1], MAX_SENTENCE_WORDS + 2)
    rows = rows[:, : max(width, int(used[-1]) + 1 if used.size else 1)]
    pad = (-len(rows)) % LOSS_BATCH
    rows = np.concatenate([rows, np.full((pad, rows.shape[1]), tok.pad_id, np.int32)])
    total = 0.0
    count = 0.0
    for start in range(0, len(rows), LOSS_BATCH):
        chunk = jnp.asarray(rows[start : start + LOSS_BATCH])
        s, c = _loss_sum(model.params, chunk[:, :-1], chunk[:, 1:], model.config, tok.pad_id)
        total += float(s)
        count += float(c)
    return total / count


def _generate(
    model: Pretrained,
    prompts: list[str],
    keys: jax.Array,
    strategy: Strategy,
) -> list[str]:
    """Complete each prompt (row ``b`` with ``keys[b]``) in one decoding call; return texts."""
    tok = model.tokenizer
    ids = [tok.encode(p, bos=True) for p in prompts]
    max_new = MAX_SENTENCE_WORDS - min(len(p.split()) for p in prompts) + 1
    gen = generate_ids(
        model.params,
        model.config,
        ids,
        keys,
        strategy,
        max_new_tokens=max_new,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
    )
    gen = jax.device_get(gen)
    return [tok.decode(completion_ids(gen, b)) for b in range(len(prompts))]


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def _panels(width: float, height: float, n: int) -> tuple[Any, list[Any]]:
    fig, axes = plt.subplots(1, n, figsize=(width, height), dpi=110)
    axes = list(np.atleast_1d(axes))
    for ax in axes:
        ax.grid(True, alpha=0.3)
    return fig, axes


# ---------------------------------------------------------------------------------------
# The exercises
# ---------------------------------------------------------------------------------------


def _ex51(report: LabReport, key: jax.Array, quick: bool) -> dict[str, Any]:
    z = jnp.asarray(FOOD_LOGITS, jnp.float32)
    taus = jnp.asarray(TAUS_51, jnp.float32)
    n_large = N_LARGE_QUICK if quick else N_LARGE
    exact = np.asarray(jax.vmap(lambda t: probs(z, Temperature(t)))(taus), np.float64)[:, 0]
    small = np.asarray(pizza_draws(jax.random.fold_in(key, 0), z, taus, N_SMALL))
    large = np.asarray(pizza_draws(jax.random.fold_in(key, 1), z, taus, n_large))
    # Simultaneous (Bonferroni) intervals: all four cover with probability >= 95 %.
    z_crit = statistics.NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / (2 * len(TAUS_51)))
    ci = [_wilson(int(c), n_large, z_crit) for c in large]
    est_small = small / N_SMALL
    est_large = large / n_large
    se_small = np.sqrt(exact * (1 - exact) / N_SMALL)
    half = np.array([(hi - lo) / 2 for lo, hi in ci])
    rows = []
    for i, t in enumerate(TAUS_51):
        nb = NOTEBOOK_100[t]
        rows.append(
            [
                t,
                float(exact[i]),
                float(est_small[i]),
                f"{(est_small[i] - exact[i]) / se_small[i]:+.2f}",
                f"{nb:.2f} ({(nb - exact[i]) / se_small[i]:+.2f})",
                float(est_large[i]),
                f"[{ci[i][0]:.4f}, {ci[i][1]:.4f}]",
            ]
        )
    print(
        "\n=== 5.1  How often is 'pizza' drawn? logits "
        + str(dict(zip(FOOD, FOOD_LOGITS, strict=True)))
    )
    print_table(
        f"P(pizza): exact, {N_SMALL} draws (error in standard errors), the notebook's "
        f"{N_SMALL}-draw value, {n_large:,} draws with a simultaneous {CONFIDENCE:.0%} CI",
        [
            "tau",
            "exact",
            f"{N_SMALL} draws",
            "err/se",
            "notebook (err/se)",
            f"{n_large:,} draws",
            f"{CONFIDENCE:.0%} CI (joint)",
        ],
        rows,
    )
    print(
        f"  One {N_SMALL}-draw estimate has a standard error of about "
        f"{float(se_small.min()):.3f}-{float(se_small.max()):.3f}, so two decimals of it are noise;"
        f"\n  {n_large:,} draws narrow the interval to +/- {float(half.max()):.4f}. The exact value"
        " needs no sampling at all:\n  it is softmax(z / tau)[pizza], one vectorised call for every"
        " temperature."
    )
    covered = [lo <= e <= hi for (lo, hi), e in zip(ci, exact, strict=True)]
    report.check(
        "5.1 exact P(pizza) lies in the large-N simultaneous 95% CI at every tau",
        ", ".join(
            f"tau {t}: {e:.4f} in [{lo:.4f}, {hi:.4f}]"
            for t, e, (lo, hi) in zip(TAUS_51, exact, ci, strict=True)
        ),
        "covered at all 4",
        all(covered),
    )
    ratio = se_small / half
    report.check(
        f"5.1 the large-N CI is much narrower than the {N_SMALL}-draw error",
        f"{N_SMALL}-draw se / CI half-width = {', '.join(f'{r:.0f}' for r in ratio)}; "
        f"actual {N_SMALL}-draw errors "
        + ", ".join(f"{abs(a - e):.3f}" for a, e in zip(est_small, exact, strict=True)),
        f">= {NARROW_FACTOR:g} at every tau",
        bool(np.all(ratio >= NARROW_FACTOR)),
    )
    report.check(
        "5.1 P(pizza) falls as tau rises (pizza has the largest logit)",
        ", ".join(f"{e:.4f}" for e in exact),
        "strictly decreasing",
        bool(np.all(np.diff(exact) < 0)),
    )
    nb_z = [(NOTEBOOK_100[t] - e) / s for t, e, s in zip(TAUS_51, exact, se_small, strict=True)]
    report.finding(
        f"5.1 the notebook's {N_SMALL}-draw frequencies agree with the exact values",
        ", ".join(
            f"tau {t}: {NOTEBOOK_100[t]:.2f} vs {e:.4f} ({zv:+.1f} se)"
            for t, e, zv in zip(TAUS_51, exact, nb_z, strict=True)
        ),
        f"within {NOTEBOOK_Z:g} standard errors of {N_SMALL} draws at every tau",
        all(abs(zv) <= NOTEBOOK_Z for zv in nb_z),
    )

    fig, ax = new_figure(7.0, 4.4)
    ax.plot(TAUS_51, exact, "k-", marker="o", label="exact softmax(z / tau)[pizza]")
    ax.errorbar(
        np.asarray(TAUS_51) - 0.03,
        est_small,
        yerr=1.96 * se_small,
        fmt="s",
        capsize=3,
        label=f"{N_SMALL} draws (+/- 1.96 se)",
    )
    ax.plot(
        np.asarray(TAUS_51) + 0.03,
        [NOTEBOOK_100[t] for t in TAUS_51],
        "x",
        ms=8,
        label=f"notebook's {N_SMALL}-draw values",
    )
    ax.errorbar(
        TAUS_51,
        est_large,
        yerr=[est_large - [lo for lo, _ in ci], [hi for _, hi in ci] - est_large],
        fmt="o",
        ms=3,
        capsize=4,
        color="tab:red",
        label=f"{n_large:,} draws (joint 95% CI)",
    )
    ax.set(
        xlabel="temperature tau",
        ylabel="P(pizza)",
        title="5.1: probability of drawing 'pizza' against temperature",
    )
    ax.legend(fontsize=8)
    save_figure(fig, report.path("ex5_1_pizza.png"))
    return {
        "logits": dict(zip(FOOD, FOOD_LOGITS, strict=True)),
        "tau": list(TAUS_51),
        "exact": exact.tolist(),
        "draws_small": N_SMALL,
        "estimate_small": est_small.tolist(),
        "se_small": se_small.tolist(),
        "notebook_small": [NOTEBOOK_100[t] for t in TAUS_51],
        "draws_large": n_large,
        "estimate_large": est_large.tolist(),
        "ci_joint_95": [list(c) for c in ci],
        "z_critical": z_crit,
    }


def _ex52(report: LabReport, key: jax.Array) -> dict[str, Any]:
    z = jnp.asarray(FOOD_LOGITS, jnp.float32)
    settings = [(t, k) for t in TAUS_52 for k in KS_52]
    taus = jnp.asarray([t for t, _ in settings], jnp.float32)
    ks = jnp.asarray([k for _, k in settings], jnp.int32)
    q, draws = food_grid(key, z, taus, ks, N_FREQ_52)
    q = np.asarray(q, np.float64)
    draws = np.asarray(draws)
    h = np.asarray(entropy(jnp.asarray(q, jnp.float32)), np.float64) + 0.0
    freq = np.stack([np.bincount(d, minlength=len(FOOD)) for d in draws]) / N_FREQ_52
    se = np.sqrt(q * (1 - q) / N_FREQ_52)  # 0 where q is 0 or 1: any deviation is infinite
    zs = np.abs(np.vectorize(z_score)(freq - q, se))
    print("\n=== 5.2  Temperature x top-k on the five-token example")
    print_table(
        f"Exact distributions (entropy in bits; 2^H = effective number of choices); first "
        f"{N_SHOWN_52} of {N_FREQ_52:,} draws",
        ["tau", "k", *FOOD, "H bits", "2^H", "draws"],
        [
            [
                t,
                k,
                *[float(v) for v in q[g]],
                float(h[g]),
                float(2 ** h[g]),
                " ".join(FOOD[i] for i in draws[g, :N_SHOWN_52]),
            ]
            for g, (t, k) in enumerate(settings)
        ],
    )
    lo, hi = int(np.argmin(h)), int(np.argmax(h))
    mid = settings.index((1.0, 3))
    note = [
        f"tau {settings[lo][0]}, k {settings[lo][1]}: H = {h[lo]:.2f} bits, 'pizza' "
        f"{q[lo, 0]:.0%} -> nearly deterministic; suits tasks with one right answer "
        "(extraction, classification, code, factual replies).",
        f"tau {settings[mid][0]}, k {settings[mid][1]}: H = {h[mid]:.2f} bits over 3 options -> "
        "some variety with no unlikely token; suits conversational replies and summaries.",
        f"tau {settings[hi][0]}, k {settings[hi][1]}: H = {h[hi]:.2f} bits, 'pizza' only "
        f"{q[hi, 0]:.0%}, every token possible (least likely {q[hi].min():.0%}) -> suits "
        "brainstorming and creative text, where variety matters more than the top choice.",
    ]
    print("  Which settings suit which uses (from the numbers above):")
    for line in note:
        print("  - " + line)
    kept = (q > 0).sum(-1)
    want = np.minimum([k for _, k in settings], len(FOOD))
    report.check(
        "5.2 top-k keeps exactly k tokens in every setting",
        str(kept.tolist()),
        str(want.tolist()),
        bool(np.array_equal(kept, want)),
    )
    mat = h.reshape(len(TAUS_52), len(KS_52))
    report.check(
        "5.2 entropy rises with tau at fixed k and with k at fixed tau",
        f"smallest step along tau {float(np.diff(mat, axis=0).min()):+.3f}, along k "
        f"{float(np.diff(mat, axis=1).min()):+.3f} bits",
        "> 0",
        bool(np.all(np.diff(mat, axis=0) > 0) and np.all(np.diff(mat, axis=1) > 0)),
    )
    report.check(
        f"5.2 draw frequencies match the exact distributions ({N_FREQ_52:,} per setting)",
        f"largest deviation {float(zs.max()):.2f} standard errors",
        f"<= {MAX_Z:g}",
        bool(zs.max() <= MAX_Z),
    )

    fig, ax = new_figure(7.5, 5.6)
    ax.grid(False)
    im = ax.imshow(q, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for r in range(q.shape[0]):
        for c in range(q.shape[1]):
            ax.text(
                c,
                r,
                f"{q[r, c]:.2f}",
                ha="center",
                va="center",
                fontsize=8,
                color="black" if q[r, c] > 0.6 else "white",
            )
    ax.set_xticks(range(len(FOOD)))
    ax.set_xticklabels(FOOD)
    ax.set_yticks(range(len(settings)))
    ax.set_yticklabels([f"tau={t}, k={k}  (H={h[g]:.2f} b)" for g, (t, k) in enumerate(settings)])
    ax.set(xlabel="token", title="5.2: exact distribution of TopK(k, tau) on the food logits")
    fig.colorbar(im, ax=ax, label="probability")
    save_figure(fig, report.path("ex5_2_grid.png"))
    return {
        "settings": [{"tau": t, "k": k} for t, k in settings],
        "exact": q.tolist(),
        "entropy_bits": h.tolist(),
        "first_draws": [[FOOD[i] for i in d[:N_SHOWN_52]] for d in draws],
        "frequencies": freq.tolist(),
        "note": note,
    }


def _ex53(report: LabReport, model: Pretrained, key: jax.Array) -> dict[str, Any]:
    prompts = [p for p in PROMPTS_53 for _ in range(N_KEYS_53)]
    keys = jnp.tile(jax.random.split(key, N_KEYS_53), len(PROMPTS_53))
    other = jnp.tile(jax.random.split(jax.random.fold_in(key, 1), N_KEYS_53), len(PROMPTS_53))
    deterministic: list[tuple[str, Strategy]] = [
        ("Greedy()", Greedy()),
        ("Temperature(0)", Temperature(0.0)),
        ("TopK(1, tau=1.0)", TopK(1, tau=1.0)),
        ("TopK(1, tau=2.0)", TopK(1, tau=2.0)),
    ]
    stochastic: list[tuple[str, Strategy]] = [
        ("Temperature(1.0)", Temperature(1.0)),
        ("TopK(40, tau=1.0)", TopK(40, tau=1.0)),
    ]

    def per_prompt(texts: list[str]) -> list[list[str]]:
        return [texts[i * N_KEYS_53 : (i + 1) * N_KEYS_53] for i in range(len(PROMPTS_53))]

    results: dict[str, Any] = {}
    greedy_texts = per_prompt(_generate(model, prompts, keys, Greedy()))
    rows = []
    all_same = True
    for name, strategy in deterministic:
        texts = per_prompt(_generate(model, prompts, other, strategy))
        distinct = [len(set(t)) for t in texts]
        equal_greedy = all(t == g for t, g in zip(texts, greedy_texts, strict=True))
        all_same &= max(distinct) == 1 and equal_greedy
        rows.append([name, "different keys", max(distinct), "yes" if equal_greedy else "no"])
        results[name] = {"distinct_per_prompt": distinct, "equal_to_greedy": equal_greedy}
    repeat_ok = True
    random_ok = True
    for name, strategy in stochastic:
        first = _generate(model, prompts, keys, strategy)
        again = _generate(model, prompts, keys, strategy)
        distinct = [len(set(t)) for t in per_prompt(first)]
        repeat_ok &= first == again
        random_ok &= max(distinct) > 1
        rows.append(
            [
                name,
                "same keys twice",
                f"{max(distinct)} (per prompt over keys)",
                "identical" if first == again else "DIFFER",
            ]
        )
        results[name] = {
            "distinct_per_prompt_over_keys": distinct,
            "same_key_twice_identical": first == again,
            "completions": dict(zip(PROMPTS_53, per_prompt(first), strict=True)),
        }
    print("\n=== 5.3  Deterministic generation on the Mini-GPT")
    print_table(
        f"{len(PROMPTS_53)} prompts x {N_KEYS_53} keys",
        ["strategy", "keys", "max distinct completions", "same as greedy / repeat"],
        rows,
    )
    for p, g in zip(PROMPTS_53, greedy_texts, strict=True):
        print(f'  greedy: "{p}" -> "{g[0]}"')
    print(
        "  Deterministic whatever the key: greedy, tau = 0 and top-k 1 (at any tau) keep one\n"
        "  token per step. Any strategy is deterministic for a fixed key: every draw is a pure\n"
        "  function of (key, step, logits)."
    )
    report.check(
        "5.3 greedy, tau = 0 and top-k 1 give the greedy text for every key",
        f"{sum(1 for r in rows[: len(deterministic)] if r[2] == 1 and r[3] == 'yes')}/"
        f"{len(deterministic)} settings with 1 completion per prompt, equal to greedy",
        f"{len(deterministic)}/{len(deterministic)}",
        all_same,
    )
    report.check(
        "5.3 a fixed key makes any strategy repeat itself",
        "identical on a second call" if repeat_ok else "differ",
        "identical",
        repeat_ok,
    )
    report.check(
        "5.3 without a fixed key those strategies do vary (the check above is not vacuous)",
        "several completions per prompt across keys" if random_ok else "no variation",
        "> 1 distinct completion for some prompt",
        random_ok,
    )
    results["greedy"] = dict(zip(PROMPTS_53, [g[0] for g in greedy_texts], strict=True))
    return results


def _ex54(report: LabReport, work: Path, quick: bool) -> tuple[dict[str, Any], Path]:
    tiny = TrainConfig.for_size("tiny")
    per_epoch = len(generate_corpus(seed=tiny.corpus_seed).train) // tiny.batch_size
    # One more epoch after the checkpoint (a few steps only in quick mode).
    n_steps, m_steps = (STEPS_N_QUICK, STEPS_M_QUICK) if quick else (STEPS_N, per_epoch)
    overrides: dict[str, Any] = {"steps": n_steps + m_steps}
    if quick:
        overrides.update(warmup_steps=3, eval_every=10)
    config = TrainConfig.for_size("tiny", **overrides)
    t0 = time.perf_counter()
    first = train(work / "resumed", config, progress=False, until=n_steps)
    state = restore_checkpoint(work / "resumed", step=n_steps, expected=config)
    opt_steps = sorted(
        {
            int(leaf)
            for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
            if getattr(path[-1], "name", None) == "count"
        }
    )
    resumed = train(work / "resumed", config, progress=False)
    t_resumed = time.perf_counter() - t0
    t0 = time.perf_counter()
    straight = train(work / "straight", config, progress=False)
    t_straight = time.perf_counter() - t0
    same_hash = resumed.params_sha256 == straight.params_sha256
    same_losses = resumed.step_losses == straight.step_losses

    print("\n=== 5.4  Continued pretraining (tiny preset)")
    print_table(
        "Interrupted and resumed vs uninterrupted",
        ["run", "steps", "resumed from", "final train loss", "final val loss", "params sha256"],
        [
            [
                "first part",
                first.step,
                "-",
                first.train_loss,
                first.val_loss,
                first.params_sha256[:16],
            ],
            [
                "resumed",
                resumed.step,
                str(resumed.resumed_from),
                resumed.train_loss,
                resumed.val_loss,
                resumed.params_sha256[:16],
            ],
            [
                "uninterrupted",
                straight.step,
                "-",
                straight.train_loss,
                straight.val_loss,
                straight.params_sha256[:16],
            ],
        ],
    )
    print(
        f"  The checkpoint at step {n_steps} holds the parameters, the AdamW moments and step\n"
        f"  counters (count = {opt_steps}), the PRNG key and the data position; resuming replays\n"
        f"  the same batches. The resumed run continues for M = {m_steps} steps"
        + (
            " (one epoch of the tiny preset)."
            if m_steps == per_epoch
            else f" (quick mode; one epoch is {per_epoch} steps)."
        )
    )
    report.check(
        f"5.4 resuming at step {n_steps} for {m_steps} steps equals an uninterrupted "
        f"{n_steps + m_steps}-step run",
        f"sha256 {resumed.params_sha256[:16]}... vs {straight.params_sha256[:16]}...; "
        f"per-step losses {'identical' if same_losses else 'differ'}",
        "equal hashes and identical losses",
        same_hash and same_losses and resumed.resumed_from == n_steps,
    )
    report.check(
        "5.4 the checkpoint carries the optimiser state",
        f"AdamW step counters {opt_steps}",
        f"[{n_steps}]",
        opt_steps == [n_steps],
    )
    fig, ax = new_figure(7.5, 4.4)
    steps = np.arange(1, len(straight.step_losses) + 1)
    ax.plot(steps, straight.step_losses, "-", lw=2.5, alpha=0.5, label="uninterrupted")
    ax.plot(steps, resumed.step_losses, "k--", lw=1, label=f"stopped at {n_steps}, then resumed")
    ax.axvline(n_steps, color="tab:red", ls=":", label=f"checkpoint (step {n_steps})")
    ax.set(
        xlabel="optimiser step",
        ylabel="training batch loss (nats / token)",
        title="5.4: resumed training follows the uninterrupted run exactly",
    )
    ax.legend()
    save_figure(fig, report.path("ex5_4_resume.png"))
    return (
        {
            "train_config": config.to_dict(),
            "n_steps": n_steps,
            "m_steps": m_steps,
            "steps_per_epoch": per_epoch,
            "params_sha256_resumed": resumed.params_sha256,
            "params_sha256_uninterrupted": straight.params_sha256,
            "step_losses_identical": same_losses,
            "optimizer_counts_at_checkpoint": opt_steps,
            "seconds": {"first_part_and_resume": t_resumed, "uninterrupted": t_straight},
        },
        work / "straight",
    )


def _ex55(report: LabReport, model: Pretrained, quick: bool) -> dict[str, Any]:
    m = model.manifest
    tc = m.get("train_config", {})
    eval_size = int(tc.get("eval_size", 512))
    corpus = generate_corpus(seed=int(tc.get("corpus_seed", 0)))
    first_train = split_loss(model, corpus.train[:eval_size])
    first_val = split_loss(model, corpus.val[:eval_size])
    val_set = corpus.val[:N_LARGER_QUICK] if quick else corpus.val
    full_val = split_loss(model, val_set)
    rng = np.random.default_rng(0)
    n_pick = min(N_LARGER_QUICK if quick else N_TRAIN_SAMPLE, len(corpus.train))
    pick = rng.choice(len(corpus.train), size=n_pick, replace=False)
    sample_train = split_loss(model, [corpus.train[i] for i in sorted(pick.tolist())])
    recorded = m.get("final_train_loss") is not None and m.get("final_val_loss") is not None
    manifest_train: float | None = float(m["final_train_loss"]) if recorded else None
    manifest_val: float | None = float(m["final_val_loss"]) if recorded else None
    uniform = math.log(model.tokenizer.vocab_size)
    print("\n=== 5.5  Training and validation loss of the model (nats per token)")
    print_table(
        "Manifest vs recomputed",
        ["split", "manifest", f"recomputed, first {eval_size}", "recomputed, larger set"],
        [
            [
                "train",
                "n/a" if manifest_train is None else manifest_train,
                first_train,
                f"{sample_train:.4f} ({len(pick)} random sentences)",
            ],
            [
                "validation",
                "n/a" if manifest_val is None else manifest_val,
                first_val,
                f"{full_val:.4f} ({len(val_set)} sentences)",
            ],
        ],
    )
    print(
        f"  Uniform guessing costs log(V) = {uniform:.3f} nats. The validation split holds\n"
        "  sentences never seen in training, including every sentence of the held-out\n"
        "  (verb, subject) pairs, so its loss is the generalisation measure."
    )
    if manifest_train is None or manifest_val is None:
        print(
            "  This model's folder records no training losses (e.g. a Hugging Face GPT-2), so\n"
            "  there is nothing to compare; its losses are per token of its own tokenizer."
        )
    else:
        worst = max(abs(first_train - manifest_train), abs(first_val - manifest_val))
        report.check(
            "5.5 recomputed losses equal the manifest's (same sentences)",
            f"train {first_train:.5f} vs {manifest_train:.5f}, val {first_val:.5f} vs "
            f"{manifest_val:.5f}",
            f"|difference| <= {LOSS_TOL:g}",
            worst <= LOSS_TOL,
        )
    return {
        "eval_size": eval_size,
        "manifest": {"train": manifest_train, "val": manifest_val},
        "recomputed_first": {"train": first_train, "val": first_val},
        "recomputed_larger": {
            "train_random_sample": sample_train,
            "train_sample_size": len(pick),
            "val_larger": full_val,
            "val_larger_size": len(val_set),
        },
        "uniform_loss": uniform,
    }


def _model_measures(model: Pretrained, key: jax.Array, n: int, quick: bool) -> dict[str, Any]:
    """Validation loss, greedy correctness and tau-1 diversity in one decoding call."""
    corpus = generate_corpus(seed=0)
    heldout = heldout_prompts(corpus)
    prompts = lab_prompts()
    if quick:
        heldout, prompts = heldout[::8], prompts[::3]
    rows = heldout + [p for p in prompts for _ in range(n)]
    taus = jnp.asarray([0.0] * len(heldout) + [1.0] * (len(rows) - len(heldout)), jnp.float32)
    keys = jax.random.split(key, len(rows))
    texts = _generate(model, rows, keys, Temperature(taus))
    greedy_ok = [
        check_completion(p, c).ok for p, c in zip(heldout, texts[: len(heldout)], strict=True)
    ]
    sampled = texts[len(heldout) :]
    groups = [sampled[i * n : (i + 1) * n] for i in range(len(prompts))]
    tok = model.tokenizer
    ok_t1 = [check_completion(p, c).ok for p, g in zip(prompts, groups, strict=True) for c in g]
    val = split_loss(model, corpus.val[:512])
    return {
        "params": count_params(model.params),
        "steps": model.manifest.get("step"),
        "val_loss_first_512": val,
        "greedy_correct": float(np.mean(greedy_ok)),
        "greedy_prompts": len(heldout),
        "tau1_correct": float(np.mean(ok_t1)),
        "tau1_distinct_completions": float(np.mean([distinct_completions(g) for g in groups])),
        "tau1_distinct_2": float(
            np.mean([distinct_n([tok.encode(c) for c in g], 2) for g in groups])
        ),
        "tau1_prompts": len(prompts),
        "tau1_n": n,
    }


def _shipped_sha256() -> str | None:
    """The parameter hash recorded in the shipped model's manifest (None if absent)."""
    try:
        manifest = json.loads((SHIPPED_MODEL_DIR / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    sha = manifest.get("params_sha256")
    return str(sha) if sha is not None else None


def _given_name(model: Pretrained) -> str:
    """A table label for a model passed with --model: its folder name and its kind."""
    folder = Path(str(model.manifest.get("source", "model"))).name
    step = model.manifest.get("step")
    return f"{folder} (" + ("Hugging Face" if step is None else f"given, {step} steps") + ")"


def _ex56(
    report: LabReport,
    main: Pretrained,
    tiny_dir: Path,
    key: jax.Array,
    quick: bool,
    compare: tuple[Pretrained, ...] = (),
) -> dict[str, Any]:
    n = N_56_QUICK if quick else N_56
    size = str(main.manifest.get("train_config", {}).get("size", "given"))
    shipped = main.manifest.get("params_sha256") == _shipped_sha256()
    main_name = (
        f"{size} (shipped)" if shipped else f"{size} (given, {main.manifest.get('step')} steps)"
    )
    if main.manifest.get("step") is None:
        main_name = _given_name(main)
    models: dict[str, Pretrained] = {main_name: main}
    tiny = load_pretrained(tiny_dir)
    models[f"tiny (trained here, {tiny.manifest.get('step')} steps)"] = tiny
    large_dir = SHIPPED_MODEL_DIR.parent / "mini_gpt_large"
    has_large = (large_dir / "manifest.json").is_file()
    if has_large:
        models["large (shipped)"] = load_pretrained(large_dir)
    for other in compare:
        models[_given_name(other)] = other
    # Losses per token compare only between models that share a tokenizer.
    comparable = isinstance(main.tokenizer, Tokenizer) and main.tokenizer == tiny.tokenizer
    measures = {
        name: _model_measures(m, jax.random.fold_in(key, i), n, quick)
        for i, (name, m) in enumerate(models.items())
    }
    print("\n=== 5.6  Model sizes")
    if not has_large:
        print(
            "  No trained 'large' model is shipped (jaxsample/assets/mini_gpt_large), and the lab\n"
            f"  does not train one; it compares '{main_name}' with a 'tiny' model\n"
            "  trained above (5.4's uninterrupted run). The tiny model also trained for fewer\n"
            "  steps, so the gap mixes size and training length."
        )
    names = list(measures)
    print_table(
        f"Loss on the first 512 validation sentences; greedy correctness on held-out prompts; "
        f"{n} completions per prompt at tau = 1",
        [
            "model",
            "params",
            "steps",
            "val loss",
            "greedy ok",
            "tau 1 ok",
            "distinct / " + str(n),
            "distinct-2",
        ],
        [
            [
                name,
                v["params"],
                v["steps"],
                v["val_loss_first_512"],
                v["greedy_correct"],
                v["tau1_correct"],
                v["tau1_distinct_completions"],
                v["tau1_distinct_2"],
            ]
            for name, v in measures.items()
        ],
    )
    s, t = measures[names[0]], measures[names[1]]
    if not comparable:
        print(
            f"  '{main_name}' has another tokenizer than the tiny Mini-GPT: its loss is per\n"
            "  token of its own vocabulary and its training text differs, so the size checks\n"
            "  below are left out and the table is a measurement only."
        )
    if comparable:
        report.check(
            f"5.6 the {names[0]} model has a lower validation loss than the {names[1]} one",
            f"{s['val_loss_first_512']:.4f} vs {t['val_loss_first_512']:.4f}",
            f"{size} < tiny",
            s["val_loss_first_512"] < t["val_loss_first_512"],
        )
        report.check(
            f"5.6 the {names[0]} model's greedy completions are at least as often grammatical",
            f"{s['greedy_correct']:.3f} vs {t['greedy_correct']:.3f} "
            f"({s['greedy_prompts']} prompts)",
            f"{size} >= tiny",
            s["greedy_correct"] >= t["greedy_correct"],
        )
        if has_large:
            lg = measures["large (shipped)"]
            report.check(
                f"5.6 the large model's validation loss is at most the {names[0]} one's",
                f"{lg['val_loss_first_512']:.4f} vs {s['val_loss_first_512']:.4f}",
                f"large <= {size}",
                lg["val_loss_first_512"] <= s["val_loss_first_512"],
            )

    fig, axes = _panels(13.0, 4.0, 3)
    labels = [nm.split(" (")[0] for nm in names]
    xs = np.arange(len(names))
    bars = [
        (
            axes[0],
            axes[0].bar(xs, [measures[nm]["val_loss_first_512"] for nm in names], color="tab:gray"),
        ),
        (
            axes[1],
            axes[1].bar(
                xs - 0.2, [measures[nm]["greedy_correct"] for nm in names], 0.4, label="greedy"
            ),
        ),
        (
            axes[1],
            axes[1].bar(
                xs + 0.2, [measures[nm]["tau1_correct"] for nm in names], 0.4, label="tau = 1"
            ),
        ),
        (
            axes[2],
            axes[2].bar(xs, [measures[nm]["tau1_distinct_2"] for nm in names], color="tab:purple"),
        ),
    ]
    for ax, b in bars:
        ax.bar_label(b, fmt="%.3f", fontsize=8)
    top_loss = max(measures[nm]["val_loss_first_512"] for nm in names)
    axes[0].set(
        ylabel="validation loss (nats / token)", title="Validation loss", ylim=(0, 1.15 * top_loss)
    )
    axes[1].set(ylabel="share of grammatical completions", title="Correctness", ylim=(0, 1.12))
    axes[1].legend(fontsize=8, loc="upper right")
    axes[2].set(ylabel="distinct-2 at tau = 1", title="Diversity", ylim=(0, 1.12))
    for ax in axes:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_xlabel("model size")
    fig.suptitle("5.6: model sizes compared")
    save_figure(fig, report.path("ex5_6_models.png"))
    return {"large_available": has_large, "models": measures}


def _ex56_methods(report: LabReport, key: jax.Array, quick: bool) -> dict[str, Any]:
    z = jnp.asarray(FOOD_LOGITS, jnp.float32)
    vocab = len(FOOD)
    repeats = REPEATS_56_QUICK if quick else REPEATS_56
    # greedy, stochastic, nucleus, nucleus then top-k: one structure, four parameter sets.
    taus = jnp.asarray([0.0, DECODING_TAU, DECODING_TAU, DECODING_TAU], jnp.float32)
    ps = jnp.asarray([1.0, 1.0, DECODING_P, DECODING_P], jnp.float32)
    ks = jnp.asarray([0, 0, 0, DECODING_K], jnp.int32)
    q, draws = decoding_methods(key, z, taus, ps, ks, repeats, NUM_SAMPLES_56)
    q = np.asarray(q, np.float64)
    draws = np.asarray(draws)
    direct = [
        Greedy(),
        Temperature(DECODING_TAU),
        TopP(DECODING_P, tau=DECODING_TAU),
        chain(TopP(DECODING_P, tau=DECODING_TAU), TopK(DECODING_K)),
    ]
    q_direct = np.stack([np.asarray(probs(z, s), np.float64) for s in direct])
    counts = np.stack([np.eye(vocab, dtype=np.int32)[d].sum(-2) for d in draws])  # [M, R, V]
    div = (counts > 0).sum(-1) / NUM_SAMPLES_56
    coh = counts.max(-1) / NUM_SAMPLES_56
    exact_div = [expected_distinct_fraction(qm, NUM_SAMPLES_56) for qm in q]
    exact_coh = [expected_coherence(qm, NUM_SAMPLES_56) for qm in q]
    mean_div, mean_coh = div.mean(-1), coh.mean(-1)
    se_div = div.std(-1, ddof=1) / math.sqrt(repeats)
    se_coh = coh.std(-1, ddof=1) / math.sqrt(repeats)
    # Greedy's batches are all alike: mean and spread differ from exact only by rounding.
    gaps = zip(mean_div - exact_div, se_div, mean_coh - exact_coh, se_coh, strict=True)
    z_pairs = [(z_score(a, b, atol=1e-12), z_score(c, d, atol=1e-12)) for a, b, c, d in gaps]
    z_div = np.abs([zd for zd, _ in z_pairs])
    z_coh = np.abs([zc for _, zc in z_pairs])

    # The notebook's nucleus and hybrid grids, exactly.
    n_set = [(t, p) for t in NUCLEUS_TAUS for p in NUCLEUS_PS]
    h_set = [(t, p, k) for t in NUCLEUS_TAUS for p in HYBRID_PS for k in HYBRID_KS]
    qn, qh = _nucleus_grids(
        z,
        jnp.asarray([t for t, _ in n_set], jnp.float32),
        jnp.asarray([p for _, p in n_set], jnp.float32),
        jnp.asarray([t for t, _, _ in h_set], jnp.float32),
        jnp.asarray([p for _, p, _ in h_set], jnp.float32),
        jnp.asarray([k for _, _, k in h_set], jnp.int32),
    )
    qn, qh = np.asarray(qn, np.float64), np.asarray(qh, np.float64)

    def kept(qrow: np.ndarray[Any, Any]) -> str:
        return ", ".join(f"{FOOD[i]} {qrow[i]:.3f}" for i in np.flatnonzero(qrow > 0))

    print(
        f"\n=== 5.6  Decoding methods on the five-token example (p = {DECODING_P}, k = "
        f"{DECODING_K}, tau = {DECODING_TAU}, {NUM_SAMPLES_56} samples per batch)"
    )
    print_table(
        f"Diversity = distinct / total and coherence = most common share of {NUM_SAMPLES_56} "
        f"samples: exact expectation vs mean of {repeats:,} sampled batches",
        [
            "method",
            "kept tokens (exact probability)",
            "E[div]",
            "sampled",
            "E[coh]",
            "sampled",
            "one batch",
        ],
        [
            [
                m,
                kept(q[i]),
                exact_div[i],
                f"{mean_div[i]:.4f} +/- {se_div[i]:.4f}",
                exact_coh[i],
                f"{mean_coh[i]:.4f} +/- {se_coh[i]:.4f}",
                " ".join(FOOD[j][:3] for j in draws[i, 0]),
            ]
            for i, m in enumerate(METHODS)
        ],
    )
    print_table(
        "The notebook's nucleus grid: kept tokens and their probabilities",
        ["tau", "p", "kept"],
        [[t, p, kept(qn[i])] for i, (t, p) in enumerate(n_set)],
    )
    print_table(
        "The notebook's nucleus-then-top-k grid",
        ["tau", "p", "k", "kept"],
        [[t, p, k, kept(qh[i])] for i, (t, p, k) in enumerate(h_set)],
    )
    print(
        "  A batch of 10 samples is a noisy measure: the sampled diversity and coherence of one\n"
        "  batch scatter widely around the exact expectations above."
    )
    report.check(
        "5.6 the methods' exact distributions equal the direct strategies",
        f"max difference {float(np.max(np.abs(q - q_direct))):.1e}",
        "<= 1e-6",
        bool(np.max(np.abs(q - q_direct)) <= 1e-6),
    )
    report.check(
        "5.6 sampled diversity and coherence match their exact expectations",
        f"largest deviation {float(max(z_div.max(), z_coh.max())):.2f} standard errors",
        f"<= {MAX_Z:g}",
        bool(max(z_div.max(), z_coh.max()) <= MAX_Z),
    )
    order_div = bool(np.all(np.diff([exact_div[i] for i in (0, 3, 2, 1)]) > 0))
    order_coh = bool(np.all(np.diff([exact_coh[i] for i in (0, 3, 2, 1)]) < 0))
    report.check(
        "5.6 exact diversity rises and coherence falls: greedy, hybrid, nucleus, stochastic",
        "diversity "
        + ", ".join(f"{exact_div[i]:.3f}" for i in (0, 3, 2, 1))
        + "; coherence "
        + ", ".join(f"{exact_coh[i]:.3f}" for i in (0, 3, 2, 1)),
        "strictly monotone",
        order_div and order_coh,
    )
    report.check(
        "5.6 greedy: diversity 1/10 and coherence 1 in every batch",
        f"diversity {set(div[0].tolist())}, coherence {set(coh[0].tolist())}",
        "{0.1} and {1.0}",
        bool(np.all(div[0] == 0.1) and np.all(coh[0] == 1.0)),
    )

    fig, axes = _panels(11.0, 4.2, 2)
    xs = np.arange(len(METHODS))
    for ax, exact, mean, se, name in (
        (axes[0], exact_div, mean_div, se_div, "diversity (distinct / total)"),
        (axes[1], exact_coh, mean_coh, se_coh, "coherence (most common share)"),
    ):
        ax.bar(xs - 0.2, exact, 0.4, label="exact expectation")
        ax.bar(xs + 0.2, mean, 0.4, yerr=1.96 * se, capsize=3, label=f"mean of {repeats:,} batches")
        ax.plot(
            xs + 0.2, np.stack([div, coh])[0 if "div" in name else 1][:, 0], "kx", label="one batch"
        )
        ax.set_xticks(xs)
        ax.set_xticklabels(METHODS)
        ax.set(
            xlabel="decoding method",
            ylabel=f"{name}, {NUM_SAMPLES_56} samples",
            title=f"5.6: {name.split(' (')[0]}",
            ylim=(0, 1.1),
        )
        ax.legend(fontsize=8)
    save_figure(fig, report.path("ex5_6_methods.png"))
    return {
        "methods": list(METHODS),
        "p": DECODING_P,
        "k": DECODING_K,
        "tau": DECODING_TAU,
        "num_samples": NUM_SAMPLES_56,
        "repeats": repeats,
        "exact": q.tolist(),
        "expected_diversity": exact_div,
        "expected_coherence": exact_coh,
        "sampled_diversity": mean_div.tolist(),
        "sampled_coherence": mean_coh.tolist(),
        "one_batch": [[FOOD[j] for j in draws[i, 0]] for i in range(len(METHODS))],
        "nucleus_grid": [{"tau": t, "p": p, "q": qn[i].tolist()} for i, (t, p) in enumerate(n_set)],
        "hybrid_grid": [
            {"tau": t, "p": p, "k": k, "q": qh[i].tolist()} for i, (t, p, k) in enumerate(h_set)
        ],
    }


def run(
    out_dir: Path,
    seed: int = 0,
    model: Pretrained | None = None,
    quick: bool = False,
    *,
    compare: tuple[Pretrained, ...] = (),
) -> LabReport:
    """Run the lab, write its files into ``out_dir`` and return the report.

    Args:
        out_dir: output folder (created).
        seed: seed of every draw (exercise ``e`` uses ``fold_in(key(seed), e)``) and of
            nothing else: the tiny model of 5.4 and 5.6 is trained with the preset's
            seed so that its hash is reproducible.
        model: the model of 5.3, 5.5 and 5.6; the shipped Mini-GPT when ``None``. Any
            loaded model works, a Hugging Face GPT-2 included (``--model DIR``).
        compare: more models for 5.6's size comparison (e.g. other GPT-2 sizes).
        quick: fewer draws and training steps (for smoke tests).

    Returns:
        The :class:`LabReport` (``manifest.json`` written).
    """
    report = LabReport("exercises", out_dir, seed)
    model = load_pretrained() if model is None else model
    key = jax.random.key(seed)
    timings: dict[str, float] = {}

    def timed(name: str, start: float) -> None:
        timings[name] = round(time.perf_counter() - start, 2)
        note(f"exercises: {name} done in {timings[name]:.0f} s ({len(timings)}/7)")

    t = time.perf_counter()
    data: dict[str, Any] = {"5.1": _ex51(report, jax.random.fold_in(key, 51), quick)}
    timed("5.1", t)
    t = time.perf_counter()
    data["5.2"] = _ex52(report, jax.random.fold_in(key, 52))
    timed("5.2", t)
    t = time.perf_counter()
    data["5.3"] = _ex53(report, model, jax.random.fold_in(key, 53))
    timed("5.3", t)
    with tempfile.TemporaryDirectory(prefix="jaxsample-ex54-") as tmp:
        t = time.perf_counter()
        data["5.4"], tiny_dir = _ex54(report, Path(tmp), quick)
        timed("5.4", t)
        t = time.perf_counter()
        data["5.5"] = _ex55(report, model, quick)
        timed("5.5", t)
        t = time.perf_counter()
        data["5.6 models"] = _ex56(
            report, model, tiny_dir, jax.random.fold_in(key, 56), quick, compare
        )
        timed("5.6 models", t)
    t = time.perf_counter()
    data["5.6 methods"] = _ex56_methods(report, jax.random.fold_in(key, 560), quick)
    timed("5.6 methods", t)

    report.parameters = {
        "food_tokens": list(FOOD),
        "food_logits": list(FOOD_LOGITS),
        "taus_5_1": list(TAUS_51),
        "draws_5_1": [N_SMALL, N_LARGE_QUICK if quick else N_LARGE],
        "confidence_5_1": (
            f"{CONFIDENCE} joint over {len(TAUS_51)} temperatures (Bonferroni, Wilson)"
        ),
        "grid_5_2": {"taus": list(TAUS_52), "ks": list(KS_52), "draws": N_FREQ_52},
        "prompts_5_3": list(PROMPTS_53),
        "keys_5_3": N_KEYS_53,
        "steps_5_4": [STEPS_N_QUICK, STEPS_M_QUICK] if quick else [STEPS_N, "one epoch"],
        "decoding_5_6": {"p": DECODING_P, "k": DECODING_K, "tau": DECODING_TAU},
        "keys": f"exercise e draws from fold_in(jax.random.key({seed}), e)",
        "quick": quick,
    }
    report.extra["model"] = model_identity(model)
    report.extra["seconds"] = timings
    for name, payload in data.items():
        report.save_json("ex" + name.replace(".", "_").replace(" ", "_") + ".json", payload)
    print_table("Time per exercise (s)", list(timings), [list(timings.values())])
    report.write_manifest()
    report.print_checks()
    return report
