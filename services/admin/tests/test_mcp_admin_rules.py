"""What the admin accepts for the MCP plane, and what it refuses rather than store and
ignore: upstream auth modes (client credentials and token exchange need their fields;
forwarded in ``test_mcp_upstream_auth_rules.py``), a consumer's ``always_prefix`` (stored,
answered and sent to the planes; MCP consumers only), role-based MCP consumers and roles'
``mcp_policies``."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from trustgate_testkit.admin import RunningAdmin, read_stream
from trustgate_testkit.fixtures import wait_for

URL = "https://tools.example.com/mcp"
TOKEN_URL = "https://idp.example.com/token"


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"mcpr-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _registry(api: httpx.AsyncClient, gw: str, auth: dict[str, Any]) -> httpx.Response:
    return await api.post(
        f"/v1/gateways/{gw}/registries",
        json={
            "name": f"mcp-{uuid.uuid4().hex[:6]}",
            "type": "MCP",
            "mcp_target": {"url": URL, "auth": auth},
        },
    )


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"mode": "client_credentials", "token_url": TOKEN_URL, "client_id": "c"}, "client_secret"),
        ({"mode": "client_credentials", "client_id": "c", "client_secret": "s"}, "token_url"),
        ({"mode": "exchange", "pattern": "impersonation", "audience": "a"}, "token_url"),
        (
            {"mode": "exchange", "token_url": TOKEN_URL, "pattern": "delegation", "audience": "a"},
            "actor",
        ),
        ({"mode": "exchange", "token_url": TOKEN_URL, "pattern": "obo"}, "scope"),
        ({"mode": "exchange", "token_url": TOKEN_URL, "pattern": "sideways"}, "pattern"),
    ],
)
async def test_an_upstream_auth_the_planes_cannot_run_is_refused(
    api: httpx.AsyncClient, auth: dict[str, Any], named: str
) -> None:
    r = await _registry(api, await _gateway(api), auth)
    assert r.status_code == 422, r.text
    assert named in r.json()["message"]


async def test_complete_client_credentials_and_exchange_auths_are_stored(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    for auth in (
        {
            "mode": "client_credentials",
            "token_url": TOKEN_URL,
            "client_id": "c",
            "client_secret": "s",
        },
        {
            "mode": "exchange",
            "token_url": TOKEN_URL,
            "pattern": "delegation",
            "audience": "a",
            "actor": "static",
            "actor_token": "actor-token-value",
        },
        {
            "mode": "exchange",
            "token_url": TOKEN_URL,
            "pattern": "obo",
            "scope": "tools",
            "client_id": "c",
            "client_secret": "s",
        },
    ):
        r = await _registry(api, gw, auth)
        assert r.status_code == 201, r.text


async def test_always_prefix_is_stored_answered_and_sent_to_the_planes(
    api: httpx.AsyncClient, admin: RunningAdmin
) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/consumers"
    r = await api.post(base, json={"name": "agents", "type": "MCP", "always_prefix": True})
    assert r.status_code == 201, r.text
    consumer = r.json()
    assert consumer["always_prefix"] is True
    assert (await api.get(f"{base}/{consumer['id']}")).json()["always_prefix"] is True

    async def sent() -> Any:
        events = await read_stream(admin.settings.nats_url, gw, last_per_subject=True)
        return [e.entity for e in events if str(e.entity_id) == consumer["id"]]

    (entity,) = await wait_for(sent, timeout=10, message="consumer on the bus")
    assert entity.always_prefix is True

    r = await api.put(f"{base}/{consumer['id']}", json={"always_prefix": False})
    assert r.status_code == 200 and r.json()["always_prefix"] is False
    plain = await api.post(base, json={"name": "plain", "type": "MCP"})
    assert plain.json()["always_prefix"] is False


async def test_always_prefix_on_an_llm_consumer_is_refused(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    base = f"/v1/gateways/{gw}/consumers"
    r = await api.post(base, json={"name": "llm", "always_prefix": True})
    assert r.status_code == 422 and "always_prefix" in r.json()["message"]

    mcp = (await api.post(base, json={"name": "m", "type": "MCP", "always_prefix": True})).json()
    r = await api.put(f"{base}/{mcp['id']}", json={"type": "LLM"})
    assert r.status_code == 422 and "always_prefix" in r.json()["message"]


async def test_role_based_mcp_consumers_and_mcp_policies_are_refused(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    r = await api.post(
        f"/v1/gateways/{gw}/consumers",
        json={"name": "roles", "type": "MCP", "routing_mode": "role_based"},
    )
    assert r.status_code == 422 and "MCP plane" in r.json()["message"]

    roles = f"/v1/gateways/{gw}/roles"
    r = await api.post(roles, json={"name": "r", "mcp_policies": {"allowed": ["search"]}})
    assert r.status_code == 422 and "mcp_policies" in r.json()["message"]
    role = (await api.post(roles, json={"name": "r2", "mcp_policies": None})).json()
    r = await api.put(f"{roles}/{role['id']}", json={"mcp_policies": {"allowed": []}})
    assert r.status_code == 422
