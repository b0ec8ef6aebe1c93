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


async def test_a_semantic_hit_in_a_large_scope_holds_the_threshold_on_the_exact_similarity() -> (
    None
):
    """A large scope's HNSW index keeps half floats: its similarities move by about 0.001.
    The lookup decides on the exact similarity of the stored vector, so a request just
    under the threshold never hits, one just over it does, and the similarity reported is
    the exact one."""
    from uuid import uuid4

    from prometheus_client import CollectorRegistry

    from trustgate_core.cache import CacheLookup, CacheStore
    from trustgate_policy_cache.adapters.store import MemoryStore
    from trustgate_policy_cache.services.cache import PolicyCache
    from trustgate_policy_cache.services.metrics import CacheMetrics

    index = VectorIndex()
    cache = PolicyCache(MemoryStore(), index, CacheMetrics(CollectorRegistry(), lambda: 0))
    gateway, policy = uuid4(), uuid4()
    rows = _vectors(FLAT_LIMIT + 64)  # an HNSW group
    for i, row in enumerate(rows):
        stored = CacheStore(
            gateway_id=gateway,
            policy_id=policy,
            partition="consumer-a",
            exact_key=f"k{i}",
            filter_key="f",
            vector=encode_vector(row.tolist()),
            ttl_seconds=600,
            entry={"answer": i},
        )
        await cache.store_entry(stored)
    target = rows[5]
    other = rows[6] - float(np.dot(rows[6], target)) * target  # orthogonal to the target
    other /= np.linalg.norm(other)
    threshold = 0.9

    def at(cosine: float) -> str:
        """A unit vector whose exact cosine with the target is ``cosine``."""
        vector = cosine * target + float(np.sqrt(1 - cosine**2)) * other
        return encode_vector(vector.tolist())

    def lookup(vector: str) -> CacheLookup:
        return CacheLookup(
            gateway_id=gateway,
            policy_id=policy,
            partition="consumer-a",
            exact_key="not-stored",
            filter_key="f",
            vector=vector,
            threshold=threshold,
        )

    below = await cache.lookup(lookup(at(threshold - 0.001)))
    assert not below.hit
    above = await cache.lookup(lookup(at(threshold + 0.001)))
    assert above.hit and above.entry == {"answer": 5}
    assert above.similarity is not None and abs(above.similarity - (threshold + 0.001)) < 1e-5
