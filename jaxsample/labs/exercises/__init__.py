"""Lab: six sampling exercises (5.1 to 5.6), answered with exact values and measurements.

Each exercise is one module of this package (``pizza`` 5.1, ``grid`` 5.2,
``determinism`` 5.3, ``resume`` 5.4, ``losses`` 5.5, ``sizes`` and ``methods`` 5.6);
:func:`run` runs them in order.

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

import tempfile
import time
from pathlib import Path
from typing import Any

import jax

from jaxsample.labs._model import model_identity
from jaxsample.labs._report import LabReport, print_table
from jaxsample.labs.exercises import (
    determinism,
    grid,
    losses,
    methods,
    pizza,
    resume,
    sizes,
)
from jaxsample.labs.exercises._common import FOOD, FOOD_LOGITS
from jaxsample.labs.exercises.determinism import N_KEYS_53, PROMPTS_53
from jaxsample.labs.exercises.grid import KS_52, N_FREQ_52, TAUS_52, food_grid
from jaxsample.labs.exercises.losses import split_loss
from jaxsample.labs.exercises.methods import DECODING_K, DECODING_P, DECODING_TAU, decoding_methods
from jaxsample.labs.exercises.pizza import (
    CONFIDENCE,
    N_LARGE,
    N_LARGE_QUICK,
    N_SMALL,
    TAUS_51,
    pizza_draws,
)
from jaxsample.labs.exercises.resume import STEPS_M_QUICK, STEPS_N, STEPS_N_QUICK
from jaxsample.model import Pretrained, load_pretrained
from jaxsample.progress import note

__all__ = [
    "FOOD",
    "FOOD_LOGITS",
    "decoding_methods",
    "food_grid",
    "pizza_draws",
    "run",
    "split_loss",
]


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
    data: dict[str, Any] = {"5.1": pizza.exercise(report, jax.random.fold_in(key, 51), quick)}
    timed("5.1", t)
    t = time.perf_counter()
    data["5.2"] = grid.exercise(report, jax.random.fold_in(key, 52))
    timed("5.2", t)
    t = time.perf_counter()
    data["5.3"] = determinism.exercise(report, model, jax.random.fold_in(key, 53))
    timed("5.3", t)
    with tempfile.TemporaryDirectory(prefix="jaxsample-ex54-") as tmp:
        t = time.perf_counter()
        data["5.4"], tiny_dir = resume.exercise(report, Path(tmp), quick)
        timed("5.4", t)
        t = time.perf_counter()
        data["5.5"] = losses.exercise(report, model, quick)
        timed("5.5", t)
        t = time.perf_counter()
        data["5.6 models"] = sizes.exercise(
            report, model, tiny_dir, jax.random.fold_in(key, 56), quick, compare
        )
        timed("5.6 models", t)
    t = time.perf_counter()
    data["5.6 methods"] = methods.exercise(report, jax.random.fold_in(key, 560), quick)
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
