"""The index's groups: a small scope is a matrix searched exactly, a large one an HNSW
index; either way the best live match comes first, expired ones are dropped, and a scope
that grows past ``FLAT_LIMIT`` keeps every entry it had."""

from __future__ import annotations

import numpy as np

from trustgate_core.cache import encode_vector
from trustgate_policy_cache.domain.entries import Scope
from trustgate_policy_cache.services.index import FLAT_LIMIT, VectorIndex

SCOPE = Scope("gw", "policy", "consumer-a", "f")
DIM = 32


def _vectors(count: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((count, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _near(row: np.ndarray) -> str:
    """A vector close to ``row`` (cosine about 0.99), not equal to it."""
    return encode_vector((row + 0.01 * np.ones(DIM, dtype=np.float32)).tolist())


def test_a_small_scope_finds_the_nearest_and_drops_what_expired() -> None:
    index = VectorIndex()
    rows = _vectors(3)
    for i, row in enumerate(rows):
        index.add(SCOPE, f"k{i}", encode_vector(row.tolist()), expires_at=100.0 + i)
    assert index.search(SCOPE, _near(rows[1]), 0.9, now=0.0)[0][0] == "k1"
    assert index.search(Scope("gw", "policy", "consumer-b", "f"), _near(rows[1]), 0.9, 0.0) == []
    assert index.search(SCOPE, _near(rows[1]), 0.9, now=101.5) == []  # k1 expired
    assert len(index) == 2
    index.add(SCOPE, "k0", encode_vector(rows[2].tolist()), expires_at=200.0)  # re-indexed
    assert index.search(SCOPE, _near(rows[2]), 0.9, now=0.0)[0][0] in {"k0", "k2"}
    assert index.search(SCOPE, _near(rows[0]), 0.99, now=0.0) == []
    index.discard(SCOPE, "k0")
    index.discard(SCOPE, "k2")
    assert len(index) == 0 and index.search(SCOPE, _near(rows[2]), 0.5, now=0.0) == []


def test_a_scope_that_outgrows_the_matrix_keeps_every_entry() -> None:
    index = VectorIndex()
    count = FLAT_LIMIT * 2
    rows = _vectors(count)
    for i, row in enumerate(rows):
        index.add(SCOPE, f"k{i}", encode_vector(row.tolist()), expires_at=1000.0)
    assert len(index) == count
    for i in (0, FLAT_LIMIT - 1, FLAT_LIMIT, count - 1):
        assert index.search(SCOPE, _near(rows[i]), 0.9, now=0.0)[0][0] == f"k{i}"
    index.discard(SCOPE, "k0")
    assert all(key != "k0" for key, _ in index.search(SCOPE, _near(rows[0]), 0.0, now=0.0))
    index.sweep(now=2000.0)
    assert len(index) == 0
