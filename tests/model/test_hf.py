"""Hugging Face GPT-2 folders: parity with transformers, the tokenizer, refusals, the CLI.

The fixtures come from tests/fixtures/make_gpt2_fixtures.py (torch + transformers, run once);
these tests need neither.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jaxsample.cli import main
from jaxsample.data import MAX_SENTENCE_WORDS
from jaxsample.data.bpe import BPETokenizer
from jaxsample.decoding import complete, generate_ids
from jaxsample.model import (
    Pretrained,
    forward,
    forward_cached,
    init_cache,
    load_hf,
    load_pretrained,
)
from jaxsample.samplers import Greedy

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TINY = FIXTURES / "gpt2_tiny"
EXPECTED = np.load(FIXTURES / "gpt2_tiny_expected.npz")
META = json.loads((FIXTURES / "gpt2_tiny_expected.json").read_text(encoding="utf-8"))
TOL = 1e-4


@pytest.fixture(scope="module")
def tiny() -> Pretrained:
    return load_hf(TINY)


def _max_diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _copy(tmp_path: Path, tensors: dict[str, np.ndarray[Any, Any]] | None = None) -> Path:
    """The tiny folder copied to tmp_path, optionally with other weights."""
    folder = tmp_path / "model"
    shutil.copytree(TINY, folder)
    if tensors is not None:
        save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _tensors() -> dict[str, np.ndarray[Any, Any]]:
    return dict(load_file(str(TINY / "model.safetensors")))


# ---------------------------------------------------------------------------------------
# Parity with transformers
# ---------------------------------------------------------------------------------------


def test_config_and_types(tiny: Pretrained) -> None:
    assert isinstance(tiny, Pretrained)
    assert isinstance(tiny.tokenizer, BPETokenizer)
    c = tiny.config
    assert (c.vocab_size, c.n_ctx, c.n_layer, c.n_head, c.d_model) == (
        META["vocab_size"],
        64,
        2,
        4,
        32,
    )
    assert tiny.tokenizer.eos_id == tiny.tokenizer.bos_id == tiny.tokenizer.pad_id == META["eos_id"]
    assert tiny.manifest["format"] == "huggingface-gpt2"
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(tiny.params))


def test_full_forward_matches_transformers(tiny: Pretrained) -> None:
    logits = forward(tiny.params, jnp.asarray(EXPECTED["tokens"]), tiny.config)
    assert logits.shape == EXPECTED["logits"].shape
    assert _max_diff(logits, EXPECTED["logits"]) <= TOL


def test_kv_cache_path_matches_transformers(tiny: Pretrained) -> None:
    tokens = jnp.asarray(EXPECTED["tokens"])
    B, T = tokens.shape
    cache = init_cache(tiny.config, B, T)
    valid = jnp.ones((B, T), bool)
    prefill = 7
    pos = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
    first, cache = forward_cached(
        tiny.params,
        tokens[:, :prefill],
        cache,
        tiny.config,
        slot=0,
        positions=pos[:, :prefill],
        key_valid=valid,
    )
    steps = [first]
    for t in range(prefill, T):
        out, cache = forward_cached(
            tiny.params,
            tokens[:, t : t + 1],
            cache,
            tiny.config,
            slot=t,
            positions=pos[:, t : t + 1],
            key_valid=valid,
        )
        steps.append(out)
    assert _max_diff(jnp.concatenate(steps, axis=1), EXPECTED["logits"]) <= TOL


def test_left_padded_batch_matches_transformers(tiny: Pretrained) -> None:
    mask = EXPECTED["padded_mask"]
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    logits = forward(
        tiny.params,
        jnp.asarray(EXPECTED["padded_tokens"]),
        tiny.config,
        positions=jnp.asarray(positions),
        key_valid=jnp.asarray(mask),
    )
    real = np.asarray(logits)[mask]
    assert _max_diff(real, EXPECTED["padded_logits"][mask]) <= TOL


@pytest.mark.parametrize("cache", [True, False])
def test_greedy_generation_matches_transformers(tiny: Pretrained, cache: bool) -> None:
    tok = tiny.tokenizer
    prompts = [g["prompt"] for g in META["greedy"]]
    n = len(META["greedy"][0]["ids"])
    gen = generate_ids(
        tiny.params,
        tiny.config,
        prompts,
        jax.random.key(0),
        Greedy(),
        max_new_tokens=n,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        cache=cache,
        record_logits=True,
    )
    assert gen.logits is not None
    for b, g in enumerate(META["greedy"]):
        # Both sides stop at the end token; transformers pads after it, so compare up to it.
        want = g["ids"]
        if tok.eos_id in want:
            want = want[: want.index(tok.eos_id) + 1]
        assert np.asarray(gen.tokens)[b, : len(want)].tolist() == want
        steps = len(want)
        diff = _max_diff(np.asarray(gen.logits)[b, :steps], EXPECTED[f"greedy{b}_logits"][:steps])
        assert diff <= TOL


# ---------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------


def test_tokenizer_matches_transformers_and_round_trips(tiny: Pretrained) -> None:
    tok = tiny.tokenizer
    assert len(META["texts"]) >= 5
    for case in META["texts"]:
        ids = tok.encode(case["text"])
        assert ids == case["ids"], case["text"]
        assert tok.decode(ids, skip_special=False) == case["text"]
        assert tok.decode(ids, skip_special=False) == case["decoded"]
    mixed = "two documents<|endoftext|>joined"
    ids = tok.encode(mixed, bos=True, eos=True)
    assert ids[0] == ids[-1] == tok.eos_id and ids.count(tok.eos_id) == 3
    assert tok.decode(ids) == "two documentsjoined"
    assert len(tok.vocab) == tok.vocab_size and tok.vocab[tok.eos_id] == "<|endoftext|>"


def test_tokenizer_from_vocab_and_merges(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    (folder / "tokenizer.json").unlink()
    tok = BPETokenizer.from_folder(folder)
    assert tok.eos_id == META["eos_id"] and tok.vocab_size == META["vocab_size"]
    for case in META["texts"]:
        assert tok.encode(case["text"]) == case["ids"], case["text"]
        assert tok.decode(tok.encode(case["text"]), skip_special=False) == case["text"]


def test_tokenizer_rejects_bad_ids(tiny: Pretrained) -> None:
    tok = tiny.tokenizer
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([-1])
    with pytest.raises(TypeError):
        tok.decode([1.5])  # type: ignore[list-item]


# ---------------------------------------------------------------------------------------
# Layouts and dtypes
# ---------------------------------------------------------------------------------------


def _bare_layout(tensors: dict[str, np.ndarray[Any, Any]], n_ctx: int) -> dict[str, Any]:
    """The published gpt2 layout: no prefix, causal-mask buffers, lm_head stored."""
    bare = {name.removeprefix("transformer."): value for name, value in tensors.items()}
    for name in [n for n in bare if n.endswith("attn.c_attn.weight")]:
        layer = name.rsplit(".attn.", 1)[0]
        bare[f"{layer}.attn.bias"] = np.tril(np.ones((n_ctx, n_ctx), np.float32))[None, None]
        bare[f"{layer}.attn.masked_bias"] = np.array(-1e4, np.float32)
    bare["lm_head.weight"] = bare["wte.weight"].copy()
    return bare


def test_bare_layout_with_buffers_and_tied_head(tmp_path: Path, tiny: Pretrained) -> None:
    folder = _copy(tmp_path, _bare_layout(_tensors(), tiny.config.n_ctx))
    other = load_hf(folder)
    jax.tree_util.tree_map(np.testing.assert_array_equal, other.params, tiny.params)


def test_untied_head_is_refused(tmp_path: Path, tiny: Pretrained) -> None:
    tensors = _bare_layout(_tensors(), tiny.config.n_ctx)
    tensors["lm_head.weight"][3, 5] += 1.0
    with pytest.raises(ValueError, match=r"'lm_head\.weight' differs from 'wte\.weight'"):
        load_hf(_copy(tmp_path, tensors))


@pytest.mark.parametrize("stored", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_files_load_exactly(tmp_path: Path, stored: Any, tiny: Pretrained) -> None:
    narrow = {k: v.astype(stored) for k, v in _tensors().items()}
    model = load_hf(_copy(tmp_path, narrow))
    want = jax.tree_util.tree_map(
        lambda a: np.asarray(a).astype(stored).astype(np.float32), tiny.params
    )
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, want)


def test_bfloat16_weights_compute_in_float32(tiny: Pretrained) -> None:
    narrow = load_hf(TINY, dtype="bfloat16")
    assert all(leaf.dtype == jnp.bfloat16 for leaf in jax.tree_util.tree_leaves(narrow.params))
    tokens = jnp.asarray(EXPECTED["tokens"])
    logits = forward(narrow.params, tokens, narrow.config)
    assert logits.dtype == jnp.float32
    # The same as float32 weights rounded to bfloat16: only the weights were narrowed.
    widened = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), narrow.params)
    assert _max_diff(logits, forward(widened, tokens, narrow.config)) <= 1e-5
    assert 0 < _max_diff(logits, EXPECTED["logits"]) < 0.5


def test_sharded_index_is_followed(tmp_path: Path, tiny: Pretrained) -> None:
    tensors = _tensors()
    folder = _copy(tmp_path)
    (folder / "model.safetensors").unlink()
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for shard, part in shards.items():
        save_file({n: tensors[n] for n in part}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, shard))
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    jax.tree_util.tree_map(np.testing.assert_array_equal, load_hf(folder).params, tiny.params)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"00002-of-00002\.safetensors does not exist"):
        load_hf(folder)
    index.write_text(json.dumps({"weight_map": {"wte.weight": "../elsewhere.safetensors"}}))
    assert "is not a file name in" in _refusal(folder)
    index.write_text(json.dumps({"metadata": {}}))
    assert "is not a readable shard index" in _refusal(folder)


# ---------------------------------------------------------------------------------------
# Refusals: one line naming the file and the problem
# ---------------------------------------------------------------------------------------


def _refusal(folder: Path, error: type[Exception] = ValueError) -> str:
    with pytest.raises(error) as info:
        load_hf(folder)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_shape_is_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    tensors["transformer.h.1.mlp.c_fc.weight"] = tensors["transformer.h.1.mlp.c_fc.weight"][:, :-1]
    message = _refusal(_copy(tmp_path, tensors))
    assert "model.safetensors" in message and "'transformer.h.1.mlp.c_fc.weight'" in message
    assert "(32, 127)" in message and "(32, 128)" in message


def test_missing_tensor_is_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    del tensors["transformer.h.0.ln_2.bias"]
    message = _refusal(_copy(tmp_path, tensors))
    assert "'h.0.ln_2.bias' is missing" in message and "model.safetensors" in message


def test_unexpected_tensor_is_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    tensors["transformer.h.0.crossattention.c_attn.weight"] = np.zeros((32, 96), np.float32)
    message = _refusal(_copy(tmp_path, tensors))
    assert "unexpected tensor 'transformer.h.0.crossattention.c_attn.weight'" in message


def test_other_dtype_is_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    tensors["transformer.ln_f.bias"] = tensors["transformer.ln_f.bias"].astype(np.float64)
    message = _refusal(_copy(tmp_path, tensors))
    assert "'transformer.ln_f.bias' has dtype F64" in message


def test_other_model_type_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "llama"
    (folder / "config.json").write_text(json.dumps(config))
    message = _refusal(folder)
    assert "config.json" in message and "model_type 'llama' is not supported" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("activation_function", "relu"),
        ("layer_norm_epsilon", 1e-6),
        ("n_inner", 100),
        ("scale_attn_by_inverse_layer_idx", True),
        ("tie_word_embeddings", False),
    ],
)
def test_unsupported_options_are_refused(tmp_path: Path, field: str, value: Any) -> None:
    folder = _copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))
    assert f"'{field}'" in _refusal(folder)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    message = _refusal(folder)
    assert str(weights) in message


def test_missing_folder_and_files(tmp_path: Path) -> None:
    _refusal(tmp_path / "nowhere", FileNotFoundError)
    folder = _copy(tmp_path)
    (folder / "model.safetensors").unlink()
    assert "has no model.safetensors" in _refusal(folder, FileNotFoundError)
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    assert "pickled PyTorch weights are not read" in _refusal(folder)


def test_tokenizer_size_mismatch_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    assert "the tokenizer has 400 tokens" in _refusal(folder)


# ---------------------------------------------------------------------------------------
# Everywhere a model is chosen
# ---------------------------------------------------------------------------------------


def test_load_pretrained_reads_a_hugging_face_folder(tiny: Pretrained) -> None:
    model = load_pretrained(TINY)
    assert model.manifest["format"] == "huggingface-gpt2"
    jax.tree_util.tree_map(np.testing.assert_array_equal, model.params, tiny.params)


def test_complete_with_a_bpe_model(tiny: Pretrained) -> None:
    g = META["greedy"][0]
    prompt = tiny.tokenizer.decode(g["prompt"])
    (text,) = complete(prompt, max_tokens=5, model=tiny)
    want = g["ids"][:5]
    if tiny.tokenizer.eos_id in want:
        want = want[: want.index(tiny.tokenizer.eos_id)]
    assert text == tiny.tokenizer.decode(want)


def test_cli_generate_and_info(tiny: Pretrained, capsys: pytest.CaptureFixture[str]) -> None:
    g = META["greedy"][0]
    prompt = tiny.tokenizer.decode(g["prompt"])
    assert (
        main(["generate", "--model", str(TINY), "--temperature", "0", "--max-tokens", "4", prompt])
        == 0
    )
    out = capsys.readouterr().out
    want = g["ids"][:4]
    if tiny.tokenizer.eos_id in want:
        want = want[: want.index(tiny.tokenizer.eos_id)]
    assert out == prompt + tiny.tokenizer.decode(want) + "\n"

    assert main(["info", "--model", str(TINY), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "huggingface-gpt2"
    assert info["param_count"] == 400 * 32 + 64 * 32 + 2 * (12 * 32 * 32 + 13 * 32) + 2 * 32
    assert info["model_config"]["vocab_size"] == 400


def test_cli_reports_a_bad_folder_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _copy(tmp_path)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert main(["info", "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model_type 'bert' is not supported" in err


def test_split_loss_of_a_bpe_model(tiny: Pretrained) -> None:
    from jaxsample.labs.exercises import split_loss

    sentences = ["Tomorrow she will walk the dog", "Every day I read the news in the park"]
    tok = tiny.tokenizer
    total, count = 0.0, 0
    for sentence in sentences:
        ids = tok.encode(sentence, bos=True)  # the end target is padding for GPT-2: not counted
        logits = np.asarray(forward(tiny.params, jnp.asarray([ids[:-1]]), tiny.config))[0]
        logz = np.log(np.sum(np.exp(logits - logits.max(-1, keepdims=True)), -1))
        logp = logits - logits.max(-1, keepdims=True) - logz[:, None]
        total -= float(np.sum(logp[np.arange(len(ids) - 1), ids[1:]]))
        count += len(ids) - 1
    # Wider than the word-level rows (MAX_SENTENCE_WORDS + 2 columns): the width must grow.
    assert len(tok.encode(sentences[1], bos=True, eos=True)) > MAX_SENTENCE_WORDS + 2
    assert split_loss(tiny, sentences) == pytest.approx(total / count, rel=1e-5)


def test_exercise_5_5_without_recorded_losses(tmp_path: Path, tiny: Pretrained) -> None:
    from jaxsample.labs import LabReport
    from jaxsample.labs.exercises import losses

    report = LabReport("exercises", tmp_path, 0)
    data = losses.exercise(report, tiny, quick=True)
    assert data["manifest"] == {"train": None, "val": None}
    assert all(np.isfinite(v) for v in data["recomputed_first"].values())
    assert not any(c.name.startswith("5.5") for c in report.checks)


def test_cli_lab_model_plumbing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jaxsample.labs import LabReport, exercises

    seen: dict[str, Any] = {}

    def fake_run(
        out_dir: Path,
        seed: int = 0,
        model: Pretrained | None = None,
        quick: bool = False,
        *,
        compare: tuple[Pretrained, ...] = (),
    ) -> LabReport:
        seen.update(model=model, compare=compare)
        return LabReport("exercises", out_dir, seed)

    monkeypatch.setattr(exercises, "run", fake_run)
    args = ["lab", "exercises", "--out", str(tmp_path / "ex"), "--model", str(TINY)]
    assert main([*args, "--model", str(TINY)]) == 0
    assert isinstance(seen["model"].tokenizer, BPETokenizer)
    assert len(seen["compare"]) == 1 and seen["compare"][0].config == seen["model"].config

    assert main(["lab", "simulator", "--out", str(tmp_path / "s"), "--model", str(TINY)]) == 2
    assert "uses no model" in capsys.readouterr().err
