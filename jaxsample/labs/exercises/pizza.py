"""Exercise 5.1: how often is "pizza" drawn at each temperature?

Exactly (softmax), from 100 draws, and from a large number of draws with a
simultaneous 95 % confidence interval (Wilson score, Bonferroni over the temperatures).
"""

from __future__ import annotations

import functools
import math
import statistics
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxsample.labs._plotting import new_figure, save_figure
from jaxsample.labs._report import LabReport, print_table
from jaxsample.labs.exercises._common import FOOD, FOOD_LOGITS
from jaxsample.samplers import (
    Temperature,
    probs,
    sample,
)

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


def _wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    phat = successes / n
    denom = 1 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def exercise(report: LabReport, key: jax.Array, quick: bool) -> dict[str, Any]:
    """Run exercise 5.1 and add its checks, table and figure to ``report``; return its data."""
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
