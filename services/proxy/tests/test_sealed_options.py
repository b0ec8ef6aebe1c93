"""A registry's ``provider_options`` arrive sealed (its ``headers``, any field named like a
secret): the proxy opens them to call the upstream, which sees the real values; a base URL
still carrying a password (stored before the admin refused them) fails clearly, never 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.proxy.mock_upstream import UPSTREAM_KEY, MockUpstream
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
TEAM_SECRET = "team-secret-0001-5678"
URL_PASSWORD = "url-password-0002"


async def _chat(url: str, slug: str, key: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(
            f"{url}/chat/completions",
            json=BODY,
            headers={"X-AG-Gateway-Slug": slug, "X-AG-API-Key": key},
        )


def _sent(upstream: MockUpstream, name: str) -> list[str | None]:
    """The value of header ``name`` on each request the upstream received, in order."""
    return [
        {k.lower(): v for k, v in r["headers"].items()}.get(name.lower()) for r in upstream.requests
    ]


async def test_sealed_provider_headers_reach_the_upstream_opened(
    proxy: RunningProxy,
    tenant: Tenant,
    upstream: MockUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    options = {"base_url": upstream.url, "headers": {"X-Team-Token": TEAM_SECRET}}
    await tenant.add_registry("primary", upstream.url, options=tenant.box.seal_fields(options))
    assert tenant.registries["primary"].provider_options["headers"]["X-Team-Token"] != TEAM_SECRET
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    with caplog.at_level(logging.DEBUG):
        r = await _chat(proxy.base_url(tenant.consumers["app"]), tenant.slug, tenant.keys["app"])
    assert r.status_code == 200, r.text
    assert _sent(upstream, "X-Team-Token") == [TEAM_SECRET]
    assert TEAM_SECRET not in caplog.text


async def test_a_stored_base_url_with_a_password_fails_clearly_without_leaking_it(
    proxy: RunningProxy,
    tenant: Tenant,
    upstream: MockUpstream,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with_password = upstream.url.replace("http://", f"http://user:{URL_PASSWORD}@")
    await tenant.add_registry("primary", with_password)
    await tenant.add_consumer("app", ["primary"])
    await until_known(proxy, tenant)
    with caplog.at_level(logging.DEBUG):
        r = await _chat(proxy.base_url(tenant.consumers["app"]), tenant.slug, tenant.keys["app"])
    assert r.status_code == 502, r.text
    assert r.json()["error"] == "provider_credential_error"
    assert "base_url" in r.json()["message"]
    assert URL_PASSWORD not in r.text
    assert URL_PASSWORD not in caplog.text
    assert upstream.requests == []


@pytest.fixture
async def admin(database_factory: Any, nats_url: str) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_sealed_options")
    settings = admin_settings(dsn, nats_url, SERVER_SECRET_KEY=DEV_SECRET_KEY)
    async with running_admin(settings) as running:
        yield running


async def test_a_masked_put_through_the_admin_keeps_the_header_the_upstream_gets(
    admin: RunningAdmin, proxy: RunningProxy, upstream: MockUpstream
) -> None:
    async with admin.client() as api:
        gw = (await api.post("/v1/gateways", json={"slug": "sealed-options"})).json()
        g = gw["id"]
        reg = await api.post(
            f"/v1/gateways/{g}/registries",
            json={
                "name": "primary",
                "provider": "openai_compatible",
                "provider_options": {
                    "base_url": upstream.url,
                    "headers": {"X-Team-Token": TEAM_SECRET},
                },
                "auth": {"type": "api_key", "api_key": {"api_key": UPSTREAM_KEY}},
            },
        )
        assert reg.status_code == 201, reg.text
        shown = reg.json()["provider_options"]
        assert shown["headers"] == {"X-Team-Token": "***5678"}
        con = (
            await api.post(
                f"/v1/gateways/{g}/consumers",
                json={"name": "app", "registries": [{"id": reg.json()["id"]}]},
            )
        ).json()
        auth = (
            await api.post(f"/v1/gateways/{g}/auths", json={"name": "k", "type": "api_key"})
        ).json()
        await api.post(f"/v1/gateways/{g}/consumers/{con['id']}/auths/{auth['id']}")
        url = f"{proxy.url}/{con['slug']}/v1"

        async def served() -> bool:
            return (await _chat(url, gw["slug"], auth["api_key"])).status_code == 200

        await wait_for(served, timeout=10)
        assert _sent(upstream, "X-Team-Token")[-1] == TEAM_SECRET
        # the answer's masked header sent back, beside a new one: the stored secret stays
        shown["headers"]["X-Release"] = "canary-2"
        r = await api.put(
            f"/v1/gateways/{g}/registries/{reg.json()['id']}", json={"provider_options": shown}
        )
        assert r.status_code == 200, r.text

        async def updated() -> bool:
            await _chat(url, gw["slug"], auth["api_key"])
            return _sent(upstream, "X-Release")[-1] == "canary-2"

        await wait_for(updated, timeout=10)
    assert _sent(upstream, "X-Team-Token")[-1] == TEAM_SECRET
