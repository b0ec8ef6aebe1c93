"""Config changes arrive as events and take effect on a running proxy at once."""

from __future__ import annotations

import time
from typing import Any

import httpx

from trustgate_core.models import RegistryBinding
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.server import run_proxy, until_known

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


async def call(proxy: Any, tenant: Any, consumer: str, key: str | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.post(
            f"{proxy.base_url(tenant.consumers[consumer])}/chat/completions",
            json=BODY,
            headers={
                "X-AG-Gateway-Slug": tenant.slug,
                "X-AG-API-Key": key if key is not None else tenant.keys[consumer],
            },
        )


async def status_within_one_second(proxy: Any, tenant: Any, consumer: str, want: int) -> float:
    started = time.monotonic()

    async def reached() -> bool:
        return (await call(proxy, tenant, consumer)).status_code == want

    await wait_for(reached, timeout=1.0, interval=0.01, message=f"no {want} within 1 s")
    return time.monotonic() - started


async def ready_tenant(tenant: Any, upstream: Any, proxy: Any) -> Any:
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    assert (await call(proxy, tenant, "app")).status_code == 200
    return tenant


async def test_revoked_key_is_rejected_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.delete_auth("app")
    await status_within_one_second(proxy, tenant, "app", 401)


async def test_disabled_key_is_rejected_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.put_auth("app", enabled=False)
    await status_within_one_second(proxy, tenant, "app", 401)


async def test_disabled_gateway_stops_serving_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.put_gateway(status="disabled")
    await status_within_one_second(proxy, tenant, "app", 403)
    await tenant.put_gateway(status="active")
    await status_within_one_second(proxy, tenant, "app", 200)


async def test_deleted_gateway_is_unknown_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.delete_gateway()
    await status_within_one_second(proxy, tenant, "app", 401)  # as any unknown gateway


async def test_inactive_consumer_is_forbidden_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.put_consumer("app", active=False)
    await status_within_one_second(proxy, tenant, "app", 403)


async def test_new_consumer_is_served_within_one_second(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.add_consumer("newcomer", ["primary"])
    await status_within_one_second(proxy, tenant, "newcomer", 200)


async def test_registry_key_rotation_takes_effect_at_once(
    proxy: Any, tenant: Any, upstream: Any
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.add_registry("primary", upstream.url, api_key="sk-wrong")  # same name, new id
    binding = RegistryBinding(registry_id=tenant.registries["primary"].id)
    await tenant.put_consumer("app", registries=[binding])
    await status_within_one_second(proxy, tenant, "app", 401)  # the mock rejects the key


async def test_a_proxy_started_after_the_changes_serves_the_same_state(
    proxy: Any, tenant: Any, upstream: Any, nats_url: str
) -> None:
    await ready_tenant(tenant, upstream, proxy)
    await tenant.add_consumer("newcomer", ["primary"])
    revoked_key = tenant.keys["app"]
    await tenant.delete_auth("app")
    await tenant.put_gateway(name="renamed")
    await until_known(proxy, tenant)

    async with run_proxy(nats_url) as late:
        await wait_for(lambda: late.runtime.ready, timeout=5)
        await until_known(late, tenant)
        assert (await call(late, tenant, "newcomer")).status_code == 200
        assert (await call(late, tenant, "app", revoked_key)).status_code == 401
        assert late.runtime.state.gateway_by_slug(tenant.slug).name == "renamed"  # type: ignore[union-attr]
