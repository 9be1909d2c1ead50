"""Generation with a trained model: token ids in and out, text in and out.

* :func:`generate` is the seeds' API: a prompt of token ids, a seed and a strategy in,
  the generated ids out as Python ints.
* :func:`complete` encodes a text prompt, draws ``n`` completions and decodes them.
* :func:`make_strategy` builds the strategy of the ``jaxsample generate`` options.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable
from typing import Any

from jaxsample.decoding.batch import completion_ids, generate_ids, sample_completions
from jaxsample.decoding.inputs import seed_key
from jaxsample.model import Pretrained, load_pretrained
from jaxsample.samplers import Greedy, Strategy, Temperature, TopK, TopP, chain

__all__ = ["complete", "generate", "make_strategy"]

_GREEDY = Greedy()


def generate(
    model: Pretrained, prompt: list[int], *, max_tokens: int, seed: int, strategy: Strategy
) -> list[int]:
    """Continue a prompt of token ids with a trained model.

    Generation stops after ``max_tokens`` tokens or at the model's ``<eos>``,
    whichever comes first. The random stream is that of :func:`sample_completions`
    with the same seed: the result equals its first completion.

    Args:
        model: A loaded model (see :func:`jaxsample.model.load_pretrained`).
        prompt: Token ids of the prompt; usually starting with ``<bos>``. An empty
            prompt starts from ``<bos>``.
        max_tokens: Maximum number of tokens to generate, ``>= 1``.
        seed: Non-negative integer seed, below ``2**63``.
        strategy: Any sampling strategy, e.g. ``TopP(0.9, tau=0.8)``.

    Returns:
        The generated token ids as Python ints, without the prompt and **without** the
        final ``<eos>`` (so at most ``max_tokens`` ids; fewer when ``<eos>`` came first).

    Raises:
        ValueError: If an id lies outside the vocabulary, the prompt plus
            ``max_tokens`` exceeds the model's context (the message names the
            lengths), or ``max_tokens``, ``seed`` or ``strategy`` is invalid.

    """
    tok = model.tokenizer
    gen = generate_ids(
        model.params,
        model.config,
        [prompt],
        seed_key(seed),
        strategy,
        max_new_tokens=max_tokens,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        bos_id=tok.bos_id,
    )
    return completion_ids(gen, 0)


@functools.cache
def _shipped_model() -> Pretrained:
    return load_pretrained()


def complete(
    prompt: str,
    *,
    n: int = 1,
    seed: int = 0,
    strategy: Strategy = _GREEDY,
    max_tokens: int = 12,
    model: Pretrained | None = None,
) -> list[str]:
    """Draw ``n`` text completions of a text prompt.

    The prompt is split into words and encoded with ``<bos>`` prepended; the ``n``
    completions are drawn in one batched call with independent random streams
    (completion ``i`` uses ``fold_in(key(seed), i)``; see :func:`sample_completions`).
    Each stops at ``<eos>`` or after ``max_tokens`` tokens.

    Args:
        prompt: Words of the model's vocabulary separated by whitespace (may be empty).
        n: Number of completions, ``>= 1``.
        seed: Non-negative integer seed, below ``2**63``.
        strategy: Sampling strategy (default greedy, so all ``n`` are equal).
        max_tokens: Maximum number of generated tokens per completion, ``>= 1``.
        model: The model; ``None`` loads the one shipped with the package (once).

    Returns:
        ``n`` strings: the generated words only (without the prompt and ``<eos>``),
        joined by single spaces; empty when ``<eos>`` came first.

    Raises:
        ValueError: If the prompt has words outside the vocabulary (the message lists
            them), the encoded prompt plus ``max_tokens`` exceeds the model's context
            (the message names the lengths), or ``n``, ``seed``, ``max_tokens`` or
            ``strategy`` is invalid.
        TypeError: If ``prompt`` is not a string (one prompt per call; several
            prompts at once are :func:`jaxsample.generate_ids`'s job).
        FileNotFoundError: If ``model`` is ``None`` and the shipped model is missing.

    """
    if not isinstance(prompt, str):
        raise TypeError(
            f"prompt must be one string, got {type(prompt).__name__}: call complete once per "
            "prompt, or encode the prompts and use jaxsample.generate_ids for a batch"
        )
    model = _shipped_model() if model is None else model
    tok = model.tokenizer
    ids = tok.encode(prompt, bos=True)
    if isinstance(max_tokens, int) and len(ids) + max_tokens > model.config.n_ctx:
        raise ValueError(
            f"the prompt takes {len(ids)} tokens ({len(ids) - 1} words and <bos>); with "
            f"max_tokens {max_tokens} that is {len(ids) + max_tokens}, more than the model's "
            f"context of {model.config.n_ctx} tokens: shorten the prompt or lower max_tokens"
        )
    gen = sample_completions(
        model.params,
        model.config,
        ids,
        n,
        seed,
        strategy,
        max_tokens,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        bos_id=tok.bos_id,
    )
    return [tok.decode(completion_ids(gen, i)) for i in range(n)]


def _shown(value: object) -> str:
    """A value as a person wrote it: ``0.0``, not ``np.float64(0.0)``; other objects by repr."""
    return str(value) if isinstance(value, numbers.Number) else repr(value)


def _setting(
    name: str,
    rule: str,
    kind: type | tuple[type, ...],
    build: Callable[[Any], Strategy],
    value: Any,
) -> Strategy:
    """The strategy part of one setting; its constructor checks the value's range.

    Args:
        name: The setting's name in messages (``"top-p"``).
        rule: What the setting must be (``"in (0, 1] (1 disables it)"``).
        kind: The Python type(s) a setting of one value may have (``bool`` never).
        build: Builds the part from the value and raises ``ValueError`` for a bad one
            (a strategy's constructor).
        value: The value given.

    Returns:
        ``build(value)``.

    Raises:
        ValueError: ``"<name> must be <rule>, got <value>"`` for a value that is not
            of ``kind`` or that ``build`` rejects.
    """
    if not isinstance(value, bool) and isinstance(value, kind):
        try:
            return build(value)
        except ValueError:
            pass
    raise ValueError(f"{name} must be {rule}, got {_shown(value)}")


def make_strategy(temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> Strategy:
    """Build the strategy described by a temperature, a top-k and a top-p setting.

    The parts are applied in that order: temperature, then top-k, then top-p; disabled
    parts are left out. ``temperature == 0`` is greedy (the other settings cannot
    change the most likely token, so they are ignored).

    Args:
        temperature: ``>= 0``; 0 is greedy, 1 the model's distribution, ``inf`` uniform.
        top_k: Number of most likely tokens kept, ``>= 0``; 0 disables it.
        top_p: Nucleus mass in ``(0, 1]``; 1 disables it.

    Returns:
        ``Greedy()``, ``Temperature(t)``, or ``chain(Temperature(t), TopK(k), TopP(p))``
        without the disabled parts.

    Raises:
        ValueError: If ``temperature`` is negative or NaN, ``top_k`` is negative or not
            an integer, or ``top_p`` is outside ``(0, 1]``.

    """
    # Each part's constructor checks its parameter; the messages name the settings.
    real = (int, float)
    temperature_part = _setting(
        "temperature", ">= 0 (0 means greedy)", real, lambda t: Temperature(float(t)), temperature
    )
    top_k_part = _setting("top-k", "an integer >= 0 (0 disables it)", int, TopK, top_k)
    top_p_part = _setting(
        "top-p", "in (0, 1] (1 disables it)", real, lambda p: TopP(float(p)), top_p
    )
    if temperature == 0:
        return Greedy()
    parts = [temperature_part]
    if top_k > 0:
        parts.append(top_k_part)
    if top_p < 1:
        parts.append(top_p_part)
    return parts[0] if len(parts) == 1 else chain(*parts)
