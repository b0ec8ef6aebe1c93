"""Upstream auth modes against a token endpoint and an MCP endpoint run in the test: what
the token endpoint receives, what reaches the upstream, and that the caller's own token
goes nowhere it was not issued for."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller, UpstreamAuthRequired, UpstreamUnavailable

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CONSUMER = Consumer(
    id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
)
BOX = SecretBox("upstream-auth-tests")
SECRET = "s3cr3t-value/+="


def jwt(aud: str | list[str]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': 'u1', 'aud': aud})}.c2ln"


def caller(token: str | None = None) -> Caller:
    return Caller(gateway=GATEWAY, consumer=CONSUMER, token=token)


@dataclass
class Idp:
    """A token endpoint and an MCP endpoint that accepts only what the endpoint issued."""

    url: str
    forms: list[dict[str, str]] = field(default_factory=list)
    basic: list[str | None] = field(default_factory=list)
    seen: list[str | None] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    expires_in: int = 3600
    fail: bool = False

    def registry(self, auth: dict[str, Any]) -> Registry:
        target = {"url": f"{self.url}/mcp", "auth": auth}
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
async def idp() -> AsyncIterator[Idp]:
    port = free_port()
    state = Idp(f"http://127.0.0.1:{port}")
    issued: set[str] = set()

    async def token(request: web.Request) -> web.Response:
        form = dict(await request.post())
        state.forms.append({k: str(v) for k, v in form.items()})
        state.basic.append(request.headers.get("Authorization"))
        if state.fail:
            return web.json_response({"error": "invalid_client"}, status=401)
        value = f"up-{len(state.forms)}"
        issued.add(value)
        return web.json_response(
            {"access_token": value, "token_type": "Bearer", "expires_in": state.expires_in}
        )

    async def mcp(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization")
        state.seen.append(auth)
        body = await request.json()
        bearer = (auth or "").removeprefix("Bearer ")
        if bearer not in issued or bearer in state.revoked:
            return web.Response(status=401)
        if "id" not in body:
            return web.Response(status=202)
        result = {"tools": [{"name": "t"}]} if body["method"] == "tools/list" else {}
        if body["method"] == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "serverInfo": {"name": "secured", "version": "1"},
            }
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_post("/mcp", mcp)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    # passthrough tokens are the caller's: the upstream accepts those for its audience
    issued.update({jwt("https://upstream.example"), jwt(["x", "https://upstream.example"])})
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


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_client_credentials_with_basic_auth_is_fetched_once_and_sent(
    idp: Idp, upstreams: Upstreams
) -> None:
    reg = idp.registry(
        {
            "mode": "client_credentials",
            "token_url": f"{idp.url}/token",
            "client_id": "gw",
            "client_secret": SECRET,
            "scopes": ["mcp:read", "mcp:call"],
            "audience": "https://upstream.example",
            "resource": "https://upstream.example/mcp",
        }
    )
    session = await upstreams.open(reg, caller(jwt("https://gateway.example")))
    await upstreams.request(reg, session, caller(), "ping", None)
    assert idp.forms == [
        {
            "grant_type": "client_credentials",
            "scope": "mcp:read mcp:call",
            "audience": "https://upstream.example",
            "resource": "https://upstream.example/mcp",
        }
    ]
    # RFC 6749 §2.3.1: the secret is form-urlencoded before base64
    assert idp.basic == [basic("gw", "s3cr3t-value%2F%2B%3D")]
    assert set(idp.seen) == {"Bearer up-1"}


async def test_client_credentials_with_client_secret_post_and_a_short_lived_token(
    idp: Idp, upstreams: Upstreams
) -> None:
    idp.expires_in = 30  # within the renewal margin: fetched for every call
    reg = idp.registry(
        {
            "mode": "client_credentials",
            "token_url": f"{idp.url}/token",
            "client_id": "gw",
            "client_secret": SECRET,
            "token_endpoint_auth_method": "client_secret_post",
            "scopes": "mcp:read mcp:call",
        }
    )
    await upstreams.request(reg, None, caller(), "ping", None)
    await upstreams.request(reg, None, caller(), "ping", None)
    assert idp.basic == [None, None]
    assert idp.forms[0] == {
        "grant_type": "client_credentials",
        "scope": "mcp:read mcp:call",
        "client_id": "gw",
        "client_secret": SECRET,
    }
    assert idp.seen == ["Bearer up-1", "Bearer up-2"]


async def test_a_failing_token_endpoint_is_unavailable_without_the_secret(
    idp: Idp, upstreams: Upstreams
) -> None:
    idp.fail = True
    reg = idp.registry(
        {
            "mode": "client_credentials",
            "token_url": f"{idp.url}/token",
            "client_id": "gw",
            "client_secret": SECRET,
        }
    )
    with pytest.raises(UpstreamUnavailable) as info:
        await upstreams.request(reg, None, caller(), "ping", None)
    assert str(info.value) == "the token endpoint answered HTTP 401 (invalid_client)"
    assert idp.seen == []


async def test_exchange_trades_each_caller_token_once(idp: Idp, upstreams: Upstreams) -> None:
    reg = idp.registry(
        {
            "mode": "exchange",
            "token_url": f"{idp.url}/token",
            "client_id": "gw",
            "client_secret": SECRET,
            "audience": "https://upstream.example",
            "scope": "mcp:call",
        }
    )
    alice, bob = jwt("https://gateway.example/alice"), jwt("https://gateway.example/bob")
    await upstreams.request(reg, None, caller(alice), "ping", None)
    await upstreams.request(reg, None, caller(alice), "ping", None)
    await upstreams.request(reg, None, caller(bob), "ping", None)
    assert [f["subject_token"] for f in idp.forms] == [alice, bob]
    assert idp.forms[0] == {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": alice,
        "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "scope": "mcp:call",
        "audience": "https://upstream.example",
    }
    assert idp.basic[0] == basic("gw", "s3cr3t-value%2F%2B%3D")
    assert idp.seen == ["Bearer up-1", "Bearer up-1", "Bearer up-2"]
    with pytest.raises(UpstreamAuthRequired):
        await upstreams.request(reg, None, caller(None), "ping", None)


async def test_passthrough_forwards_only_a_token_for_the_upstreams_audience(
    idp: Idp, upstreams: Upstreams
) -> None:
    reg = idp.registry({"mode": "passthrough", "expected_audience": "https://upstream.example"})
    for token in (jwt("https://upstream.example"), jwt(["x", "https://upstream.example"])):
        await upstreams.request(reg, None, caller(token), "ping", None)
    assert idp.seen == [
        f"Bearer {jwt('https://upstream.example')}",
        f"Bearer {jwt(['x', 'https://upstream.example'])}",
    ]
    for other in (jwt("https://gateway.example"), "opaque-token", None):
        with pytest.raises(UpstreamAuthRequired):
            await upstreams.request(reg, None, caller(other), "ping", None)
    assert len(idp.seen) == 2  # nothing else left the plane


async def test_lists_are_kept_per_caller_token_for_passthrough_only(
    idp: Idp, upstreams: Upstreams
) -> None:
    shared = idp.registry(
        {"mode": "client_credentials", "token_url": f"{idp.url}/token", "client_id": "gw"}
    )
    own = idp.registry({"mode": "passthrough", "expected_audience": "https://upstream.example"})
    one, two = jwt("https://upstream.example"), jwt(["x", "https://upstream.example"])
    for reg in (shared, own):
        for token in (one, two, one):
            assert await upstreams.listing(reg, caller(token), "tools") == [{"name": "t"}]
    # initialize, initialized and the four lists (fetched together): once for the
    # registry's own credential, once per caller token under passthrough
    assert len(idp.seen) == 6 + 6 * 2


async def test_forwarded_is_refused(idp: Idp, upstreams: Upstreams) -> None:
    reg = idp.registry({"mode": "forwarded", "provider": "github"})
    with pytest.raises(UpstreamAuthRequired, match="forwarded is not supported"):
        await upstreams.open(reg, caller(jwt("https://upstream.example")))
    assert idp.seen == []


async def test_a_refused_token_is_fetched_again_and_a_refused_caller_must_authenticate(
    idp: Idp, upstreams: Upstreams
) -> None:
    reg = idp.registry(
        {"mode": "client_credentials", "token_url": f"{idp.url}/token", "client_id": "gw"}
    )
    await upstreams.request(reg, None, caller(), "ping", None)
    idp.revoked.add("up-1")
    with pytest.raises(UpstreamUnavailable, match="HTTP 401") as info:
        await upstreams.request(reg, None, caller(), "ping", None)
    assert not isinstance(info.value, UpstreamAuthRequired)
    await upstreams.request(reg, None, caller(), "ping", None)
    assert idp.seen == ["Bearer up-1", "Bearer up-1", "Bearer up-2"]

    own = idp.registry({"mode": "passthrough", "expected_audience": "https://upstream.example"})
    token = jwt("https://upstream.example")
    idp.revoked.add(token)
    with pytest.raises(UpstreamAuthRequired, match="HTTP 401"):
        await upstreams.request(own, None, caller(token), "ping", None)
