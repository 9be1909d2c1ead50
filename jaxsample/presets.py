"""Engine presets: the chain each inference engine applies, in its order, with its defaults.

``js.presets.hf(...)``, ``js.presets.vllm(...)`` and ``js.presets.llama_cpp(...)``
take the engine's own parameter names and defaults and return a
:func:`jaxsample.chain` of jaxsample strategies in the order that engine applies
them; parts the engine would skip (a neutral value) are left out. Numeric values
may be arrays (one per row, traced, vmapped): a part whose value is not a concrete
neutral number is always included. The history parts (penalties, n-grams,
min-new-tokens, DRY, mirostat) need a :class:`jaxsample.History`: use the chain
with :func:`jaxsample.generate_ids` or :func:`jaxsample.sample_step`.

The orders differ, and the distributions with them::

    hf        repetition, no-repeat-ngram, min-new-tokens | temperature, top-k, top-p,
              min-p, typical, epsilon, eta
    vllm      allowed ids, min-tokens, logit bias, penalties | temperature, min-p,
              top-k, top-p
    llama.cpp logit bias, penalties, DRY, top-n-sigma, top-k, typical, top-p, min-p,
              XTC, temperature (last)

Example::

    import jaxsample as js
    s = js.presets.llama_cpp(temperature=1.5, min_p=0.1)  # truncation at tau = 1
    q = js.probs(logits, s)

Conventions: a temperature of 0 (below 1e-5 for vLLM) is greedy here in every
preset (Hugging Face raises instead; llama.cpp keeps only the top token). Top-k
keeps exactly ``k`` tokens (Hugging Face keeps every token tied with the k-th; only
exact ties differ).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxsample.samplers import (
    DRY,
    XTC,
    Allow,
    Chain,
    Epsilon,
    Eta,
    FrequencyPenalty,
    Greedy,
    LogitBias,
    MinNewTokens,
    MinP,
    Mirostat2,
    NoRepeatNGram,
    PresencePenalty,
    RepetitionPenalty,
    Strategy,
    Temperature,
    TopK,
    TopNSigma,
    TopP,
    Typical,
    chain,
)

__all__ = ["hf", "llama_cpp", "vllm"]


def _is(value: Any, test: Any) -> bool:
    """Whether ``value`` is a concrete number (or array) every entry of which passes ``test``."""
    if value is None:
        return True
    try:
        arr = np.asarray(value)
    except Exception:  # tracers
        return False
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        return False
    return bool(np.all(test(arr)))


def _temperature(t: Any, greedy_below: float) -> Strategy:
    """``Temperature(t)``, or ``Greedy()`` for a concrete ``t`` below the engine's threshold."""
    if _is(t, lambda a: a < greedy_below):
        return Greedy()
    return Temperature(t)


def _never(_: Any) -> bool:
    """The neutral test of a part that only ``None`` leaves out."""
    return False


def _parts(*steps: tuple[Any, Callable[[Any], Any], Callable[[Any], Strategy]]) -> list[Strategy]:
    """The parts of an engine's steps, in order, but those left out.

    Each step ``(value, neutral, make)`` gives ``make(value)`` unless ``value`` is
    ``None`` or a concrete number for which ``neutral`` holds (see :func:`_is`).
    """
    return [make(value) for value, neutral, make in steps if not _is(value, neutral)]


def _min_new_tokens(name: str, eos_token_id: Any) -> Callable[[Any], Strategy]:
    """``MinNewTokens(n, eos_token_id)`` for ``n``; raises if ``eos_token_id`` is ``None``.

    Args:
        name: the engine's name of the parameter (for the error).
        eos_token_id: the token the part removes.

    Returns:
        The function of ``n`` that builds the part.
    """

    def make(n: Any) -> Strategy:
        if eos_token_id is None:
            raise ValueError(f"{name} needs eos_token_id")
        return MinNewTokens(n, eos_token_id)

    return make


