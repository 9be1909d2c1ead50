"""How many input buffers the sampler table rotates: enough to leave the cache."""

from __future__ import annotations

import jax
import pytest

from benchmarks.machine import last_level_cache_bytes
from benchmarks.suites import (
    DEFAULT_CACHE_BYTES,
    MAX_BUFFERS,
    rotated_buffers,
    rotation_cache_bytes,
)


@pytest.mark.parametrize(
    ("batch", "vocab", "least", "cache", "want"),
    [
        (32, 50257, 4, 32 << 20, 11),  # 11 x 6.43 MB = 70.8 MB >= 2 x 32 MiB > 10 x 6.43 MB
        (256, 50257, 4, 32 << 20, 4),  # one buffer (51 MB) nearly holds the cache: the least
        (32, 128256, 4, 32 << 20, 5),
        (4, 1000, 2, 32 << 20, MAX_BUFFERS),  # tiny rows: capped
        (32, 50257, 4, 0, 4),  # no cache to leave: the least
        (32, 50257, 4, DEFAULT_CACHE_BYTES, MAX_BUFFERS),  # 64 MiB: 21 buffers, capped
    ],
)
def test_buffers_hold_twice_the_cache(
    batch: int, vocab: int, least: int, cache: int, want: int
) -> None:
    got = rotated_buffers(batch, vocab, least, cache)
    assert got == want
    size = 4 * batch * vocab
    if least < got < MAX_BUFFERS:  # the fewest that hold twice the cache
        assert got * size >= 2 * cache > (got - 1) * size


def test_cache_size_is_read_or_unknown() -> None:
    size = last_level_cache_bytes()
    assert size is None or size >= 1 << 10
    # On the CPU backend the rotation exceeds the CPU's last level when known.
    if jax.default_backend() == "cpu":
        assert rotation_cache_bytes() == (DEFAULT_CACHE_BYTES if size is None else size)
    else:
        assert rotation_cache_bytes() == DEFAULT_CACHE_BYTES
