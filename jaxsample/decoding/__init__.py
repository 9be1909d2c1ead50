"""Autoregressive decoding with the Mini-GPT: one jitted prefill-and-scan per batch.

* :func:`generate_ids` generates a batch of token-id prompts in one compiled call, with
  a key/value cache or by full recompute, any strategy, batch-invariant randomness;
* :func:`sample_completions` draws ``n`` completions of one prompt in one call;
* :func:`generate` (ids in, ids out) and :func:`complete` (text in, text out) drive a
  trained model;
* :func:`make_strategy` turns temperature / top-k / top-p settings into a strategy.

Example::

    import jaxsample as js
    from jaxsample.decoding import complete
    complete("Tomorrow she", n=3, seed=0, strategy=js.TopP(0.9, tau=0.8))
"""

from jaxsample.decoding.batch import completion_ids, generate_ids, sample_completions
from jaxsample.decoding.inputs import left_pad, row_keys, seed_key
from jaxsample.decoding.loop import Generation, Logprobs
from jaxsample.decoding.text import complete, generate, make_strategy

__all__ = [
    "Generation",
    "Logprobs",
    "complete",
    "completion_ids",
    "generate",
    "generate_ids",
    "left_pad",
    "make_strategy",
    "row_keys",
    "sample_completions",
    "seed_key",
]
