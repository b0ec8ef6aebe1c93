"""``DELETE /v1/gateways/{gw}/policies/{id}/cache`` on the real admin: a purge that
reaches the policy-cache, and the admin's usual scoping (write scope, tenant, plugin)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_policy_cache.settings import PolicyCacheSettings
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import DatabaseFactory, NatsServer, wait_for

from .conftest import CacheClient

A = [1.0, 0.0, 0.0, 0.0]


@pytest.fixture
async def admin(database_factory: DatabaseFactory, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_cache_purge")
    async with running_admin(admin_settings(dsn, bus.url)) as running:
        yield running


async def _created(api: httpx.AsyncClient, url: str, body: dict[str, object]) -> str:
    r = await api.post(url, json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_the_admin_purges_a_semantic_cache_policy_on_the_cache(
    admin: RunningAdmin, redis_env: dict[str, str], client: CacheClient
) -> None:
    runtime = PolicyCacheRuntime(PolicyCacheSettings(**redis_env))  # type: ignore[arg-type]
    await runtime.start()
    secret = admin.settings.server_secret_key
    tenant = f"t-{uuid.uuid4().hex[:8]}"
    try:
        await wait_for(lambda: runtime.loaded, timeout=10)
        async with (
            admin.client() as api,
            admin.client(mint_admin_token(secret, tenant_id=tenant, read_only=True)) as reader,
            admin.client(mint_admin_token(secret, tenant_id=f"other-{tenant}")) as stranger,
            admin.client(mint_admin_token(secret, tenant_id=tenant)) as owner,
        ):
            gateway = await _created(owner, "/v1/gateways", {"slug": f"gw-{uuid.uuid4().hex[:10]}"})
            policies = f"/v1/gateways/{gateway}/policies"
            cache = await _created(owner, policies, {"name": "c", "slug": "semantic_cache"})
            limiter = await _created(
                owner,
                policies,
                {"name": "r", "slug": "model_allowlist", "settings": {"allowed_models": ["x"]}},
            )
            client.gateway_id, client.policy_id = uuid.UUID(gateway), uuid.UUID(cache)
            await client.store("k1", A, partition="consumer-a")
            await client.store("k2", A, partition="global")
            assert (await client.lookup("k1", partition="consumer-a")).hit

            assert (await reader.delete(f"{policies}/{cache}/cache")).status_code == 403
            assert (await stranger.delete(f"{policies}/{cache}/cache")).status_code == 404
            assert (await owner.delete(f"{policies}/{limiter}/cache")).status_code == 404
            assert (await owner.delete(f"{policies}/{uuid.uuid4()}/cache")).status_code == 404
            assert (await owner.delete(f"{policies}/not-a-uuid/cache")).status_code == 400
            assert (await client.lookup("k1", partition="consumer-a")).hit

            r = await api.delete(f"{policies}/{cache}/cache")
            assert r.status_code == 202, r.text

            async def purged() -> bool:
                first = await client.lookup("k1", A, partition="consumer-a")
                second = await client.lookup("k2", A, partition="global")
                return not first.hit and not second.hit

            await wait_for(purged, timeout=5, message="the purge never reached the cache")
            audit = (await api.get("/v1/audit", params={"entity_id": cache})).json()["items"]
            newest = audit[0]  # newest first
            assert (newest["kind"], newest["operation"]) == ("policy_cache", "delete")
    finally:
        await runtime.stop()
