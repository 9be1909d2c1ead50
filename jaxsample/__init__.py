"""jaxsample: LLM token sampling as pure, jit-compiled, vmappable JAX functions.

The public API is what this module exports::

    import jax, jaxsample as js
    key = jax.random.key(0)
    ids = js.sample(key, logits, js.TopP(0.9, tau=0.8))   # int32 [...]
    q = js.probs(logits, js.TopK(50, tau=0.7))           # exact float32 distribution
    h = js.entropy(q)                                     # bits
    js.complete("Tomorrow she", n=3, strategy=js.TopP(0.9, tau=0.8))  # shipped Mini-GPT
"""

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
    Chain,
    Greedy,
    Strategy,
    Temperature,
    TopK,
    TopP,
    chain,
    entropy,
    probs,
    sample,
    valid_rows,
)

__version__ = "0.1.0"

__all__ = [
    "GREEDY_TAU",
    "Chain",
    "Generation",
    "Greedy",
    "Strategy",
    "Temperature",
    "TopK",
    "TopP",
    "__version__",
    "chain",
    "complete",
    "entropy",
    "generate",
    "generate_ids",
    "make_strategy",
    "probs",
    "sample",
    "sample_completions",
    "valid_rows",
]