def hf(
    *,
    temperature: Any = 1.0,
    top_k: Any = 50,
    top_p: Any = 1.0,
    min_p: Any = None,
    typical_p: Any = 1.0,
    epsilon_cutoff: Any = 0.0,
    eta_cutoff: Any = 0.0,
    repetition_penalty: Any = 1.0,
    no_repeat_ngram_size: int = 0,
    min_new_tokens: Any = 0,
    eos_token_id: Any = None,
    do_sample: bool = True,
) -> Chain:
    """The chain of Hugging Face ``generate`` for a ``GenerationConfig`` with these values.

    Follows ``GenerationMixin._get_logits_processor`` in
    ``transformers/generation/utils.py``: the processors
    (``RepetitionPenaltyLogitsProcessor``, ``NoRepeatNGramLogitsProcessor``,
    ``MinNewTokensLengthLogitsProcessor``), then, when sampling, the warpers in the
    order temperature, top-k, top-p, min-p, typical, epsilon, eta. The defaults are
    ``GenerationConfig``'s (``top_k=50``!). ``do_sample=False`` ends the chain with
    :class:`~jaxsample.Greedy` after the processors, as HF's greedy search does.

    Args:
        temperature: ``>= 0`` (0 is greedy); 1 leaves the part out.
        top_k: int ``>= 0``; 0 leaves it out.
        top_p: in (0, 1]; 1 leaves it out.
        min_p: in [0, 1] or ``None`` (left out).
        typical_p: in (0, 1]; 1 leaves it out.
        epsilon_cutoff: in [0, 1); 0 leaves it out.
        eta_cutoff: in [0, 1); 0 leaves it out.
        repetition_penalty: ``> 0``; 1 leaves it out (prompt and generated tokens).
        no_repeat_ngram_size: Python int ``>= 0``; 0 leaves it out.
        min_new_tokens: int ``>= 0``; 0 leaves it out (needs ``eos_token_id``).
        eos_token_id: the token ``min_new_tokens`` removes.
        do_sample: sample (True) or take the argmax (False).

    Returns:
        A :class:`~jaxsample.Chain`.

    Raises:
        ValueError: for a bad value (the strategies' own checks), or
            ``min_new_tokens`` without ``eos_token_id``.
    """
    parts = _parts(
        (repetition_penalty, lambda a: a == 1.0, RepetitionPenalty),
        (no_repeat_ngram_size, lambda a: a == 0, NoRepeatNGram),
        (min_new_tokens, lambda a: a == 0, _min_new_tokens("min_new_tokens", eos_token_id)),
    )
    if not do_sample:
        return chain(*parts, Greedy())
    return chain(
        *parts,
        *_parts(
            (temperature, lambda a: a == 1.0, lambda t: _temperature(t, 1e-30)),
            (top_k, lambda a: a == 0, TopK),
            (top_p, lambda a: a >= 1.0, TopP),
            (min_p, _never, MinP),
            (typical_p, lambda a: a >= 1.0, Typical),
            (epsilon_cutoff, lambda a: a <= 0.0, Epsilon),
            (eta_cutoff, lambda a: a <= 0.0, Eta),
        ),
    )


def vllm(
    *,
    temperature: Any = 1.0,
    top_k: Any = 0,
    top_p: Any = 1.0,
    min_p: Any = 0.0,
    repetition_penalty: Any = 1.0,
    presence_penalty: Any = 0.0,
    frequency_penalty: Any = 0.0,
    min_tokens: Any = 0,
    eos_token_id: Any = None,
    logit_bias: Any = None,
    allowed_token_ids: Any = None,
) -> Chain:
    """The chain of vLLM's sampler for ``SamplingParams`` with these values.

    Follows ``vllm/v1/sample/sampler.py`` (``Sampler.forward`` and ``sample``): the
    allowed-token mask, min-tokens and logit bias, then the penalties
    (``vllm/model_executor/layers/utils.py``: repetition over prompt and output
    tokens, frequency and presence over the output tokens), then temperature
    (below 1e-5: greedy), min-p, top-k and top-p (in one pass, top-p over what
    top-k left).

    Args:
        temperature: ``>= 0``; below 1e-5 is greedy.
        top_k: int; 0 or -1 leaves it out (other negative values raise, as in vLLM).
        top_p: in (0, 1]; 1 leaves it out.
        min_p: in [0, 1]; 0 leaves it out.
        repetition_penalty: ``> 0``; 1 leaves it out.
        presence_penalty: finite; 0 leaves it out.
        frequency_penalty: finite; 0 leaves it out.
        min_tokens: int ``>= 0``; 0 leaves it out (needs ``eos_token_id``).
        eos_token_id: the stop token ``min_tokens`` removes.
        logit_bias: float ``[V]`` or ``[B, V]`` (a dense form of vLLM's dict), or ``None``.
        allowed_token_ids: bool mask ``[V]`` or ``[B, V]``, or ``None``.

    Returns:
        A :class:`~jaxsample.Chain`.

    Raises:
        ValueError: for a bad value, or ``min_tokens`` without ``eos_token_id``.
    """
    parts = _parts(
        (allowed_token_ids, _never, Allow),
        (min_tokens, lambda a: a == 0, _min_new_tokens("min_tokens", eos_token_id)),
        (logit_bias, _never, LogitBias),
        (repetition_penalty, lambda a: a == 1.0, RepetitionPenalty),
        (frequency_penalty, lambda a: a == 0.0, FrequencyPenalty),
        (presence_penalty, lambda a: a == 0.0, PresencePenalty),
    )
    if _is(temperature, lambda a: a < 1e-5):
        return chain(*parts, Greedy())
    return chain(
        *parts,
        *_parts(
            (temperature, lambda a: a == 1.0, Temperature),
            (min_p, lambda a: a == 0.0, MinP),
            (top_k, lambda a: (a == 0) | (a == -1), TopK),
            (top_p, lambda a: a == 1.0, TopP),
        ),
    )


