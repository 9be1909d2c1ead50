"""A small word-level GPT in pure JAX.

The architecture is GPT-2 (Radford et al., 2019, "Language Models are Unsupervised
Multitask Learners"): a decoder-only Transformer (Vaswani et al., 2017, "Attention Is
All You Need") with learned position embeddings, pre-LayerNorm residual blocks,
causal multi-head self-attention, a tanh-approximated GELU MLP, a final LayerNorm and
an output head tied to the token embedding.

Parameters are a plain nested-dict pytree that uses GPT-2's names, so they can be
handed directly to optax, ``jax.tree_util`` and checkpointing code, and GPT-2 checkpoints
load into it (:mod:`jaxsample.model.hf`). Leaves are float32; bfloat16 leaves are also
accepted and widened to float32 where they are used, so the computation is float32::

    {"wte": (V, D), "wpe": (n_ctx, D),
     "h": [{"ln_1": {"g": (D,), "b": (D,)},
            "attn": {"c_attn": {"w": (D, 3D), "b": (3D,)},
                     "c_proj": {"w": (D, D), "b": (D,)}},
            "ln_2": {"g": (D,), "b": (D,)},
            "mlp": {"c_fc": {"w": (D, 4D), "b": (4D,)},
                    "c_proj": {"w": (4D, D), "b": (D,)}}}, ...],
     "ln_f": {"g": (D,), "b": (D,)}}

Two entry points compute logits:

* :func:`forward` runs a whole (possibly left-padded) batch of sequences at once; it
  is what training and reference decoding use.
* :func:`forward_cached` runs ``T`` new tokens against a :class:`KVCache` of earlier
  keys and values; it is used for prefill (``slot = 0``) and for one-token decode
  steps inside ``lax.scan``.

Both give the same logits (up to float32 rounding) for the same tokens, positions and
validity mask.

Token ids are **not** range-checked inside the model: the functions are meant to be
jitted, and JAX gathers silently wrap negative indices once and clamp the rest into
range instead of raising (id ``V`` embeds as ``V - 1``, id ``-1`` as ``V - 1``).
Callers that accept ids from outside must validate them first with
:func:`check_tokens`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

from jaxsample._checks import dataclass_from_dict

__all__ = [
    "PRESET_NAMES",
    "GPTConfig",
    "KVCache",
    "Params",
    "check_tokens",
    "count_params",
    "forward",
    "forward_cached",
    "init_cache",
    "init_params",
    "loss_fn",
]

Params = dict[str, Any]
"""Nested-dict pytree of float32 arrays with GPT-2 parameter names (see module docs)."""

_LN_EPS = 1e-5
"""LayerNorm epsilon, as in GPT-2."""

_INIT_STD = 0.02
"""Standard deviation of the GPT-2 weight initialisation."""

_PRECISION = lax.Precision.HIGHEST
"""Precision of every matrix product: true float32.

The backend default on recent GPUs rounds float32 matmul inputs to TF32 (10-bit
mantissa), which makes logits drift by ~1e-3 and lets :func:`forward` and
:func:`forward_cached` (whose products have different shapes) disagree by more than
float32 rounding. The model is tiny, so full precision costs nothing noticeable.
"""

_MASK_VALUE = -1e30
"""Finite score given to masked attention entries.

