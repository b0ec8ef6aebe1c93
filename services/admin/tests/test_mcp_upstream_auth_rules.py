"""The MCP upstream auth modes the admin stores because the MCP plane runs them, checked
as the reference says: ``forwarded`` (each user's own upstream sign-in, auto or manual
registration) and the exchange patterns with what each needs; secrets masked in answers
as every credential is."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

URL = "https://tools.example.com/mcp"
TOKEN_URL = "https://idp.example.com/token"
AUTHORIZE_URL = "https://idp.example.com/authorize"


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"mcpa-{uuid.uuid4().hex[:8]}"})
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


FORWARDED = {"mode": "forwarded", "provider": "github"}
MANUAL = {
    **FORWARDED,
    "registration": "manual",
    "client_id": "gw-client",
    "client_secret": "manual-client-secret-1234",
    "authorize_url": AUTHORIZE_URL,
    "token_url": TOKEN_URL,
}


@pytest.mark.parametrize(
    ("auth", "named"),
    [
        ({"mode": "forwarded"}, "provider"),
        ({**FORWARDED, "registration": "sometimes"}, "registration"),
        ({**FORWARDED, "client_id": "c"}, "client_id"),
        ({**FORWARDED, "client_secret": "s"}, "client_secret"),
        ({**MANUAL, "client_id": None}, "client_id"),
        ({**MANUAL, "authorize_url": None}, "authorize_url"),
        ({**MANUAL, "token_url": None}, "token_url"),
        ({**MANUAL, "authorize_url": "javascript:alert(1)"}, "authorize_url"),
        ({**FORWARDED, "token_endpoint_auth_method": "private_key_jwt"}, "client_secret_basic"),
        ({**FORWARDED, "scopes": [1, 2]}, "scopes"),
        ({**FORWARDED, "resource": "not a url"}, "resource"),
        (
            {
                "mode": "exchange",
                "token_url": TOKEN_URL,
                "pattern": "delegation",
                "audience": "a",
                "actor": "gw",
            },
            "actor",
        ),
        (
            {
                "mode": "exchange",
                "token_url": TOKEN_URL,
                "pattern": "delegation",
                "audience": "a",
                "actor": "client_credentials",
            },
            "client_id",
        ),
        (
            {
                "mode": "exchange",
                "token_url": TOKEN_URL,
                "pattern": "delegation",
                "audience": "a",
                "actor": "static",
            },
            "actor_token",
        ),
        (
            {
                "mode": "exchange",
                "token_url": TOKEN_URL,
                "pattern": "delegation",
                "audience": "a",
                "actor": "static",
                "actor_token": "t",
                "actor_token_type": "saml2",
            },
            "actor_token_type",
        ),
        (
            {"mode": "exchange", "token_url": TOKEN_URL, "pattern": "obo", "scope": "s"},
            "client_id",
        ),
        (
            {
                "mode": "exchange",
                "token_url": TOKEN_URL,
                "pattern": "token_exchange",
                "audience": "a",
                "actor": "static",
            },
            "only for pattern delegation",
        ),
    ],
)
async def test_an_upstream_auth_the_plane_cannot_run_is_422(
    api: httpx.AsyncClient, auth: dict[str, Any], named: str
) -> None:
    r = await _registry(api, await _gateway(api), auth)
    assert r.status_code == 422, r.text
    assert named in r.json()["message"]


async def test_forwarded_auths_are_stored_with_their_secret_masked(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    auto = {**FORWARDED, "scopes": ["repo", "read:user"], "resource": URL}
    r = await _registry(api, gw, auto)
    assert r.status_code == 201, r.text
    assert r.json()["mcp_target"]["auth"] == auto
    r = await _registry(api, gw, {**MANUAL, "token_endpoint_auth_method": "client_secret_post"})
    assert r.status_code == 201, r.text
    stored = r.json()["mcp_target"]["auth"]
    assert stored["client_secret"] == "***1234" and stored["client_id"] == "gw-client"
    assert "manual-client-secret" not in r.text


async def test_each_exchange_pattern_is_stored_with_its_secrets_masked(
    api: httpx.AsyncClient,
) -> None:
    gw = await _gateway(api)
    base = {"mode": "exchange", "token_url": TOKEN_URL}
    for auth in (
        {**base, "pattern": "impersonation", "audience": "a"},
        {**base, "pattern": "token_exchange", "audience": "a", "resource": URL},
        {
            **base,
            "pattern": "delegation",
            "audience": "a",
            "actor": "client_credentials",
            "client_id": "gw",
            "client_secret": "client-secret-abcd",
        },
        {
            **base,
            "pattern": "delegation",
            "audience": "a",
            "actor": "static",
            "actor_token": "actor-token-wxyz",
            "actor_token_type": "jwt",
        },
        {
            **base,
            "pattern": "obo",
            "scope": "api://x/.default",
            "client_id": "gw",
            "client_secret": "client-secret-abcd",
        },
    ):
        r = await _registry(api, gw, auth)
        assert r.status_code == 201, r.text
        assert "client-secret-abcd" not in r.text and "actor-token-wxyz" not in r.text
