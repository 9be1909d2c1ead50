"""jaxsample: LLM token sampling as pure, jit-compiled, vmappable JAX functions.

The public API is what this module exports::

    import jax, jaxsample as js
    key = jax.random.key(0)
    ids = js.sample(key, logits, js.TopP(0.9, tau=0.8))   # int32 [...]
    q = js.probs(logits, js.TopK(50, tau=0.7))           # exact float32 distribution
    h = js.entropy(q)                                     # bits
    js.complete("Tomorrow she", n=3, strategy=js.TopP(0.9, tau=0.8))  # shipped Mini-GPT
"""

from jaxsample import sharding
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
from jaxsample.decoding import (
    Generation,
    complete,
    generate,
    generate_ids,
    make_strategy,
    sample_completions,
)
from jaxsample.samplers import (
    GREEDY_TAU,
    TOP_P_SLACK,
    Chain,
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    chain,
    entropy,
    entropy_sweep,
    probs,
    sample,
    valid_rows,
)

__version__ = "0.1.0"

__all__ = [
    "GREEDY_TAU",
    "TOP_P_SLACK",
    "Chain",
    "Generation",
    "Greedy",
    "Strategy",
    "Temperature",
    "TopK",
    "TopP",
    "__version__",
    "chain",
    "coherence",
    "complete",
    "distinct_completions",
    "distinct_fraction",
    "distinct_n",
    "entropy",
    "entropy_sweep",
    "expected_coherence",
    "expected_distinct_fraction",
    "generate",
    "generate_ids",
    "kept_mass",
    "kept_set_size",
    "make_strategy",
    "pareto_front",
    "probs",
    "sample",
    "sample_completions",
    "sharding",
    "valid_rows",
]