A finite value (rather than ``-inf``) keeps a query whose keys are *all* masked from
producing ``NaN``: its softmax becomes uniform over the masked keys instead of 0/0.
"""

_PRESETS: dict[str, dict[str, int]] = {
    # Trains in seconds on a CPU; for tests.
    "tiny": {"n_layer": 1, "n_head": 2, "d_model": 32},
    # The shipped default: about 1.9 M parameters with a 500-word vocabulary.
    "small": {"n_layer": 4, "n_head": 4, "d_model": 192},
    # About 4.9 M parameters with a 500-word vocabulary; for size comparisons.
    "large": {"n_layer": 6, "n_head": 8, "d_model": 256},
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)
"""Names accepted by :meth:`GPTConfig.preset`."""


@dataclasses.dataclass(frozen=True)
class GPTConfig:
    """Hyper-parameters of the model; immutable and hashable (usable as a jit static arg).

    Attributes:
        vocab_size: Number of token ids ``V``; valid ids are ``0 .. V - 1``.
        n_ctx: Maximum sequence length, i.e. the number of learned positions.
        n_layer: Number of Transformer blocks.
        n_head: Number of attention heads per block; must divide ``d_model``.
        d_model: Width ``D`` of the residual stream.

    Raises:
        ValueError: If a field is not a positive ``int`` (``bool`` is rejected) or if
            ``d_model`` is not a multiple of ``n_head``. The message names the field,
            the value and the allowed range.

    """

    vocab_size: int
    n_ctx: int = 32
    n_layer: int = 4
    n_head: int = 4
    d_model: int = 128

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"GPTConfig.{field.name} must be a positive int (>= 1), got {value!r}"
                )
        if self.d_model % self.n_head != 0:
            raise ValueError(
                f"GPTConfig.d_model must be a multiple of n_head={self.n_head}, "
                f"got d_model={self.d_model}"
            )

    @property
    def d_head(self) -> int:
        """Width of one attention head, ``d_model // n_head``."""
        return self.d_model // self.n_head

    @classmethod
    def preset(cls, name: str, vocab_size: int, n_ctx: int = 32) -> GPTConfig:
        """Build a named configuration.

        Presets (parameter counts for ``vocab_size=500, n_ctx=32``):

        * ``"tiny"``: 1 layer, 2 heads, ``d_model`` 32 (29,792 parameters); for tests.
        * ``"small"``: 4 layers, 4 heads, ``d_model`` 192 (1,881,984); the default.
        * ``"large"``: 6 layers, 8 heads, ``d_model`` 256 (4,875,264).

        Args:
            name: One of :data:`PRESET_NAMES`.
            vocab_size: Vocabulary size ``V``.
            n_ctx: Maximum sequence length.

        Returns:
            The configuration.

        Raises:
            ValueError: If ``name`` is unknown (the message lists the valid names), or if
                ``vocab_size`` / ``n_ctx`` are invalid.

        """
        if name not in _PRESETS:
            raise ValueError(
                f"unknown GPTConfig preset {name!r}; valid names: {', '.join(PRESET_NAMES)}"
            )
        return cls(vocab_size=vocab_size, n_ctx=n_ctx, **_PRESETS[name])

    def to_dict(self) -> dict[str, int]:
        """Return the fields as a plain JSON-serialisable ``dict``."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict`.

        Args:
            d: Mapping with exactly the keys ``vocab_size``, ``n_ctx``, ``n_layer``,
                ``n_head`` and ``d_model``.

        Returns:
            The configuration.

        Raises:
            ValueError: If keys are missing or unknown (the message names them), or if a
                value is invalid (see the class docstring).

        """
        return dataclass_from_dict(cls, d)


# ---------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------


class _Normal(NamedTuple):
    """Placeholder for a weight of the given shape drawn from ``N(0, std^2)``."""

    shape: tuple[int, ...]
    std: float


def _linear_params(d_in: int, d_out: int, std: float) -> Params:
    return {"w": _Normal((d_in, d_out), std), "b": jnp.zeros((d_out,), jnp.float32)}


def _ln_params(d: int) -> Params:
    return {"g": jnp.ones((d,), jnp.float32), "b": jnp.zeros((d,), jnp.float32)}


