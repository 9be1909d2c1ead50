"""Large batches drawn in blocks of rows on a CPU: the same tokens as one piece.

The blocks are a cost decision only (see ``row_block``): every strategy the
built-in route draws, with per-row parameters, bad rows and a last block that
overlaps the one before, must give the tokens of the whole batch drawn at once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxsample as js
from jaxsample.samplers import _sampling
from jaxsample.samplers._layout import Layout, whole

ROWS, VOCAB = 10, 300
STRATEGIES = {
    "greedy": js.Greedy(),
    "top-k per row": js.TopK(jnp.array([1, 5, 0, 64, 7, 2, 9, 40, 3, 6]), tau=0.9, k_max=64),
    "top-p per row": js.TopP(jnp.linspace(0.3, 1.0, ROWS), tau=jnp.linspace(0.0, 2.0, ROWS)),
    "chain": js.chain(js.Temperature(1.2), js.TopK(20), js.TopP(0.7)),
    "two nuclei and greedy": js.chain(js.TopP(0.9), js.Greedy(), js.TopP(0.8)),
}


def _logits(vocab: int = VOCAB) -> jax.Array:
    z = jax.random.normal(jax.random.key(4), (ROWS, vocab)) * 2.5
    # A NaN, a row holding +inf and a row with no usable logit.
    return z.at[3, 5].set(jnp.nan).at[6, [7, 9]].set(jnp.inf).at[4].set(-jnp.inf)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_blocks_draw_the_tokens_of_one_piece(name: str) -> None:
    z, key, s = _logits(), jax.random.key(8), STRATEGIES[name]
    # Blocks of 3 rows start at 0, 3, 6 and 7: the last overlaps the one before.
    blocked = _sampling._sample(key, z, s, whole(VOCAB), block=3)
    np.testing.assert_array_equal(blocked, _sampling._sample(key, z, s, whole(VOCAB)))


def test_blocks_with_leading_axes_bf16_and_broadcast_parameters() -> None:
    z = _logits().astype(jnp.bfloat16).reshape(2, 5, VOCAB)
    s = js.TopP(jnp.array([[0.5], [0.95]]), tau=0.8)
    key = jax.random.key(9)
    blocked = _sampling._sample(key, z, s, whole(VOCAB), block=4)
    assert blocked.shape == (2, 5)
    np.testing.assert_array_equal(blocked, _sampling._sample(key, z, s, whole(VOCAB)))


def test_row_block_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_sampling, "_one_cpu", lambda: True)
    budget = _sampling.CPU_BLOCK_BYTES

    def size(n: int, vocab: int) -> int:
        return _sampling.row_block(n, vocab, whole(vocab))

    # Up to twice the budget, the rows are drawn at once.
    assert size(32, 50257) == 32 and size(32, 128256) == 32 and size(1, 4_000_000) == 1
    for n, vocab in [(256, 50257), (256, 128256), (100, 262144), (33, 128256), (5, 4_000_000)]:
        b = size(n, vocab)
        assert 1 <= b < n and (4 * b * vocab <= budget or b == 1), (n, vocab, b)
        blocks = -(-n // b)
        assert blocks * b - n < blocks, (n, vocab, b)  # blocks of equal size, little overlap
    assert size(256, 50257) == 37 and size(256, 128256) == 16
    # A sharded vocabulary, or programs for other devices: always at once.
    assert _sampling.row_block(256, 16032, Layout(128256, 16032, "tp", 8)) == 256
    monkeypatch.setattr(_sampling, "_one_cpu", lambda: False)
    assert size(256, 50257) == 256


def test_sample_draws_in_blocks_on_one_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # A budget of 3 rows makes a small batch take the blocked route by default
    # (a width used by no other test, so the program is traced afresh).
    vocab = VOCAB + 1
    monkeypatch.setattr(_sampling, "_one_cpu", lambda: True)
    monkeypatch.setattr(_sampling, "CPU_BLOCK_BYTES", 3 * 4 * vocab)
    assert _sampling.row_block(ROWS, vocab, whole(vocab)) == 3
    z, key = _logits(vocab), jax.random.key(10)
    s = js.chain(js.Temperature(0.9), js.TopK(30), js.TopP(0.9))
    drawn = js.sample(key, z, s)

    def loops(**kw: int) -> int:
        jaxpr = jax.make_jaxpr(lambda k, x: _sampling._sample(k, x, s, whole(vocab), **kw))(key, z)
        return sum(str(jaxpr).count(loop) for loop in ("while[", "scan["))

    assert loops() == loops(block=ROWS) + 1  # the default route is the loop over blocks
    at_once = _sampling._sample(key, z, s, whole(vocab), block=ROWS)
    np.testing.assert_array_equal(drawn, at_once)
    # The same tokens row by row (a row's token never depends on its batch).
    for r in (0, 4, 9):
        assert int(js.sample(jax.random.fold_in(key, r), z[r], s)) == int(drawn[r])
