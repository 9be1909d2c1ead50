"""jaxsample: LLM token sampling as pure, jit-compiled, vmappable JAX functions.

The public API is what this module exports: the samplers, and the two ways to
decode with a model (:func:`generate_ids`: token ids and a key in, a batch of
:class:`Generation` out, compiled once; :func:`complete`: text in, text out).
Sampling and decoding on more than one device is in :mod:`jaxsample.sharding`
(and ``generate_ids(..., mesh=...)``). The rest of the decoding API is in
:mod:`jaxsample.decoding`, the lab metrics in
:mod:`jaxsample.analysis`, the model in :mod:`jaxsample.model`::

    import jax, jaxsample as js
    key = jax.random.key(0)
    ids = js.sample(key, logits, js.TopP(0.9, tau=0.8))   # int32 [...]
    q = js.probs(logits, js.TopK(50, tau=0.7))           # exact float32 distribution
    h = js.entropy(q)                                     # bits
    js.complete("Tomorrow she", n=3, strategy=js.TopP(0.9, tau=0.8))  # shipped Mini-GPT
"""

from jaxsample import presets, samplers, sharding
from jaxsample.decoding import Generation, complete, generate_ids
from jaxsample.samplers import *  # noqa: F403  (the names of samplers.__all__)

__version__ = "0.1.0"

__all__ = ["Generation", "__version__", "complete", "generate_ids", "presets", "sharding"]
__all__ += samplers.__all__