def init_params(key: jax.Array, config: GPTConfig) -> Params:
    """Draw GPT-2-style initial parameters.

    Every weight matrix and both embeddings are drawn from ``N(0, 0.02^2)``; the two
    projections that write into the residual stream (``attn.c_proj`` and
    ``mlp.c_proj``) use ``0.02 / sqrt(2 * n_layer)`` so that the residual variance does
    not grow with depth (Radford et al., 2019, Sec. 2.3). Biases are zero, LayerNorm
    gains one and shifts zero.

    All weights come from a single ``jax.random.normal`` draw that is cut into pieces:
    the values are i.i.d. as if drawn one matrix at a time, but the random-number
    kernel is compiled once instead of once per distinct shape (which dominates the
    start-up time of small models on CPU). The draw is jit-compiled once per config.

    Args:
        key: A JAX PRNG key.
        config: Model configuration.

    Returns:
        The parameter pytree (float32 leaves; layout in the module docstring).

    """
    params: Params = _init_params_jit(key, config)
    return params


def _init_params_impl(key: jax.Array, config: GPTConfig) -> Params:
    D = config.d_model
    proj_std = _INIT_STD / math.sqrt(2 * config.n_layer)
    block: Params = {
        "ln_1": _ln_params(D),
        "attn": {
            "c_attn": _linear_params(D, 3 * D, _INIT_STD),
            "c_proj": _linear_params(D, D, proj_std),
        },
        "ln_2": _ln_params(D),
        "mlp": {
            "c_fc": _linear_params(D, 4 * D, _INIT_STD),
            "c_proj": _linear_params(4 * D, D, proj_std),
        },
    }
    spec: Params = {
        "wte": _Normal((config.vocab_size, D), _INIT_STD),
        "wpe": _Normal((config.n_ctx, D), _INIT_STD),
        "h": [block] * config.n_layer,  # structure only; every weight is drawn afresh
        "ln_f": _ln_params(D),
    }

    def is_normal(leaf: Any) -> bool:
        return isinstance(leaf, _Normal)

    leaves, treedef = jax.tree_util.tree_flatten(spec, is_leaf=is_normal)
    total = sum(math.prod(leaf.shape) for leaf in leaves if is_normal(leaf))
    noise = jax.random.normal(key, (total,), jnp.float32)
    filled: list[jax.Array] = []
    offset = 0
    for leaf in leaves:
        if is_normal(leaf):
            size = math.prod(leaf.shape)
            filled.append(leaf.std * noise[offset : offset + size].reshape(leaf.shape))
            offset += size
        else:
            filled.append(leaf)
    params: Params = jax.tree_util.tree_unflatten(treedef, filled)
    return params


_init_params_jit = jax.jit(_init_params_impl, static_argnums=1)


def count_params(params: Params) -> int:
    """Total number of scalar parameters in a pytree.

    With the output head tied to ``wte`` the count is
    ``V*D + n_ctx*D + n_layer*(12*D^2 + 13*D) + 2*D``.

    Args:
        params: Any pytree of arrays.

    Returns:
        The sum of the leaves' sizes.

    """
    return sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params))


# ---------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------


def _f32(w: jax.Array) -> jax.Array:
    """A parameter as float32: bfloat16 weights are stored narrow and computed wide."""
    return w if w.dtype == jnp.float32 else w.astype(jnp.float32)


def _layer_norm(p: Params, x: jax.Array) -> jax.Array:
    """LayerNorm over the last axis: ``g * (x - mean) / sqrt(var + eps) + b``."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    g = _f32(p["g"])
    b = _f32(p["b"])
    return g * (x - mean) * lax.rsqrt(var + _LN_EPS) + b


def _linear(p: Params, x: jax.Array) -> jax.Array:
    """Affine map ``x W + b`` on the last axis: (..., d_in) -> (..., d_out)."""
    w = _f32(p["w"])
    b = _f32(p["b"])
    return jnp.matmul(x, w, precision=_PRECISION) + b


def _embed(params: Params, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    """Token plus position embedding: (B, T) ids and positions -> (B, T, D)."""
    wte: jax.Array = params["wte"]  # (V, D)
    wpe: jax.Array = params["wpe"]  # (n_ctx, D)
    return _f32(wte[tokens]) + _f32(wpe[positions])  # (B, T, D)


def _qkv(p: Params, x: jax.Array, config: GPTConfig) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Pre-LayerNorm query/key/value projection, split into heads.

    Args:
        p: One block's parameters.
        x: Residual stream, float32 (B, T, D).
        config: Model configuration.

    Returns:
        ``q, k, v``, each float32 (B, H, T, d_head).

    """
    B, T, _ = x.shape
    qkv = _linear(p["attn"]["c_attn"], _layer_norm(p["ln_1"], x))  # (B, T, 3D)
    qkv = qkv.reshape(B, T, 3, config.n_head, config.d_head)  # (B, T, 3, H, dh)
    qkv = qkv.transpose(2, 0, 3, 1, 4)  # (3, B, H, T, dh)
    return qkv[0], qkv[1], qkv[2]


