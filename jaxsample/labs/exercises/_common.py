"""What several exercises share: the five-token example and decoding prompts to text."""

from __future__ import annotations

import jax

from jaxsample.data import (
    MAX_SENTENCE_WORDS,
)
from jaxsample.decoding import completion_ids, generate_ids
from jaxsample.model import Pretrained
from jaxsample.samplers import (
    Strategy,
)

FOOD = ("pizza", "burger", "pasta", "salad", "sushi")
FOOD_LOGITS = (2.0, 1.5, 0.5, 0.2, -0.1)

#: Standard errors within which a sampled frequency must lie of its exact value.
MAX_Z = 5.0


def generate_texts(
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
