"""The entries a replica read last are kept in its memory: a repeated hit costs no round
trip to Redis. They leave at their expiry, on a purge, when the replica stores the key
again, past the memory bound (least recently read first), and all at once on ``forget``
(a reconnect: a purge may have been missed)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from trustgate_policy_cache.adapters import store as store_module
from trustgate_policy_cache.adapters.store import RedisStore
from trustgate_policy_cache.domain.entries import Entry, Scope
from trustgate_testkit.fixtures import wait_for

from .conftest import PrivateRedis

SCOPE = Scope("gw", "policy", "consumer-a", "f")


def _entry(exact_key: str, answer: str, ttl: float = 60.0) -> Entry:
    return Entry(SCOPE, exact_key, None, time.time() + ttl, {"answer": answer})


@pytest.fixture
async def store(private_redis: PrivateRedis) -> AsyncIterator[RedisStore]:
    store = RedisStore(private_redis.url, 1.0)
    try:
        yield store
    finally:
        await store.close()


async def _gets(url: str) -> int:
    """How many GETs the Redis has answered."""
    async with Redis.from_url(url) as redis:
        stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_get", {}).get("calls", 0))


async def test_a_repeated_read_goes_to_redis_once_and_a_new_store_is_read_again(
    store: RedisStore, private_redis: PrivateRedis
) -> None:
    first = _entry("k1", "first")
    await store.put(first, 60)
    for _ in range(5):
        got = await store.get(first.key)
        assert got is not None and got.payload == {"answer": "first"}
    assert await _gets(private_redis.url) == 1
    await store.put(_entry("k1", "second"), 60)  # stored again by this replica
    got = await store.get(first.key)
    assert got is not None and got.payload == {"answer": "second"}
    assert await _gets(private_redis.url) == 2


async def test_an_entry_read_before_expires_purges_and_forget_drop_it(
    store: RedisStore, private_redis: PrivateRedis
) -> None:
    short = _entry("short", "short", ttl=0.3)
    await store.put(short, 1)  # Redis keeps it a second, its own expiry says 0.3 s
    assert await store.get(short.key) is not None
    started = time.monotonic()

    async def gone() -> bool:
        return await store.get(short.key) is None

    await wait_for(gone, timeout=2, message="the entry outlived its own expiry")
    assert time.monotonic() - started < 0.6  # at its own expiry, not Redis's later one
    kept = _entry("kept", "kept")
    await store.put(kept, 60)
    assert await store.get(kept.key) is not None
    await store.purge("tg:cache:gw:policy:")
    assert await store.get(kept.key) is None
    await store.put(kept, 60)
    assert await store.get(kept.key) is not None
    async with Redis.from_url(private_redis.url) as redis:
        await redis.delete(kept.key)  # purged while this replica was cut off
    assert await store.get(kept.key) is not None  # still held here ...
    store.forget()  # ... until the reconnect drops what it holds
    assert await store.get(kept.key) is None


async def test_the_memory_is_bounded_least_recently_read_out_first(
    store: RedisStore, private_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = len(_entry("k0", "x" * 1000).dump())
    monkeypatch.setattr(store_module, "HOT_BYTES", size * 7 // 2)  # room for three
    monkeypatch.setattr(store_module, "HOT_ENTRY_BYTES", size * 2)
    entries = [_entry(f"k{i}", "x" * 1000) for i in range(4)]
    for entry in entries:
        await store.put(entry, 60)
        assert await store.get(entry.key) is not None  # k0 leaves when k3 comes
    reads = await _gets(private_redis.url)
    for entry in entries[1:]:
        assert await store.get(entry.key) is not None
    assert await _gets(private_redis.url) == reads
    assert await store.get(entries[0].key) is not None
    assert await _gets(private_redis.url) == reads + 1
    large = _entry("large", "x" * (size * 3))
    await store.put(large, 60)
    for _ in range(2):
        assert await store.get(large.key) is not None
    assert await _gets(private_redis.url) == reads + 3  # too large to keep: read each time
