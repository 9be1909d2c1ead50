"""Sampling logits that live on more than one device.

A tensor-parallel model produces its logits split over the vocabulary: device
``i`` of mesh axis ``vocab_axis`` holds the contiguous slice of tokens
``[i * V_pad / n, (i + 1) * V_pad / n)``. Gathering the rows onto every device to
sample them moves the whole ``[B, V]`` array; :func:`sample` instead runs
``jaxsample.sample(..., vocab_axis=...)`` inside :func:`jax.shard_map`, where the
strategy's reductions (maxima, sums, masses above a pivot) become collectives over
``vocab_axis`` that carry a few scalars per row and shard (a top-k part: its
``k`` candidates per row and shard). The batch may at the
same time be split over another mesh axis, ``batch_axis``.

The result is the token ids, bit for bit, that ``jaxsample.sample(key, logits,
strategy)`` draws on one device with the same key:

* a single ``key`` gives row ``r`` (row-major over the leading axes) the key
  ``jax.random.fold_in(key, r)`` with ``r`` the *global* row index, derived before
  the batch is split;
* a vocabulary whose size ``V`` is not a multiple of :data:`VOCAB_MULTIPLE` is
  padded with ``-inf`` up to the next multiple (:func:`pad_vocab`), and the
  sampler is told the true ``V``, so a padding token is never drawn;
* a batch whose first axis is not a multiple of the ``batch_axis`` size is padded
  with rows that are dropped from the result.

Example (eight simulated CPU devices; the flag must be set before JAX starts)::

    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jaxsample as js
    from jaxsample import sharding

    mesh = jax.make_mesh((2, 4), ("dp", "tp"))
    logits = jax.random.normal(jax.random.key(0), (16, 50257))
    ids = sharding.sample(jax.random.key(1), logits, js.TopP(0.9, tau=0.8), mesh=mesh)
    assert (ids == js.sample(jax.random.key(1), logits, js.TopP(0.9, tau=0.8))).all()

Nothing here depends on the kind of device: the same code runs on a GPU or TPU
pod, where the mesh spans the chips of every host (see :func:`jax.make_mesh`).
"""

from jaxsample.sharding._layout import (
    MAX_VOCAB_SHARDS,
    VOCAB_MULTIPLE,
    pad_vocab,
    padded_vocab,
)
from jaxsample.sharding._shard_map import probs, sample, valid_rows

__all__ = [
    "MAX_VOCAB_SHARDS",
    "VOCAB_MULTIPLE",
    "pad_vocab",
    "padded_vocab",
    "probs",
    "sample",
    "valid_rows",
]