def _attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked scaled dot-product attention (Vaswani et al., 2017, Eq. 1).

    ``softmax(q k^T / sqrt(d_head) + M) v`` where ``M`` is 0 where ``mask`` is True and
    a large negative finite number elsewhere (so fully masked rows stay finite).

    Args:
        q: Queries, float32 (B, H, T, dh).
        k: Keys, float32 (B, H, S, dh).
        v: Values, float32 (B, H, S, dh).
        mask: bool (B, T, S); True where query t may attend to key s.

    Returns:
        float32 (B, H, T, dh).

    """
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = jnp.einsum("bhtd,bhsd->bhts", q, k, precision=_PRECISION) * scale  # (B, H, T, S)
    scores = jnp.where(mask[:, None, :, :], scores, _MASK_VALUE)
    weights = jax.nn.softmax(scores, axis=-1)  # (B, H, T, S)
    return jnp.einsum("bhts,bhsd->bhtd", weights, v, precision=_PRECISION)  # (B, H, T, dh)


def _finish_block(p: Params, x: jax.Array, heads: jax.Array) -> jax.Array:
    """Merge heads, project, add to the residual, then the pre-LayerNorm GELU MLP.

    Args:
        p: One block's parameters.
        x: Residual stream entering the block, float32 (B, T, D).
        heads: Attention output, float32 (B, H, T, dh).

    Returns:
        Residual stream leaving the block, float32 (B, T, D).

    """
    B, T, D = x.shape
    y = heads.transpose(0, 2, 1, 3).reshape(B, T, D)  # (B, T, D)
    x = x + _linear(p["attn"]["c_proj"], y)  # (B, T, D)
    h = jax.nn.gelu(_linear(p["mlp"]["c_fc"], _layer_norm(p["ln_2"], x)), approximate=True)
    return x + _linear(p["mlp"]["c_proj"], h)  # (B, T, D)


def _logits(params: Params, x: jax.Array) -> jax.Array:
    """Apply the final LayerNorm and the tied output head: (B, T, D) -> (B, T, V)."""
    wte = _f32(params["wte"])  # (V, D)
    return jnp.matmul(_layer_norm(params["ln_f"], x), wte.T, precision=_PRECISION)  # (B, T, V)


def _check_layers(params: Params, config: GPTConfig) -> None:
    if len(params["h"]) != config.n_layer:
        raise ValueError(
            f"params have {len(params['h'])} blocks but config.n_layer={config.n_layer}"
        )


def _check_shape(name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != expected:
        raise ValueError(f"{name} must have shape {expected}, got {tuple(shape)}")


# ---------------------------------------------------------------------------------------
# Full-sequence forward pass
# ---------------------------------------------------------------------------------------


def forward(
    params: Params,
    tokens: jax.Array,
    config: GPTConfig,
    *,
    positions: jax.Array | None = None,
    key_valid: jax.Array | None = None,
) -> jax.Array:
    """Logits for every position of a batch of sequences.

    With ``x = wte[tokens] + wpe[positions]``, each block computes
    ``x += Attn(LN_1(x)); x += MLP(LN_2(x))`` where
    ``Attn(u) = concat_h(softmax(q_h k_h^T / sqrt(d_head) + M) v_h) W_o + b_o``
    (``[q, k, v] = u W_attn + b_attn`` split into ``n_head`` heads; Vaswani et al., 2017)
    and ``MLP(u) = GELU(u W_fc + b_fc) W_proj + b_proj``; the output is
    ``logits = LN_f(x) wte^T`` (Radford et al., 2019). The mask ``M`` lets query ``t`` of
    row ``b`` attend to key ``s`` iff ``s <= t`` and ``key_valid[b, s]``.

    Left-padded prompts of different lengths are handled by marking the pads invalid in
    ``key_valid`` and giving the real tokens positions ``0, 1, ...``; the logits at the
    real positions then equal those of the unpadded row. Pad queries whose visible keys
    are all invalid get finite but meaningless logits.

    Out-of-range token ids or positions are **not** detected (JAX gathers wrap negative
    and clamp large indices); validate inputs with :func:`check_tokens` beforehand. Shape errors are
    static and raise even under ``jax.jit``. Works under ``jax.jit`` (pass ``config`` as
    a static argument or close over it) and ``jax.vmap`` (over any extra leading axis).

    Args:
        params: Parameters from :func:`init_params`.
        tokens: int32 (B, T) token ids in ``[0, vocab_size)``, ``T <= n_ctx``.
        config: Model configuration.
        positions: int32 (B, T) position ids in ``[0, n_ctx)``; defaults to
            ``arange(T)`` for every row.
        key_valid: bool (B, T); False marks padding that no query may attend to.
            Defaults to all True.

    Returns:
        float32 (B, T, V) logits.

    Raises:
        ValueError: If ``tokens`` is not 2-D, ``T > n_ctx``, ``positions`` or
            ``key_valid`` do not have shape (B, T), or ``params`` has a different number
            of blocks than ``config.n_layer``.

    """
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
    B, T = tokens.shape
    if config.n_ctx < T:
        raise ValueError(f"sequence length T={T} exceeds n_ctx={config.n_ctx}")
    _check_layers(params, config)
    if positions is None:
        positions = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
    _check_shape("positions", positions.shape, (B, T))
    causal = jnp.tril(jnp.ones((T, T), dtype=bool))  # (T, S=T)
    if key_valid is None:
        mask = jnp.broadcast_to(causal, (B, T, T))
    else:
        _check_shape("key_valid", key_valid.shape, (B, T))
        mask = causal[None, :, :] & key_valid[:, None, :].astype(bool)  # (B, T, T)

    x = _embed(params, tokens, positions)  # (B, T, D)
    for p in params["h"]:
        q, k, v = _qkv(p, x, config)  # (B, H, T, dh) each
        x = _finish_block(p, x, _attention(q, k, v, mask))  # (B, T, D)
    return _logits(params, x)  # (B, T, V)


# ---------------------------------------------------------------------------------------
# Cached (incremental) forward pass
# ---------------------------------------------------------------------------------------


class KVCache(NamedTuple):
    """Per-layer attention keys and values of the tokens processed so far.

    A NamedTuple, hence a pytree: it can be a ``lax.scan`` carry or a jit argument.
    Slot ``j`` of every layer holds the key/value of the token written at slot ``j``;
    which slots are meaningful is tracked by the caller's ``key_valid`` mask.

    Attributes:
        k: float32 (n_layer, B, n_head, S, d_head) keys; ``S`` is the static number of
            slots.
        v: float32 (n_layer, B, n_head, S, d_head) values.

    """

    k: jax.Array
    v: jax.Array


def init_cache(config: GPTConfig, batch: int, max_len: int) -> KVCache:
    """Allocate an all-zero cache.

    Args:
        config: Model configuration.
        batch: Batch size ``B`` (>= 1).
        max_len: Number of slots ``S``, in ``[1, n_ctx]``; usually prompt length plus
            the number of tokens to generate.

    Returns:
        A :class:`KVCache` of float32 zeros, each (n_layer, B, n_head, S, d_head).

    Raises:
        ValueError: If ``batch < 1`` or ``max_len`` is outside ``[1, n_ctx]``.

    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}")
    if (
        isinstance(max_len, bool)
        or not isinstance(max_len, int)
        or not (1 <= max_len <= config.n_ctx)
    ):
        raise ValueError(f"max_len must be an int in [1, n_ctx={config.n_ctx}], got {max_len!r}")
    shape = (config.n_layer, batch, config.n_head, max_len, config.d_head)
    return KVCache(k=jnp.zeros(shape, jnp.float32), v=jnp.zeros(shape, jnp.float32))


