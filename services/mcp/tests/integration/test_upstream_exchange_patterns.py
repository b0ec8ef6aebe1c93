"""Each token-exchange ``pattern`` the admin accepts does what it says, seen at a token
endpoint run by the test (the exact form and client authentication it receives) and at
an MCP endpoint that takes only the tokens it issued:

- ``impersonation`` and ``token_exchange``: RFC 8693, the caller's token as subject, no
  actor;
- ``delegation``: RFC 8693 with an ``actor_token``: the plane's own client-credentials
  token (``actor: client_credentials``) or a configured one (``actor: static``);
- ``obo``: the on-behalf-of grant (RFC 7523 ``jwt-bearer``, ``requested_token_use``).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller, UpstreamAuthRequired

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CONSUMER = Consumer(
    id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
)
BOX = SecretBox("exchange-pattern-tests")
USER_TOKEN = "user-token-of-alice"
TE = "urn:ietf:params:oauth:grant-type:token-exchange"
AT = "urn:ietf:params:oauth:token-type:access_token"


@dataclass
class Sts:
    url: str
    forms: list[dict[str, str]] = field(default_factory=list)
    basic: list[str | None] = field(default_factory=list)
    seen: list[str | None] = field(default_factory=list)
    refuse_subject: bool = False

    def registry(self, auth: dict[str, Any]) -> Registry:
        target = {"url": f"{self.url}/mcp", "auth": {"token_url": f"{self.url}/token", **auth}}
        return Registry(
            id=uuid4(),
            gateway_id=GATEWAY.id,
            created_at=NOW,
            updated_at=NOW,
            name="secured",
            type="MCP",
            mcp_target=BOX.seal_fields(target),
        )


@pytest_asyncio.fixture
async def sts() -> AsyncIterator[Sts]:
    port = free_port()
    state = Sts(f"http://127.0.0.1:{port}")
    issued: set[str] = set()

    async def token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        state.forms.append(form)
        state.basic.append(request.headers.get("Authorization"))
        if state.refuse_subject and form["grant_type"] != "client_credentials":
            return web.json_response({"error": "invalid_grant"}, status=400)
        value = f"{form['grant_type'].rsplit(':', 1)[-1]}-{len(state.forms)}"
        issued.add(value)
        return web.json_response({"access_token": value, "token_type": "Bearer"})

    async def mcp(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        state.seen.append(auth)
        body = await request.json()
        if (auth or "").removeprefix("Bearer ") not in issued:
            return web.Response(status=401)
        if "id" not in body:
            return web.Response(status=202)
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_post("/mcp", mcp)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with aiohttp.ClientSession() as http:
        client = Upstreams(http, BOX, list_ttl=60.0, timeout=5.0)
        yield client
        await client.aclose()


def alice() -> Caller:
    return Caller(gateway=GATEWAY, consumer=CONSUMER, subject="alice", token=USER_TOKEN)


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.mark.parametrize("pattern", ["impersonation", "token_exchange"])
async def test_impersonation_and_token_exchange_send_rfc_8693_without_an_actor(
    sts: Sts, upstreams: Upstreams, pattern: str
) -> None:
    reg = sts.registry(
        {
            "mode": "exchange",
            "pattern": pattern,
            "audience": "https://upstream.example",
            "resource": "https://upstream.example/mcp",
            "client_id": "gw",
            "client_secret": "gw-secret",
        }
    )
    await upstreams.request(reg, None, alice(), "ping", None)
    assert sts.forms == [
        {
            "grant_type": TE,
            "subject_token": USER_TOKEN,
            "subject_token_type": AT,
            "audience": "https://upstream.example",
            "resource": "https://upstream.example/mcp",
        }
    ]
    assert sts.basic == [basic("gw", "gw-secret")]
    assert sts.seen == ["Bearer token-exchange-1"]


async def test_delegation_sends_the_planes_own_token_as_the_actor(
    sts: Sts, upstreams: Upstreams
) -> None:
    reg = sts.registry(
        {
            "mode": "exchange",
            "pattern": "delegation",
            "audience": "https://upstream.example",
            "actor": "client_credentials",
            "client_id": "gw",
            "client_secret": "gw-secret",
            "token_endpoint_auth_method": "client_secret_post",
        }
    )
    await upstreams.request(reg, None, alice(), "ping", None)
    client = {"client_id": "gw", "client_secret": "gw-secret"}
    own, exchange = sts.forms
    assert own == {
        "grant_type": "client_credentials",
        "audience": "https://upstream.example",
        **client,
    }
    assert exchange == {
        "grant_type": TE,
        "subject_token": USER_TOKEN,
        "subject_token_type": AT,
        "actor_token": "client_credentials-1",
        "actor_token_type": AT,
        "audience": "https://upstream.example",
        **client,
    }
    assert sts.seen == ["Bearer token-exchange-2"]


async def test_delegation_with_a_configured_actor_token(sts: Sts, upstreams: Upstreams) -> None:
    reg = sts.registry(
        {
            "mode": "exchange",
            "pattern": "delegation",
            "audience": "https://upstream.example",
            "actor": "static",
            "actor_token": "the-agent-identity",
            "actor_token_type": "jwt",
        }
    )
    await upstreams.request(reg, None, alice(), "ping", None)
    assert sts.forms == [
        {
            "grant_type": TE,
            "subject_token": USER_TOKEN,
            "subject_token_type": AT,
            "actor_token": "the-agent-identity",
            "actor_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "audience": "https://upstream.example",
        }
    ]


async def test_obo_sends_the_on_behalf_of_grant(sts: Sts, upstreams: Upstreams) -> None:
    reg = sts.registry(
        {
            "mode": "exchange",
            "pattern": "obo",
            "scope": "api://upstream/.default",
            "client_id": "gw",
            "client_secret": "gw-secret",
            "token_endpoint_auth_method": "client_secret_post",
        }
    )
    await upstreams.request(reg, None, alice(), "ping", None)
    assert sts.forms == [
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": USER_TOKEN,
            "requested_token_use": "on_behalf_of",
            "scope": "api://upstream/.default",
            "client_id": "gw",
            "client_secret": "gw-secret",
        }
    ]
    assert sts.seen == ["Bearer jwt-bearer-1"]


async def test_a_refused_subject_token_asks_the_caller_to_authenticate(
    sts: Sts, upstreams: Upstreams
) -> None:
    sts.refuse_subject = True
    reg = sts.registry(
        {
            "mode": "exchange",
            "pattern": "obo",
            "scope": "s",
            "client_id": "gw",
            "client_secret": "x",
        }
    )
    with pytest.raises(UpstreamAuthRequired, match="authenticate again") as info:
        await upstreams.request(reg, None, alice(), "ping", None)
    assert USER_TOKEN not in str(info.value)
    assert sts.seen == []
