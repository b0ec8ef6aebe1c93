"""A replica knows the key of every live entry, so a lookup reads the store only for an
entry there is: a miss costs no round trip to Redis. Until a rebuild has completed (at
start, and after a reconnect that may have lost announcements) it reads every key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

from prometheus_client import CollectorRegistry

from trustgate_core.cache import CacheLookup, CacheStore, encode_vector
from trustgate_policy_cache.adapters.store import MemoryStore
from trustgate_policy_cache.domain.entries import Entry, Scope
from trustgate_policy_cache.services.cache import Indexed, PolicyCache
from trustgate_policy_cache.services.index import VectorIndex
from trustgate_policy_cache.services.metrics import CacheMetrics

GATEWAY, POLICY = uuid4(), uuid4()
WHERE: dict[str, Any] = {
    "gateway_id": GATEWAY,
    "policy_id": POLICY,
    "partition": "consumer-a",
    "filter_key": "f",
}


class CountingStore(MemoryStore):
    """The memory store, counting its reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: str) -> Entry | None:
        self.reads += 1
        return await super().get(key)


def _cache() -> tuple[PolicyCache, CountingStore]:
    store = CountingStore()
    metrics = CacheMetrics(CollectorRegistry(), lambda: 0)
    return PolicyCache(store, VectorIndex(), metrics), store


def _lookup(exact_key: str, vector: list[float] | None = None) -> CacheLookup:
    return CacheLookup(exact_key=exact_key, vector=_vector(vector), **WHERE)


def _stored(exact_key: str, vector: list[float] | None = None) -> CacheStore:
    entry = {"answer": exact_key}
    return CacheStore(
        exact_key=exact_key, vector=_vector(vector), ttl_seconds=60, entry=entry, **WHERE
    )


def _vector(values: list[float] | None) -> str | None:
    return encode_vector(values) if values is not None else None


async def test_once_rebuilt_a_miss_reads_nothing_and_a_stored_key_is_read() -> None:
    cache, store = _cache()
    await cache.rebuild()
    await cache.store_entry(_stored("k1"))
    await cache.store_entry(_stored("k2", [1.0, 0.0, 0.0]))
    for key in ("k3", "k4"):
        assert not (await cache.lookup(_lookup(key))).hit
    assert not (await cache.lookup(_lookup("k5", [0.0, 1.0, 0.0]))).hit  # nothing near
    assert store.reads == 0
    assert (await cache.lookup(_lookup("k1"))).entry == {"answer": "k1"}
    reply = await cache.lookup(_lookup("k6", [1.0, 0.01, 0.0]))
    assert reply.hit and not reply.exact and reply.entry == {"answer": "k2"}
    assert store.reads == 2


async def test_an_announced_key_is_known_and_a_purge_forgets_it() -> None:
    cache, store = _cache()
    await cache.rebuild()
    scope = Scope(str(GATEWAY), str(POLICY), "consumer-a", "f")
    entry = Entry(scope, "k1", None, expires_at=4e9, payload={"answer": "elsewhere"})
    await store.put(entry, 60)  # stored by another replica, which announced it
    cache.add_announced(Indexed(scope, "k1", None, 4e9))
    assert (await cache.lookup(_lookup("k1"))).entry == {"answer": "elsewhere"}
    cache.keys.purge(str(GATEWAY), str(POLICY))
    reads = store.reads
    assert not (await cache.lookup(_lookup("k1"))).hit
    assert store.reads == reads


async def test_before_a_rebuild_and_after_a_reconnect_every_key_is_read() -> None:
    cache, store = _cache()
    scope = Scope(str(GATEWAY), str(POLICY), "consumer-a", "f")
    unannounced = Entry(scope, "k1", None, expires_at=4e9, payload={"answer": "unheard"})
    await store.put(unannounced, 60)
    assert (await cache.lookup(_lookup("k1"))).hit  # not rebuilt yet: read anyway
    await cache.rebuild()
    assert cache.all_known
    late = Entry(scope, "k2", None, expires_at=4e9, payload={"answer": "missed"})
    await store.put(late, 60)  # stored while this replica was cut off from NATS
    assert not (await cache.lookup(_lookup("k2"))).hit
    cache.may_have_missed()  # reconnected: announcements may have been lost
    assert (await cache.lookup(_lookup("k2"))).hit
    await cache.rebuild()
    assert cache.all_known and cache.keys.live(scope, "k2", now=0.0)


class CutOffDuringScan(CountingStore):
    """A store whose first scan is interrupted by a reconnect to NATS, after which another
    replica stores an entry this one never hears of."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: PolicyCache | None = None
        self.scans = 0

    async def scan(self) -> AsyncIterator[Entry]:
        self.scans += 1
        async for entry in super().scan():
            yield entry
        if self.scans == 1 and self.cache is not None:
            self.cache.may_have_missed()
            scope = Scope(str(GATEWAY), str(POLICY), "consumer-a", "f")
            await self.put(Entry(scope, "late", None, 4e9, {"answer": "unheard"}), 60)


async def test_a_rebuild_that_may_have_missed_announcements_passes_again() -> None:
    store = CutOffDuringScan()
    cache = PolicyCache(store, VectorIndex(), CacheMetrics(CollectorRegistry(), lambda: 0))
    store.cache = cache
    await cache.rebuild()
    assert store.scans == 2 and cache.all_known
    assert (await cache.lookup(_lookup("late"))).entry == {"answer": "unheard"}
