"""The cache's behaviour through its wire contract, one replica in this process (real
NATS, real Redis): exact and semantic tiers, hard filters, TTL, errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import uvicorn

from trustgate_core.cache import CacheLookup, CacheReply
from trustgate_core.embedded import free_port
from trustgate_core.events.subjects import CACHE_LOOKUP_SUBJECT
from trustgate_core.observability.metrics import render
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_policy_cache.main import server_config
from trustgate_policy_cache.settings import PolicyCacheSettings
from trustgate_testkit.fixtures import wait_for

from .conftest import CacheClient, PrivateRedis

# Cosine similarities to A: B ≈ 0.995, C ≈ 0.707, D = 0.
A = [1.0, 0.0, 0.0, 0.0]
B = [1.0, 0.1, 0.0, 0.0]
C = [1.0, 1.0, 0.0, 0.0]
D = [0.0, 0.0, 1.0, 0.0]


async def _running(env: dict[str, str]) -> PolicyCacheRuntime:
    runtime = PolicyCacheRuntime(PolicyCacheSettings(**env))  # type: ignore[arg-type]
    await runtime.start()
    await wait_for(lambda: runtime.loaded, timeout=10, message="the index never loaded")
    return runtime


@pytest.fixture
async def replica(redis_env: dict[str, str]) -> AsyncIterator[PolicyCacheRuntime]:
    runtime = await _running(redis_env)
    try:
        yield runtime
    finally:
        await runtime.stop()


async def test_store_then_exact_hit(replica: PolicyCacheRuntime, client: CacheClient) -> None:
    assert (await client.store("k1", A, answer="hello")) == {"stored": True}
    reply = await client.lookup("k1")
    assert reply.hit and reply.exact and reply.similarity == 1.0
    assert reply.entry == {"answer": "hello"}
    assert not (await client.lookup("k2")).hit


async def test_semantic_hit_above_threshold_miss_below(
    replica: PolicyCacheRuntime, client: CacheClient
) -> None:
    await client.store("k1", A, answer="hello")
    near = await client.lookup("other", B, threshold=0.95)
    assert near.hit and not near.exact and near.entry == {"answer": "hello"}
    assert near.similarity is not None and 0.95 <= near.similarity < 1.0
    assert not (await client.lookup("other", C, threshold=0.95)).hit
    assert (await client.lookup("other", C, threshold=0.7)).hit
    assert not (await client.lookup("other", D, threshold=0.1)).hit


async def test_filter_key_is_a_hard_filter(
    replica: PolicyCacheRuntime, client: CacheClient
) -> None:
    await client.store("k1", A, filter_key="temperature=0")
    assert not (await client.lookup("other", A, filter_key="temperature=1")).hit
    assert (await client.lookup("other", A, filter_key="temperature=0")).hit


async def test_partitions_gateways_and_policies_never_cross(
    replica: PolicyCacheRuntime, client: CacheClient
) -> None:
    await client.store("k1", A, partition="consumer-a")
    assert not (await client.lookup("k1", A, partition="consumer-b")).hit
    other = CacheClient(client.nc)
    assert not (await other.lookup("k1", A, policy_id=client.policy_id)).hit
    assert not (await other.lookup("k1", A, gateway_id=client.gateway_id)).hit
    assert (await client.lookup("k1", A, partition="consumer-a")).hit


async def test_entry_expires_at_its_ttl(replica: PolicyCacheRuntime, client: CacheClient) -> None:
    stored_at = time.monotonic()
    await client.store("k1", A, ttl=1)
    assert (await client.lookup("k1")).hit

    async def gone() -> bool:
        exact, semantic = await client.lookup("k1"), await client.lookup("x", A)
        return not exact.hit and not semantic.hit

    await wait_for(gone, timeout=3, message="the entry outlived its TTL")
    assert 0.9 <= time.monotonic() - stored_at <= 1.6


async def test_memory_store_without_redis(bus_env: dict[str, str], client: CacheClient) -> None:
    runtime = await _running(bus_env)
    try:
        await client.store("k1", A, ttl=1)
        assert (await client.lookup("x", B)).hit

        async def gone() -> bool:
            return not (await client.lookup("k1")).hit and not (await client.lookup("x", B)).hit

        await wait_for(gone, timeout=3, message="the memory entry outlived its TTL")
    finally:
        await runtime.stop()


async def test_redis_down_answers_an_error_without_hanging(
    bus_env: dict[str, str], client: CacheClient
) -> None:
    env = {**bus_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    runtime = PolicyCacheRuntime(PolicyCacheSettings(**env))  # type: ignore[arg-type]
    await runtime.start()
    try:
        await wait_for(lambda: runtime.nc.is_connected, timeout=10)
        started = time.monotonic()
        reply = await wait_for(lambda: _lookup_or_none(client), timeout=5)
        assert not reply.hit and reply.error
        assert time.monotonic() - started < 1.0
        assert (await client.store("k1", A))["stored"] is False
        assert not runtime.loaded
    finally:
        await runtime.stop()


async def test_redis_going_down_answers_errors_fast_and_serves_what_it_read(
    private_env: dict[str, str], private_redis: PrivateRedis, client: CacheClient
) -> None:
    """An entry stored but never read here must come from Redis: an error, fast. One this
    replica has read is kept in its memory and still served."""
    runtime = await _running(private_env)
    try:
        await client.store("k1", A)
        await client.store("k0", answer="read before")
        assert (await client.lookup("k0")).hit
        private_redis.stop()
        for vector in (None, B):
            started = time.monotonic()
            reply = await client.lookup("k1", vector)
            assert not reply.hit and reply.error
            assert time.monotonic() - started < 0.5
        reply = await client.lookup("k0")
        assert reply.hit and reply.entry == {"answer": "read before"}
        assert (await client.store("k2", A))["stored"] is False
        metrics = render(runtime.registry)[0].decode()
        assert 'trustgate_policy_cache_lookups_total{result="error"} 2.0' in metrics
    finally:
        await runtime.stop()


async def _lookup_or_none(client: CacheClient) -> object:
    try:
        return await client.lookup("k1", A, wait=0.2)
    except Exception:
        return None  # not subscribed yet


async def test_health_readiness_and_metrics(redis_env: dict[str, str], client: CacheClient) -> None:
    port = free_port()
    env = {**redis_env, "SERVER_POLICY_CACHE_PORT": str(port)}
    settings = PolicyCacheSettings(**env)  # type: ignore[arg-type]
    runtime = await _running(env)
    server = uvicorn.Server(server_config(runtime, settings))
    task = asyncio.create_task(server.serve())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            await wait_for(lambda: _status(http, "/readyz"), timeout=5)
            await client.store("k1", A)
            await client.lookup("k1")
            await client.lookup("nope")
            await client.lookup("x", B)
            text = (await http.get("/metrics")).text
        assert 'trustgate_policy_cache_lookups_total{result="hit_exact"} 1.0' in text
        assert 'trustgate_policy_cache_lookups_total{result="hit_semantic"} 1.0' in text
        assert 'trustgate_policy_cache_lookups_total{result="miss"} 1.0' in text
        assert "trustgate_policy_cache_stores_total 1.0" in text
        assert "trustgate_policy_cache_entries" in text
    finally:
        server.should_exit = True
        await task
        await runtime.stop()


async def _status(http: httpx.AsyncClient, path: str) -> bool:
    try:
        return (await http.get(path)).status_code == 200
    except httpx.TransportError:
        return False


async def test_a_bad_vector_is_answered_not_dropped(
    replica: PolicyCacheRuntime, client: CacheClient
) -> None:
    await client.store("k1", A)
    lookup = CacheLookup(
        gateway_id=client.gateway_id,
        policy_id=client.policy_id,
        partition="consumer-a",
        exact_key="other",
        filter_key="f",
        vector="not base64!",
    )
    raw = await client.nc.request(CACHE_LOOKUP_SUBJECT, lookup.model_dump_json().encode(), 2)
    reply = CacheReply.model_validate_json(raw.data)
    assert not reply.hit and reply.error
    garbage = await client.nc.request(CACHE_LOOKUP_SUBJECT, b"{not json", 2)
    assert CacheReply.model_validate_json(garbage.data).error


async def test_an_entry_stored_before_entries_held_their_expiry_is_served_until_its_ttl(
    redis_env: dict[str, str], client: CacheClient
) -> None:
    """Entries now hold their expiry, so a lookup reads them with one GET; one written by
    an earlier version (the expiry in Redis's TTL alone) is still served, and still
    expires with its TTL, also once a replica rebuilt its keys from Redis."""
    from redis.asyncio import Redis

    from trustgate_policy_cache.domain.entries import entry_key

    key = entry_key(str(client.gateway_id), str(client.policy_id), "consumer-a", "old")
    value = {"g": str(client.gateway_id), "p": str(client.policy_id), "pt": "consumer-a"}
    value |= {"f": "f", "x": "old", "v": None, "e": {"answer": "from before"}}
    async with Redis.from_url(redis_env["REDIS_URL"]) as redis:
        await redis.set(key, orjson.dumps(value), px=1500)
    runtime = await _running(redis_env)
    try:
        reply = await client.lookup("old")
        assert reply.hit and reply.entry == {"answer": "from before"}

        async def gone() -> bool:
            return not (await client.lookup("old")).hit

        await wait_for(gone, timeout=4, message="the old entry outlived its TTL")
    finally:
        await runtime.stop()
