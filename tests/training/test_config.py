"""Tests of jaxsample.training's configuration, data order and parameter hashing."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsample.model.params import leaf_digests
from jaxsample.training import TrainConfig, params_sha256
from jaxsample.training.data import batch_indices


def test_train_config_validation_and_round_trip() -> None:
    config = TrainConfig.for_size("tiny", steps=50, seed=3)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert TrainConfig() == TrainConfig.for_size("small")
    with pytest.raises(ValueError, match=r"TrainConfig\.size"):
        TrainConfig(size="huge")
    with pytest.raises(ValueError, match=r"TrainConfig\.batch_size"):
        TrainConfig.for_size("tiny", batch_size=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig.for_size("tiny", steps=10, warmup_steps=10)
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.for_size("tiny", learning_rate=float("nan"))
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.for_size("tiny", lr=1.0)
    with pytest.raises(ValueError, match="missing keys"):
        TrainConfig.from_dict({"size": "tiny"})


def test_batches_are_a_pure_function_of_seed_and_step() -> None:
    n, b = 103, 10
    epoch0 = np.concatenate([batch_indices(n, b, 7, s) for s in range(10)])
    assert len(set(epoch0.tolist())) == 100  # one epoch: distinct rows, last 3 dropped
    assert np.array_equal(batch_indices(n, b, 7, 13), batch_indices(n, b, 7, 13))
    assert not np.array_equal(batch_indices(n, b, 7, 3), batch_indices(n, b, 8, 3))
    assert not np.array_equal(batch_indices(n, b, 7, 0), batch_indices(n, b, 7, 10))
    with pytest.raises(ValueError, match="batch_size"):
        batch_indices(5, 6, 0, 0)


def test_params_sha256_is_canonical() -> None:
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": [np.zeros(2, np.float32)]}
    b = {"b": [jnp.zeros(2, jnp.float32)], "w": jnp.arange(6, dtype=jnp.float32).reshape(2, 3)}
    assert params_sha256(a) == params_sha256(b)
    assert len(params_sha256(a)) == 64
    assert params_sha256(a) != params_sha256({**a, "w": a["w"].reshape(3, 2)})
    assert params_sha256(a) != params_sha256({**a, "w": a["w"].astype(np.float64)})
    assert params_sha256(a) != params_sha256({"v": a["w"], "b": a["b"]})
    flipped = a["w"].copy()
    flipped.view(np.uint32)[0, 0] ^= 1
    assert params_sha256(a) != params_sha256({**a, "w": flipped})
    assert set(leaf_digests(a)) == {"w", "b/0"}