def llama_cpp(
    *,
    temperature: Any = 0.8,
    top_k: Any = 40,
    top_p: Any = 0.95,
    min_p: Any = 0.05,
    typical_p: Any = 1.0,
    repeat_last_n: int = 64,
    repeat_penalty: Any = 1.0,
    frequency_penalty: Any = 0.0,
    presence_penalty: Any = 0.0,
    dry_multiplier: Any = 0.0,
    dry_base: Any = 1.75,
    dry_allowed_length: Any = 2,
    dry_penalty_last_n: int = -1,
    dry_sequence_breakers: tuple[int, ...] = (),
    top_n_sigma: Any = -1.0,
    xtc_probability: Any = 0.0,
    xtc_threshold: Any = 0.1,
    mirostat: int = 0,
    mirostat_tau: Any = 5.0,
    mirostat_eta: Any = 0.1,
    logit_bias: Any = None,
) -> Chain:
    """The chain of llama.cpp's common sampler (``llama-cli``, ``llama-server``).

    Follows ``common/sampling.cpp`` (``common_sampler_init``) with the default
    sampler order of ``common/common.h``: logit bias, penalties, DRY, top-n-sigma,
    top-k, typical, top-p, min-p, XTC, temperature, then the draw; each step is the
    one of ``src/llama-sampling.cpp``. Temperature comes *last*, so the truncations
    see the model's own distribution. With ``mirostat=2`` the chain is logit bias,
    temperature, :class:`~jaxsample.Mirostat2`. The penalties and DRY read the last
    ``repeat_last_n`` / ``dry_penalty_last_n`` tokens of the context, prompt
    included (the programs feed the prompt to the sampler).

    Args:
        temperature: 0 or below is greedy.
        top_k: ``<= 0`` leaves it out.
        top_p: ``>= 1`` leaves it out.
        min_p: ``<= 0`` leaves it out.
        typical_p: ``>= 1`` leaves it out.
        repeat_last_n: Python int; 0 leaves the penalties out, -1 is the whole context.
        repeat_penalty: ``> 0``; 1 with zero frequency and presence penalties leaves
            the penalties out.
        frequency_penalty: finite.
        presence_penalty: finite.
        dry_multiplier: ``0`` leaves DRY out.
        dry_base: ``>= 1``.
        dry_allowed_length: int ``>= 1``.
        dry_penalty_last_n: Python int; -1 is the whole context, 0 leaves DRY out.
        dry_sequence_breakers: token ids (llama.cpp takes strings and tokenises them).
        top_n_sigma: ``<= 0`` leaves it out.
        xtc_probability: ``<= 0`` leaves XTC out.
        xtc_threshold: above 0.5 XTC does nothing.
        mirostat: 0 (off) or 2 (Mirostat 2.0); mirostat 1 is not provided.
        mirostat_tau: target surprise (bits).
        mirostat_eta: learning rate.
        logit_bias: float ``[V]`` or ``[B, V]``, or ``None``.

    Returns:
        A :class:`~jaxsample.Chain`.

    Raises:
        ValueError: for a bad value, or ``mirostat`` not 0 or 2.
    """
    if mirostat not in (0, 2):
        raise ValueError(f"mirostat must be 0 (off) or 2 (Mirostat 2.0), got {mirostat!r}")
    parts = _parts((logit_bias, _never, LogitBias))
    if mirostat == 2:
        return chain(
            *parts, _temperature(temperature, 1e-30), Mirostat2(mirostat_tau, mirostat_eta)
        )
    neutral = (
        _is(repeat_penalty, lambda a: a == 1.0)
        and _is(frequency_penalty, lambda a: a == 0.0)
        and _is(presence_penalty, lambda a: a == 0.0)
    )
    if repeat_last_n != 0 and not neutral:
        window = repeat_last_n  # -1 is the whole context, as for the strategies
        parts.append(RepetitionPenalty(repeat_penalty, last_n=window))
        parts.append(FrequencyPenalty(frequency_penalty, last_n=window))
        parts.append(PresencePenalty(presence_penalty, last_n=window))
    if dry_penalty_last_n != 0 and not _is(dry_multiplier, lambda a: a == 0.0):
        parts.append(
            DRY(
                dry_multiplier,
                dry_base,
                dry_allowed_length,
                breakers=tuple(dry_sequence_breakers),
                last_n=None if dry_penalty_last_n == -1 else dry_penalty_last_n,
            )
        )
    parts += _parts(
        (top_n_sigma, lambda a: a <= 0.0, TopNSigma),
        (top_k, lambda a: a <= 0, TopK),
        (typical_p, lambda a: a >= 1.0, Typical),
        (top_p, lambda a: a >= 1.0, TopP),
        (min_p, lambda a: a <= 0.0, MinP),
    )
    if not _is(xtc_probability, lambda a: a <= 0.0) and not _is(xtc_threshold, lambda a: a > 0.5):
        parts.append(XTC(xtc_threshold, xtc_probability))
    parts.append(_temperature(temperature, 1e-30))
    return chain(*parts)
