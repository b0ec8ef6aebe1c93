"""Every provider configured through the admin API, as a user would: the admin validates
and seals the registry's credentials (AWS keys, a Google service account, an Anthropic
key), the proxy opens them from the bus, and an OpenAI SDK client reaches each provider in
its own wire format, with a model name mapped per registry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI

from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.providers import MOCKS, ProviderMock
from trustgate_testkit.proxy.sdk_clients import tracked
from trustgate_testkit.proxy.server import run_proxy

# provider mock -> the model id that provider is sent for the client's "gpt-4o-mini"
PROVIDERS = {
    "anthropic": "claude-opus-4-7",
    "bedrock": "us.anthropic.claude-opus-4-7-v1:0",
    "gemini": "gemini-2.5-flash",
    "vertex": "gemini-2.5-pro",
    "responses": "gpt-5-mini",
}


@pytest.fixture
async def admin(database_factory: Any, nats_server: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = await database_factory("tg_e2e_providers")
    settings = admin_settings(dsn, nats_server.url, SERVER_SECRET_KEY=DEV_SECRET_KEY)
    async with running_admin(settings) as running:
        yield running


SECRET_FIELDS = {"api_key", "secret_access_key", "private_key", "client_secret"}


def secrets_of(value: Any, key: str = "") -> list[str]:
    """The secret strings in a registry's clear ``auth`` (a service account may be JSON)."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in secrets_of(v, k)]
    if isinstance(value, str) and value.startswith("{"):
        return secrets_of(json.loads(value))
    return [value] if key in SECRET_FIELDS and isinstance(value, str) and value else []


async def configure(
    api: httpx.AsyncClient, mock: ProviderMock, slug: str, model: str
) -> dict[str, Any]:
    gw = (await api.post("/v1/gateways", json={"name": slug, "slug": slug})).json()
    g = gw["id"]
    reg = await api.post(
        f"/v1/gateways/{g}/registries",
        json={
            "name": f"{mock.provider}-primary",
            "provider": mock.provider,
            "provider_options": {**mock.options, "model_mapping": {"gpt-4o-mini": model}},
            "auth": mock.auth,
        },
    )
    assert reg.status_code == 201, reg.text
    # the admin shows the credentials masked, never the secrets themselves
    secrets = secrets_of(mock.auth)
    assert secrets, f"{mock.provider}: the mock's auth holds no secret to look for"
    for secret in secrets:
        assert secret not in reg.text
    con = await api.post(
        f"/v1/gateways/{g}/consumers",
        json={"name": "app", "registries": [{"id": reg.json()["id"]}]},
    )
    assert con.status_code == 201, con.text
    auth = (
        await api.post(f"/v1/gateways/{g}/auths", json={"name": "key", "type": "api_key"})
    ).json()
    linked = await api.post(f"/v1/gateways/{g}/consumers/{con.json()['id']}/auths/{auth['id']}")
    assert linked.status_code == 204
    return {"gw": gw, "con": con.json(), "key": auth["api_key"]}


@pytest.mark.parametrize("name", sorted(PROVIDERS))
async def test_a_registry_made_through_the_admin_serves_an_openai_client_from_its_provider(
    name: str, admin: RunningAdmin, nats_server: NatsServer
) -> None:
    model = PROVIDERS[name]
    async with MOCKS[name]() as mock, admin.client() as api, run_proxy(nats_server.url) as proxy:
        s = await configure(api, mock, f"e2e-{name}", model)
        client = tracked(
            AsyncOpenAI(
                base_url=f"{proxy.url}/{s['con']['slug']}/v1",
                api_key="unused",
                default_headers={"X-AG-Gateway-Slug": s["gw"]["slug"], "X-AG-API-Key": s["key"]},
                max_retries=0,
                timeout=10,
            )
        )

        async def answered() -> bool:
            try:
                resp = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
                )
            except Exception:
                return False
            return resp.choices[0].message.content == f"Hello from {mock.name}"

        await wait_for(answered, timeout=10, message=f"{name} not served via the admin's config")
        # the provider got its own format, the mapped model, and the registry's credentials
        assert mock.requests, "the provider mock saw no request"
        last = mock.requests[-1]
        assert model in last.path or last.body.get("model") == model
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == f"Hello from {mock.name}"
