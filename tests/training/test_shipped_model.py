"""Tests of the shipped Mini-GPT models: manifests, damage, training settings, acceptance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsample import cli
from jaxsample.data import build_tokenizer, check_completion, generate_corpus, heldout_prompts
from jaxsample.model import SHIPPED_MODEL_DIR, GPTConfig, count_params, forward, load_pretrained
from jaxsample.training import CheckpointError, TrainConfig, params_sha256, train


def _manifest() -> dict[str, Any]:
    return json.loads((SHIPPED_MODEL_DIR / "manifest.json").read_text())  # type: ignore[no-any-return]


def test_shipped_model_loads_and_matches_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    model = load_pretrained()
    manifest = _manifest()
    assert params_sha256(model.params) == manifest["params_sha256"]
    assert model.config == GPTConfig.from_dict(manifest["model_config"])
    assert model.config == GPTConfig.preset("small", model.tokenizer.vocab_size)
    assert 1_000_000 <= count_params(model.params) <= 3_000_000
    assert model.tokenizer == build_tokenizer()
    assert manifest["corpus_sha256"] == generate_corpus(manifest["corpus_seed"]).sha256
    # `jaxsample train --size small` regenerates it: the defaults are the manifest's.
    assert TrainConfig.for_size("small").to_dict() == manifest["train_config"]
    assert TrainConfig.from_dict(manifest["train_config"]) == TrainConfig()
    size = sum(p.stat().st_size for p in SHIPPED_MODEL_DIR.rglob("*") if p.is_file())
    assert size < 10_000_000
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params_sha256"] == manifest["params_sha256"]
    assert info["step"] == manifest["steps"]
    assert info["val_loss"] == manifest["final_val_loss"]


def test_shipped_large_model_loads_and_matches_manifest() -> None:
    folder = SHIPPED_MODEL_DIR.parent / "mini_gpt_large"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = load_pretrained(folder)
    assert params_sha256(model.params) == manifest["params_sha256"]
    assert model.config == GPTConfig.preset("large", model.tokenizer.vocab_size)
    assert TrainConfig.for_size("large").to_dict() == manifest["train_config"]
    assert model.tokenizer == build_tokenizer()
    # Larger and trained longer than the shipped small model: lower validation loss.
    assert manifest["final_val_loss"] < _manifest()["final_val_loss"]


def test_shipped_model_damage_is_reported(tmp_path: Path) -> None:
    dst = tmp_path / "model"
    shutil.copytree(SHIPPED_MODEL_DIR, dst)
    raw = bytearray((dst / "params.npz").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (dst / "params.npz").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"params\.npz"):
        load_pretrained(dst)
    (dst / "params.npz").write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(CheckpointError, match=r"params\.npz"):
        load_pretrained(dst)


@pytest.mark.slow
def test_manifest_settings_reproduce_recorded_first_losses(tmp_path: Path) -> None:
    manifest = _manifest()
    recorded = manifest["first_step_losses"]
    config = TrainConfig.from_dict(manifest["train_config"])
    result = train(tmp_path / "run", config, progress=False, until=len(recorded))
    assert result.step == len(recorded) == 20
    np.testing.assert_allclose(result.step_losses, recorded, rtol=0, atol=1e-5)


def _greedy(model: Any, prompts: list[str]) -> list[str]:
    tok, cfg = model.tokenizer, model.config
    buf = np.full((len(prompts), cfg.n_ctx), tok.pad_id, np.int32)
    lens = np.zeros(len(prompts), np.int64)
    for i, prompt in enumerate(prompts):
        ids = tok.encode(prompt, bos=True)
        buf[i, : len(ids)] = ids
        lens[i] = len(ids)
    start, done = lens.copy(), np.zeros(len(prompts), bool)
    step = jax.jit(lambda p, x: jnp.argmax(forward(p, x, cfg), axis=-1))
    while not done.all():
        # Right padding is invisible to earlier positions under causal attention.
        nxt = np.asarray(step(model.params, jnp.asarray(buf)))[np.arange(len(prompts)), lens - 1]
        for i in np.flatnonzero(~done):
            if nxt[i] == tok.eos_id:
                done[i] = True
            else:
                buf[i, lens[i]] = nxt[i]
                lens[i] += 1
                done[i] = lens[i] >= cfg.n_ctx
    return [tok.decode(buf[i, start[i] : lens[i]].tolist()) for i in range(len(prompts))]


def test_shipped_model_acceptance() -> None:
    model = load_pretrained()
    tok = model.tokenizer
    ids = jnp.asarray([tok.encode("Tomorrow she", bos=True)], jnp.int32)
    logits = forward(model.params, ids, model.config)[0, -1]
    distinct = {}
    for tau in (0.5, 1.0, 2.0):
        keys = jax.random.split(jax.random.key(1234), 100)
        draws = jax.vmap(lambda k, t=tau: jax.random.categorical(k, logits / t))(keys)
        distinct[tau] = len(set(np.asarray(draws).tolist()))
    assert 1 <= distinct[0.5] <= 3 and 5 <= distinct[1.0] <= 15 and distinct[2.0] >= 20, distinct
    prompts = heldout_prompts(generate_corpus(_manifest()["corpus_seed"]))
    completions = _greedy(model, prompts)
    ok = [check_completion(p, c).ok for p, c in zip(prompts, completions, strict=True)]
    assert np.mean(ok) >= 0.95, [
        (p, c) for p, c, good in zip(prompts, completions, ok, strict=True) if not good
    ]
