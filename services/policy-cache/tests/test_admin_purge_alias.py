"""A ``semantic_cache`` policy created under the plugin's alias slug (``semanticcache``)
is purged like one created under its id: the admin route knows the plugin by either."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_policy_cache.settings import PolicyCacheSettings
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import DatabaseFactory, NatsServer, wait_for

from .conftest import CacheClient

A = [1.0, 0.0, 0.0, 0.0]


@pytest.fixture
async def admin(database_factory: DatabaseFactory, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_cache_purge_alias")
    async with running_admin(admin_settings(dsn, bus.url)) as running:
        yield running


async def test_a_policy_created_with_the_alias_slug_is_purged(
    admin: RunningAdmin, redis_env: dict[str, str], client: CacheClient
) -> None:
    runtime = PolicyCacheRuntime(PolicyCacheSettings(**redis_env))  # type: ignore[arg-type]
    await runtime.start()
    try:
        await wait_for(lambda: runtime.loaded, timeout=10)
        async with admin.client() as api:
            r = await api.post("/v1/gateways", json={"slug": f"gw-{uuid.uuid4().hex[:10]}"})
            assert r.status_code == 201, r.text
            gateway = r.json()["id"]
            policies = f"/v1/gateways/{gateway}/policies"
            r = await api.post(policies, json={"name": "c", "slug": "semanticcache"})
            assert r.status_code == 201, r.text
            cache = r.json()["id"]
            client.gateway_id, client.policy_id = uuid.UUID(gateway), uuid.UUID(cache)
            await client.store("k1", A)
            assert (await client.lookup("k1")).hit

            r = await api.delete(f"{policies}/{cache}/cache")
            assert r.status_code == 202, r.text

            async def purged() -> bool:
                return not (await client.lookup("k1", A)).hit

            await wait_for(purged, timeout=5, message="the purge never reached the cache")
    finally:
        await runtime.stop()
