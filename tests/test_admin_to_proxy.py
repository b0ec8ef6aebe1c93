"""Admin and proxy together: configuration made through the admin API reaches a running
proxy over NATS, and the OpenAI SDK sees the effect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream, serve_mock
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import RunningProxy, run_proxy

MESSAGES: Any = [{"role": "user", "content": "Hello!"}]


@pytest.fixture
async def admin(database_factory: Any, nats_server: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_e2e")
    settings = admin_settings(dsn, nats_server.url, SERVER_SECRET_KEY=DEV_SECRET_KEY)
    async with running_admin(settings) as running:
        yield running


@pytest.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    async with serve_mock() as mock:
        yield mock


async def quickstart(api: httpx.AsyncClient, upstream: MockUpstream, slug: str) -> dict[str, Any]:
    """Seed 000's steps 1-5, with an OpenAI-compatible upstream (the mock)."""
    gw = (await api.post("/v1/gateways", json={"name": "My Gateway", "slug": slug})).json()
    g = gw["id"]
    reg = await api.post(
        f"/v1/gateways/{g}/registries",
        json={
            "name": "openai-primary",
            "provider": "openai_compatible",
            "provider_options": {"base_url": upstream.url},
            "auth": {"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
        },
    )
    assert reg.status_code == 201, reg.text
    con = (
        await api.post(
            f"/v1/gateways/{g}/consumers",
            json={"name": "my-app", "registries": [{"id": reg.json()["id"]}]},
        )
    ).json()
    auth = (
        await api.post(f"/v1/gateways/{g}/auths", json={"name": "key", "type": "api_key"})
    ).json()
    r = await api.post(f"/v1/gateways/{g}/consumers/{con['id']}/auths/{auth['id']}")
    assert r.status_code == 204
    return {"gw": gw, "con": con, "auth": auth, "key": auth["api_key"]}


def sdk(proxy: RunningProxy, s: dict[str, Any], key: str | None = None) -> AsyncOpenAI:
    return tracked(
        AsyncOpenAI(
            base_url=f"{proxy.url}/{s['con']['slug']}/v1",
            api_key="unused",
            default_headers={"X-AG-Gateway-Slug": s["gw"]["slug"], "X-AG-API-Key": key or s["key"]},
            max_retries=0,
            timeout=10,
        )
    )


async def served(client: AsyncOpenAI) -> bool:
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    except openai.APIStatusError:
        return False
    return True


async def refused(client: AsyncOpenAI, error: type[Exception]) -> bool:
    try:
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    except error:
        return True
    return False


async def test_admin_quickstart_then_sdk_completion_and_stream_through_the_proxy(
    admin: RunningAdmin, nats_server: NatsServer, upstream: MockUpstream
) -> None:
    async with admin.client() as api, run_proxy(nats_server.url) as proxy:
        s = await quickstart(api, upstream, "e2e-quickstart")
        client = sdk(proxy, s)
        await wait_for(lambda: served(client), timeout=5, message="config did not reach the proxy")
        resp = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert resp.choices[0].message.content and resp.usage is not None
        chunks = [
            c
            async for c in await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True
            )
        ]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text
        # the provider key came from the registry (sealed on the bus, opened by the proxy)
        assert upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {UPSTREAM_KEY}"


async def test_admin_changes_take_effect_on_a_running_proxy_within_one_second(
    admin: RunningAdmin, nats_server: NatsServer, upstream: MockUpstream
) -> None:
    async with admin.client() as api, run_proxy(nats_server.url) as proxy:
        s = await quickstart(api, upstream, "e2e-changes")
        g = s["gw"]["id"]
        client = sdk(proxy, s)
        await wait_for(lambda: served(client), timeout=5)

        # a new consumer with its own key is served
        con2 = (
            await api.post(
                f"/v1/gateways/{g}/consumers",
                json={"name": "second", "registries": [{"id": s["con"]["registry_ids"][0]}]},
            )
        ).json()
        key2 = (
            await api.post(f"/v1/gateways/{g}/auths", json={"name": "k2", "type": "api_key"})
        ).json()
        await api.post(f"/v1/gateways/{g}/consumers/{con2['id']}/auths/{key2['id']}")
        started = time.monotonic()
        second = sdk(proxy, {**s, "con": con2, "key": key2["api_key"]})
        await wait_for(lambda: served(second), timeout=1, message="new consumer not served in 1 s")
        assert time.monotonic() - started < 1

        # a revoked (disabled) key is refused
        r = await api.put(f"/v1/gateways/{g}/auths/{key2['id']}", json={"enabled": False})
        assert r.status_code == 200
        await wait_for(lambda: refused(second, openai.AuthenticationError), timeout=1)
        assert await served(client)  # the other consumer is unaffected

        # a disabled gateway stops serving, and serves again when re-enabled
        r = await api.put(f"/v1/gateways/{g}", json={"status": "disabled"})
        assert r.status_code == 200
        await wait_for(lambda: refused(client, openai.APIStatusError), timeout=1)
        await api.put(f"/v1/gateways/{g}", json={"status": "active"})
        await wait_for(lambda: served(client), timeout=1)


async def test_a_proxy_started_after_the_changes_serves_the_same_state(
    admin: RunningAdmin, nats_server: NatsServer, upstream: MockUpstream
) -> None:
    async with admin.client() as api:
        s = await quickstart(api, upstream, "e2e-late")
        g = s["gw"]["id"]
        gone = (
            await api.post(f"/v1/gateways/{g}/auths", json={"name": "gone", "type": "api_key"})
        ).json()
        await api.post(f"/v1/gateways/{g}/consumers/{s['con']['id']}/auths/{gone['id']}")
        await api.delete(f"/v1/gateways/{g}/consumers/{s['con']['id']}/auths/{gone['id']}")
        await api.delete(f"/v1/gateways/{g}/auths/{gone['id']}")
        await wait_for(lambda: admin.container.relay.published >= 9, timeout=10)
    async with run_proxy(nats_server.url) as proxy:
        await wait_for(lambda: proxy.runtime.ready, timeout=5)
        assert await served(sdk(proxy, s))
        assert await refused(sdk(proxy, s, key=gone["api_key"]), openai.AuthenticationError)