def forward_cached(
    params: Params,
    tokens: jax.Array,
    cache: KVCache,
    config: GPTConfig,
    *,
    slot: jax.Array | int,
    positions: jax.Array,
    key_valid: jax.Array,
) -> tuple[jax.Array, KVCache]:
    """Run ``T`` new tokens against a key/value cache and extend it.

    The keys and values of the new tokens are written into cache slots
    ``[slot, slot + T)`` of every layer (with ``lax.dynamic_update_slice``, so ``slot``
    may be traced, e.g. a ``lax.scan`` counter). New query ``i`` (at slot ``slot + i``)
    attends to cache slot ``j`` iff ``j <= slot + i`` and ``key_valid[b, j]``. Otherwise
    the computation is that of :func:`forward`, so prefilling a prompt and then feeding
    one token at a time reproduces ``forward`` on the whole sequence.

    Typical use: prefill with ``slot=0`` and the (left-padded) prompt, then decode with
    ``T = 1`` and ``slot = prompt_len + step``; before each call mark the new slots
    valid in ``key_valid``.

    ``slot + T`` must not exceed ``S``; a concrete ``slot`` is checked, but a traced one
    cannot be, and ``lax.dynamic_update_slice`` would then clamp the write position
    (silently wrong results). Token ids and positions are not range-checked (see
    :func:`check_tokens`).

    Args:
        params: Parameters from :func:`init_params`.
        tokens: int32 (B, T) new token ids.
        cache: Cache from :func:`init_cache` or a previous call, with ``S`` slots.
        config: Model configuration.
        slot: int32 scalar (Python int or traced array), first slot written.
        positions: int32 (B, T) position ids of the new tokens.
        key_valid: bool (B, S) validity of *all* cache slots, including the new ones.

    Returns:
        ``(logits, cache)``: float32 (B, T, V) logits of the new tokens and the updated
        cache.

    Raises:
        ValueError: On static shape mismatches, ``T > S``, a concrete ``slot`` with
            ``slot < 0`` or ``slot + T > S``, or a layer-count mismatch.

    """
    if tokens.ndim != 2:
        raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
    B, T = tokens.shape
    _check_layers(params, config)
    S = cache.k.shape[3] if cache.k.ndim == 5 else -1  # number of slots
    expected_cache = (config.n_layer, B, config.n_head, S, config.d_head)
    _check_shape("cache.k", cache.k.shape, expected_cache)
    _check_shape("cache.v", cache.v.shape, expected_cache)
    if T > S:
        raise ValueError(f"T={T} new tokens do not fit in a cache of S={S} slots")
    _check_shape("positions", positions.shape, (B, T))
    _check_shape("key_valid", key_valid.shape, (B, S))
    if isinstance(slot, int) and not (0 <= slot <= S - T):
        raise ValueError(f"slot must be in [0, S - T] = [0, {S - T}], got {slot}")

    slot = jnp.asarray(slot, dtype=jnp.int32)
    zero = jnp.zeros((), jnp.int32)
    query_slot = slot + jnp.arange(T, dtype=jnp.int32)  # (T,)
    causal = jnp.arange(S, dtype=jnp.int32)[None, :] <= query_slot[:, None]  # (T, S)
    mask = causal[None, :, :] & key_valid[:, None, :].astype(bool)  # (B, T, S)

    cache_k, cache_v = cache.k, cache.v  # (L, B, H, S, dh)
    x = _embed(params, tokens, positions)  # (B, T, D)
    for layer, p in enumerate(params["h"]):
        q, k, v = _qkv(p, x, config)  # (B, H, T, dh) each
        start = (jnp.asarray(layer, jnp.int32), zero, zero, slot, zero)
        cache_k = lax.dynamic_update_slice(cache_k, k[None], start)
        cache_v = lax.dynamic_update_slice(cache_v, v[None], start)
        heads = _attention(q, cache_k[layer], cache_v[layer], mask)  # (B, H, T, dh)
        x = _finish_block(p, x, heads)  # (B, T, D)
    return _logits(params, x), KVCache(k=cache_k, v=cache_v)


