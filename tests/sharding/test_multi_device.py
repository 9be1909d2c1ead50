"""Sharded sampling and decoding on 8 simulated CPU devices equal the one-device results.

Each test starts one subprocess (the device count is fixed when JAX starts) that
makes all of its checks and reports them as JSON.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.sharding.devices import run_on_devices

SAMPLER_CHECKS = """
import jax, jax.numpy as jnp, numpy as np
import jaxsample as js
from jaxsample import sharding

V, B = 1000, 6  # V is padded to 1024; B = 6 rows on 8 batch shards is padded too
assert sharding.padded_vocab(V) == 1024
x = jax.random.normal(jax.random.key(0), (B, V)) * 3
x = x.at[1, :500].set(-jnp.inf)                      # half the row removed
x = x.at[2].set(-jnp.inf)                            # no usable logit: uniform over V
x = x.at[3, jnp.argmax(x[3])].set(jnp.nan)           # NaN at the argmax
x = x.at[4, 997].set(9.0).at[4, 998].set(9.0)        # a tie near the end of the row
x = x.at[0, 700].set(jnp.inf)                        # +inf on one shard: drawn always
taus = jnp.array([0.3, 0.7, 1.0, 1.3, 2.0, 0.0])
strategies = {
    "greedy": js.Greedy(),
    "temperature": js.Temperature(taus),
    "top_k": js.TopK(40, tau=0.8),
    "top_p": js.TopP(0.9, tau=0.7),
    "chain": js.chain(js.Temperature(1.2), js.TopK(100), js.TopP(0.8)),
    # The nucleus at another scale than the draw: two kinds of weights per pass.
    "top_p_then_temperature": js.chain(js.TopP(0.85), js.Temperature(1.4)),
}
key = jax.random.key(11)
row_keys = jax.random.split(jax.random.key(12), B)
out = {"tokens": {}, "max_id": 0}
for shape in [(1, 8), (2, 4), (8, 1)]:
    mesh = jax.make_mesh(shape, ("dp", "tp"))
    name = f"{shape[0]}x{shape[1]}"
    for sname, s in strategies.items():
        got = sharding.sample(key, x, s, mesh=mesh)
        want = js.sample(key, x, s)
        out["tokens"][f"{name} {sname}"] = [np.asarray(got).tolist(), np.asarray(want).tolist()]
        out["max_id"] = max(out["max_id"], int(np.asarray(got).max()))

# Per-row keys, probs and valid_rows on the 2 x 4 mesh.
mesh = jax.make_mesh((2, 4), ("dp", "tp"))
got = sharding.sample(row_keys, x, strategies["top_p"], mesh=mesh)
want = js.sample(row_keys, x, strategies["top_p"])
out["tokens"]["2x4 top_p row keys"] = [np.asarray(got).tolist(), np.asarray(want).tolist()]
q = np.asarray(sharding.probs(x, strategies["chain"], mesh=mesh))
out["probs"] = float(np.abs(q - np.asarray(js.probs(x, strategies["chain"]))).max())
ok = sharding.valid_rows(x, mesh=mesh)
out["valid"] = [np.asarray(ok).tolist(), np.asarray(js.valid_rows(x)).tolist()]

# Three vocabulary shards do not divide 16: refused with a message.
mesh3 = jax.make_mesh((1, 3), ("dp", "tp"), devices=jax.devices()[:3])
try:
    sharding.sample(key, x, js.Greedy(), mesh=mesh3)
    out["ragged"] = None
except ValueError as err:
    out["ragged"] = str(err)
