"""Exercise 5.3: every way to make the Mini-GPT's generation deterministic.

Greedy, temperature 0, top-k 1 (the key then does not matter), or a fixed key with
any strategy (the same key then gives the same text).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxsample.labs._report import LabReport, print_table
from jaxsample.labs.exercises._common import generate_texts
from jaxsample.model import Pretrained
from jaxsample.samplers import (
    Greedy,
    Strategy,
    Temperature,
    TopK,
)

# 5.3
PROMPTS_53 = ("Tomorrow she", "Yesterday Tom", "Every day I", "Right now they")
N_KEYS_53 = 8


def exercise(report: LabReport, model: Pretrained, key: jax.Array) -> dict[str, Any]:
    """Run exercise 5.3 with ``model`` and add its checks to ``report``; return its data."""
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
    greedy_texts = per_prompt(generate_texts(model, prompts, keys, Greedy()))
    rows = []
    all_same = True
    for name, strategy in deterministic:
        texts = per_prompt(generate_texts(model, prompts, other, strategy))
        distinct = [len(set(t)) for t in texts]
        equal_greedy = all(t == g for t, g in zip(texts, greedy_texts, strict=True))
        all_same &= max(distinct) == 1 and equal_greedy
        rows.append([name, "different keys", max(distinct), "yes" if equal_greedy else "no"])
        results[name] = {"distinct_per_prompt": distinct, "equal_to_greedy": equal_greedy}
    repeat_ok = True
    random_ok = True
    for name, strategy in stochastic:
        first = generate_texts(model, prompts, keys, strategy)
        again = generate_texts(model, prompts, keys, strategy)
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