# ---------------------------------------------------------------------------------------
# Input validation and loss
# ---------------------------------------------------------------------------------------


def check_tokens(tokens: ArrayLike, config: GPTConfig) -> None:
    """Validate concrete token ids before they reach the (unchecked) model.

    Inside ``jit`` the model cannot raise, and JAX gathers wrap negative and clamp large
    indices, so an invalid id would silently embed as a different token. Call this on host-side
    inputs (prompts, training batches) first.

    Args:
        tokens: Concrete integer array (NumPy or JAX) whose last axis is the sequence
            axis, e.g. int32 (B, T) or (T,).
        config: Model configuration.

    Raises:
        ValueError: If ``tokens`` is 0-D or not of an integer dtype, its sequence length
            exceeds ``n_ctx``, or an id lies outside ``[0, vocab_size)`` (the message
            names the first offending id and its index).
        TypeError: If ``tokens`` is a tracer (this check needs concrete values; call it
            outside ``jit``).

    """
    try:
        arr = np.asarray(tokens)
    except jax.errors.TracerArrayConversionError as err:
        raise TypeError("check_tokens needs concrete values; call it outside jit") from err
    if arr.ndim == 0:
        raise ValueError("tokens must have at least one (sequence) axis, got a scalar")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"tokens must have an integer dtype, got {arr.dtype}")
    if arr.shape[-1] > config.n_ctx:
        raise ValueError(f"sequence length {arr.shape[-1]} exceeds n_ctx={config.n_ctx}")
    bad = (arr < 0) | (arr >= config.vocab_size)
    if np.any(bad):
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"token id {int(arr[index])} at index {index} is outside "
            f"[0, vocab_size={config.vocab_size})"
        )