# Logits that already lie on the mesh as the wrapper wants them.
xs = jax.device_put(sharding.pad_vocab(x[:4]), jax.NamedSharding(mesh, jax.P("dp", "tp")))
got = sharding.sample(key, xs, strategies["chain"], mesh=mesh)
want = js.sample(key, x[:4], strategies["chain"])
out["presharded"] = [np.asarray(got).tolist(), np.asarray(want).tolist()]
report(out)
"""


@pytest.fixture(scope="module")
def sampler_checks() -> dict[str, Any]:
    result: dict[str, Any] = run_on_devices(SAMPLER_CHECKS, devices=8)
    return result


def test_sharded_tokens_equal_unsharded_for_every_strategy(
    sampler_checks: dict[str, Any],
) -> None:
    tokens = sampler_checks["tokens"]
    assert len(tokens) == 3 * 6 + 1  # three meshes, six strategies, one per-row-key case
    differ = {case: pair for case, pair in tokens.items() if pair[0] != pair[1]}
    assert not differ, differ
    assert sampler_checks["presharded"][0] == sampler_checks["presharded"][1]
    # Row 0 holds one +inf (on one vocabulary shard): every strategy draws it.
    assert all(pair[0][0] == 700 for pair in tokens.values())
    assert sampler_checks["presharded"][0][0] == 700


def test_padding_is_never_drawn(sampler_checks: dict[str, Any]) -> None:
    # Row 2 has no usable logit: the unsharded sampler draws it uniformly over V,
    # and so must the sharded one (over V = 1000, not the 1024 padded columns).
    assert sampler_checks["max_id"] < 1000


def test_sharded_probs_and_valid_rows(sampler_checks: dict[str, Any]) -> None:
    assert sampler_checks["probs"] < 1e-6
    got, want = sampler_checks["valid"]
    assert got == want == [True, True, False, False, True, True]


def test_ragged_shard_count_is_refused(sampler_checks: dict[str, Any]) -> None:
    message = sampler_checks["ragged"]
    assert message is not None and "divide 16" in message and "3 devices" in message


DECODE_CHECKS = """
import jax, jax.numpy as jnp, numpy as np
import jaxsample as js
from jaxsample.decoding import make_strategy, seed_key
from jaxsample.decoding.sweep import run_sweep, sweep_mesh
from jaxsample.model import load_pretrained

m = load_pretrained()
tok = m.tokenizer
prompts = [tok.encode(p, bos=True) for p in ["Tomorrow she", "the dog", ""]] * 4  # 12 rows
kw = dict(max_new_tokens=6, eos_id=tok.eos_id, pad_id=tok.pad_id, bos_id=tok.bos_id)
key = jax.random.key(3)
strategy = js.TopP(0.9, tau=jnp.linspace(0.5, 1.5, 12))
ref = js.generate_ids(m.params, m.config, prompts, key, strategy, **kw)
out = {"generate": {}}
for shape, names, axis in [((8,), ("dp",), "dp"), ((2, 4), ("a", "b"), ("a", "b"))]:
    mesh = jax.make_mesh(shape, names)
    g = js.generate_ids(
        m.params, m.config, prompts, key, strategy, mesh=mesh, batch_axis=axis, **kw
    )
    out["generate"][str(shape)] = {
        f: bool(np.array_equal(np.asarray(getattr(g, f)), np.asarray(getattr(ref, f))))
        for f in ("tokens", "lengths", "finished")
    }
try:
    js.generate_ids(m.params, m.config, prompts, key, strategy, mesh=mesh, batch_axis="x", **kw)
    out["bad_axis"] = None
except ValueError as err:
    out["bad_axis"] = str(err)

sweep_prompts = [tok.encode(p, bos=True) for p in ["Tomorrow she", "the dog"]]
taus = [0.0, 0.5, 1.0, 1.5]
args = (m.params, m.config, sweep_prompts, taus, 5)
g8 = run_sweep(*args, **kw, top_k=50)
g1 = run_sweep(*args, **kw, top_k=50, mesh=sweep_mesh(4, jax.devices()[:1]))
out["sweep_mesh"] = dict(sweep_mesh(4).shape)
out["sweep_same"] = {
    f: bool(np.array_equal(getattr(g8, f), getattr(g1, f)))
    for f in ("tokens", "lengths", "finished")
}
out["sweep_float_gap"] = max(
    float(np.abs(g8.entropy - g1.entropy).max()), float(np.abs(g8.surprisal - g1.surprisal).max())
)
cells = []
for t, tau in [(1, 0.5), (3, 1.5)]:
    for s in (0, 4):
        for p in range(2):
            alone = js.generate_ids(
                m.params, m.config, [sweep_prompts[p]], seed_key(s), make_strategy(tau, 50), **kw
            )
            cells.append(bool(np.array_equal(np.asarray(alone.tokens[0]), g8.tokens[t, s, p])))
out["cells"] = cells
report(out)
"""


def test_batch_sharded_decoding_and_sweep_equal_one_device() -> None:
    out = run_on_devices(DECODE_CHECKS, devices=8)
    for shape, same in out["generate"].items():
        assert same["tokens"] and same["lengths"] and same["finished"], shape
    assert out["bad_axis"] is not None and "batch_axis" in out["bad_axis"]
    assert out["sweep_mesh"] == {"tau": 4, "seed": 2}
    assert all(out["sweep_same"].values()), out["sweep_same"]
    # Entropy and surprisal come from logits whose float32 rounding depends on the
    # per-device batch size; the tokens above do not.
    assert out["sweep_float_gap"] < 1e-4
    assert len(out["cells"]) == 8 and all(out["cells"])
