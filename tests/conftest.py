"""Shared test fixtures."""

from __future__ import annotations

import jax
import pytest


@pytest.fixture
def key() -> jax.Array:
    return jax.random.key(20261122)