def loss_fn(
    params: Params,
    inputs: jax.Array,
    targets: jax.Array,
    config: GPTConfig,
    *,
    pad_id: int,
) -> jax.Array:
    """Mean next-token cross-entropy over non-pad targets, in nats.

    ``L = sum_{b,t} m[b,t] * (-log softmax(logits[b,t])[targets[b,t]]) / max(1, sum m)``
    with ``m = (targets != pad_id)`` and ``logits = forward(params, inputs, config)``.
    All keys are treated as valid and positions are ``arange(T)``, so sequences must be
    **right**-padded (pads after the real tokens, which causal attention then never
    lets a real query see). A batch with no real target gives 0, not NaN.

    Token ids are not range-checked (see :func:`check_tokens`).

    Args:
        params: Model parameters.
        inputs: int32 (B, T) input ids, usually ``seq[:, :-1]``.
        targets: int32 (B, T) next-token ids, usually ``seq[:, 1:]``.
        config: Model configuration.
        pad_id: Target id excluded from the mean.

    Returns:
        float32 scalar loss.

    Raises:
        ValueError: If ``inputs`` and ``targets`` shapes differ (or as :func:`forward`).

    """
    _check_shape("targets", targets.shape, tuple(inputs.shape))
    logits = forward(params, inputs, config)  # (B, T, V)
    label_logits = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]  # (B, T)
    ce = jax.nn.logsumexp(logits, axis=-1) - label_logits  # (B, T)
    weight = (targets != pad_id).astype(jnp.float32)  # (B, T)
    return jnp.sum(ce * weight) / jnp.maximum(jnp.sum(weight), 1.0)
