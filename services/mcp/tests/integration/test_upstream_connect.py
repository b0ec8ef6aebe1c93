"""Upstream auth mode ``forwarded`` end to end: each user signs in once at an
OAuth-protected upstream MCP server, and the plane then calls it with that user's own
token.

The upstream is a real ``mcp``-SDK server that checks bearer tokens (and publishes its
RFC 9728 metadata); its authorization server is a small HTTP server run by the test: RFC
8414 metadata, RFC 7591 registration, an authorization endpoint that approves at once and
redirects back, and a token endpoint that checks PKCE, the client and single use. Two API
keys of two consumers stand for two users.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import pytest_asyncio
import uvicorn
from aiohttp import web
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

from trustgate_core.embedded import free_port
from trustgate_testkit.proxy.tenant import new_tenant

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager

    from conftest import LocalPlane, Upstreams
    from trustgate_testkit.fixtures import Infra

    MakePlane = Callable[..., AbstractAsyncContextManager[LocalPlane]]
    from trustgate_testkit.proxy.tenant import Tenant


@dataclass
class AuthServer:
    """The upstream's authorization server: what it was sent and what it issued."""

    url: str
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize_queries: list[dict[str, str]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    issued: set[str] = field(default_factory=set)
    refresh: dict[str, str] = field(default_factory=dict)  # refresh token -> client
    expires_in: int = 3600
    count: int = 0

    def token(self, client_id: str) -> dict[str, Any]:
        self.count += 1
        access, refresh = f"upstream-token-{self.count}", f"refresh-{self.count}"
        self.issued.add(access)
        self.refresh[refresh] = client_id
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
        }


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest_asyncio.fixture
async def auth_server() -> AsyncIterator[AuthServer]:
    port = free_port()
    state = AuthServer(f"http://127.0.0.1:{port}")

    async def metadata(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": state.url,
                "authorization_endpoint": f"{state.url}/authorize",
                "token_endpoint": f"{state.url}/token",
                "registration_endpoint": f"{state.url}/register",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def register(request: web.Request) -> web.Response:
        body = await request.json()
        client_id, secret = f"client-{len(state.clients) + 1}", secrets.token_urlsafe(16)
        state.clients[client_id] = {**body, "client_secret": secret}
        return web.json_response(
            {**body, "client_id": client_id, "client_secret": secret}, status=201
        )

    async def authorize(request: web.Request) -> web.Response:
        q = dict(request.query)
        state.authorize_queries.append(q)
        client = state.clients.get(q.get("client_id", ""))
        if client is None or q.get("redirect_uri") not in client["redirect_uris"]:
            return web.Response(status=400, text="unknown client or redirect_uri")
        if q.get("code_challenge_method") != "S256" or q.get("response_type") != "code":
            return web.Response(status=400, text="PKCE S256 and response_type code only")
        code = secrets.token_urlsafe(16)
        state.codes[code] = q
        target = f"{q['redirect_uri']}?{urlencode({'code': code, 'state': q['state']})}"
        raise web.HTTPFound(target)

    async def token(request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        state.token_forms.append(form)
        basic = request.headers.get("Authorization", "").removeprefix("Basic ")
        client_id, _, secret = base64.b64decode(basic).decode().partition(":")
        client = state.clients.get(client_id)
        if client is None or client["client_secret"] != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        if form.get("grant_type") == "refresh_token":
            if state.refresh.pop(form.get("refresh_token", ""), None) != client_id:
                return web.json_response({"error": "invalid_grant"}, status=400)
            return web.json_response(state.token(client_id))
        asked = state.codes.pop(form.get("code", ""), None)
        if (
            asked is None
            or asked["client_id"] != client_id
            or asked["redirect_uri"] != form.get("redirect_uri")
            or asked["code_challenge"] != _s256(form.get("code_verifier", ""))
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(state.token(client_id))

    app = web.Application()
    app.router.add_get("/.well-known/oauth-authorization-server", metadata)
    app.router.add_post("/register", register)
    app.router.add_get("/authorize", authorize)
    app.router.add_post("/token", token)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield state
    finally:
        await runner.cleanup()


class Verifier:
    """Takes only the tokens the authorization server issued; remembers what it saw."""

    def __init__(self, server: AuthServer, resource: str) -> None:
        self.server = server
        self.resource = resource
        self.seen: list[str] = []

    async def verify_token(self, token: str) -> AccessToken | None:
        self.seen.append(token)
        if token not in self.server.issued:
            return None
        return AccessToken(
            token=token, client_id="gateway", scopes=["tools"], resource=self.resource
        )


@dataclass
class Private:
    url: str
    verifier: Verifier


@pytest.fixture
def private(auth_server: AuthServer) -> Iterator[Private]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    verifier = Verifier(auth_server, url)
    server: MCPServer = MCPServer(
        "private",
        token_verifier=verifier,
        auth=AuthSettings(
            issuer_url=auth_server.url,
            resource_server_url=url,
            required_scopes=["tools"],
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def whoami() -> str:
        """The token the call came with."""
        access = get_access_token()
        return access.token if access else "nobody"

    running = uvicorn.Server(
        uvicorn.Config(
            server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "upstream did not start"
        time.sleep(0.01)
    try:
        yield Private(url, verifier)
    finally:
        running.should_exit = True
        thread.join(10)


async def _tenant(plane: LocalPlane, upstreams: Upstreams, private: Private) -> Tenant:
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry(
        "private",
        private.url,
        auth={"mode": "forwarded", "provider": "private", "registration": "auto"},
    )
    await tenant.add_mcp_registry("docs", upstreams.docs)
    for user in ("alice", "bob"):
        await tenant.add_consumer(user, ["private", "docs"], type="MCP")
    return tenant


class Agent:
    """One user's MCP client (raw JSON-RPC over the plane's endpoint)."""

    def __init__(self, http: httpx.AsyncClient, url: str, key: str) -> None:
        self.http, self.url = http, url
        self.headers = {"X-AG-API-Key": key, "Accept": "application/json, text/event-stream"}

    async def start(self) -> Agent:
        params = {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        r = await self.http.post(
            self.url,
            headers=self.headers,
            json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params},
        )
        assert r.status_code == 200, r.text
        self.headers["Mcp-Session-Id"] = r.headers["mcp-session-id"]
        self.headers["MCP-Protocol-Version"] = "2025-06-18"
        return self

    async def rpc(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        r = await self.http.post(self.url, headers=self.headers, json=body)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    async def whoami(self) -> dict[str, Any]:
        return await self.rpc("tools/call", {"name": "whoami", "arguments": {}})


def _consent_url(answer: dict[str, Any], plane: LocalPlane) -> str:
    error = answer.get("error")
    assert error is not None and error["code"] == -32003, answer
    assert error["data"]["error"] == "consent_required"
    assert error["data"]["server"] == "private"
    url: str = error["data"]["connect_url"]
    assert url.startswith(f"{plane.url}/oauth/connect/") and url in error["message"]
    return url


async def test_a_user_connects_once_and_calls_with_their_own_token(
    plane: LocalPlane,
    upstreams: Upstreams,
    private: Private,
    auth_server: AuthServer,
) -> None:
    tenant = await _tenant(plane, upstreams, private)
    async with httpx.AsyncClient(timeout=10) as http:
        alice = await Agent(http, plane.mcp_url(tenant, "alice"), tenant.keys["alice"]).start()
        bob = await Agent(http, plane.mcp_url(tenant, "bob"), tenant.keys["bob"]).start()
        # not connected: the server's tools cannot be listed yet; calling one asks to connect
        listed = await alice.rpc("tools/list", {})
        assert {t["name"] for t in listed["result"]["tools"]} >= {"echo"}
        assert "whoami" not in {t["name"] for t in listed["result"]["tools"]}
        url = _consent_url(await alice.whoami(), plane)

        # the browser: the plane, the upstream's authorization server, back to the plane
        done = await http.get(url, follow_redirects=True)
        assert done.status_code == 200 and "Connected" in done.text, done.text
        (asked,) = auth_server.authorize_queries
        assert asked["code_challenge_method"] == "S256"
        assert asked["resource"] == private.url  # RFC 8707, from the RFC 9728 metadata
        assert asked["scope"] == "tools"  # the metadata's scopes_supported
        assert (
            asked["redirect_uri"] == f"{plane.url}/oauth/callback/{tenant.registries['private'].id}"
        )
        (exchange,) = auth_server.token_forms
        assert exchange["grant_type"] == "authorization_code"
        assert exchange["resource"] == private.url and exchange["code_verifier"]

        answer = await alice.whoami()
        assert answer["result"]["content"][0]["text"] == "upstream-token-1", answer
        assert private.verifier.seen[-1] == "upstream-token-1"
        listed = await alice.rpc("tools/list", {})
        assert "whoami" in {t["name"] for t in listed["result"]["tools"]}

        # another user is still asked to connect, and gets their own token
        bob_url = _consent_url(await bob.whoami(), plane)
        assert bob_url != url
        auth_server.expires_in = 1  # within the renewal margin: refreshed at each use
        before = len(auth_server.token_forms)
        assert (await http.get(bob_url, follow_redirects=True)).status_code == 200
        answer = await bob.whoami()
        latest = f"upstream-token-{auth_server.count}"
        assert answer["result"]["content"][0]["text"] == latest, answer
        code, first, *more = auth_server.token_forms[before:]
        assert code["grant_type"] == "authorization_code"
        assert first["grant_type"] == "refresh_token" and first["refresh_token"] == "refresh-2"
        assert all(f["grant_type"] == "refresh_token" for f in more)
        # alice's token is still hers
        answer = await alice.whoami()
        assert answer["result"]["content"][0]["text"] == "upstream-token-1"
    assert len(auth_server.clients) == 1  # registered once


async def test_a_tampered_expired_or_replayed_state_is_refused(
    plane: LocalPlane, upstreams: Upstreams, private: Private, auth_server: AuthServer
) -> None:
    tenant = await _tenant(plane, upstreams, private)
    async with httpx.AsyncClient(timeout=10) as http:
        alice = await Agent(http, plane.mcp_url(tenant, "alice"), tenant.keys["alice"]).start()
        url = _consent_url(await alice.whoami(), plane)
        to_authorize = await http.get(url)
        assert to_authorize.status_code == 302
        back = await http.get(to_authorize.headers["location"])
        assert back.status_code == 302
        callback = back.headers["location"]
        parts = urlsplit(callback)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        state = query["state"]
        flipped = state[:10] + ("A" if state[10] != "A" else "B") + state[11:]
        tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?" + urlencode(
            {**query, "state": flipped}
        )
        r = await http.get(tampered)
        assert r.status_code == 400
        assert r.json()["error"] == "invalid_request" and "state" in r.json()["error_description"]

        assert (await http.get(callback)).status_code == 200
        replay = await http.get(callback)
        assert replay.status_code == 400
        assert "already used" in replay.json()["error_description"]

        # a connect link that was tampered with, or names another registry
        ticket = parse_qs(urlsplit(url).query)["ticket"][0]
        bad = url.replace(ticket, ticket[:-4] + "AAAA")
        r = await http.get(bad)
        assert r.status_code == 400 and "invalid or has expired" in r.json()["error_description"]
        other = url.replace(str(tenant.registries["private"].id), str(tenant.registries["docs"].id))
        assert (await http.get(other)).status_code == 400
        # nothing secret in the errors
        assert all(c["client_secret"] not in r.text for c in auth_server.clients.values())


async def test_with_redis_a_user_connected_on_one_replica_is_connected_on_the_other(
    make_plane: MakePlane,
    infra: Infra,
    upstreams: Upstreams,
    private: Private,
    auth_server: AuthServer,
) -> None:
    redis = {"REDIS_URL": infra.redis_url}
    async with make_plane(**redis) as first, make_plane(**redis) as second:
        planes = [first, second]

        def apply(event: Any) -> None:
            for p in planes:
                p.runtime.apply(event)

        tenant = await new_tenant(None, local=apply)
        await tenant.add_mcp_registry(
            "private", private.url, auth={"mode": "forwarded", "provider": "private"}
        )
        await tenant.add_consumer("alice", ["private"], type="MCP")
        key = tenant.keys["alice"]
        async with httpx.AsyncClient(timeout=10) as http:
            on_first = await Agent(http, first.mcp_url(tenant, "alice"), key).start()
            url = _consent_url(await on_first.whoami(), first)
            to_authorize = await http.get(url)
            back = await http.get(to_authorize.headers["location"])
            callback = back.headers["location"]
            # the callback lands on the other replica; used once across both
            on_second_url = callback.replace(first.url, second.url)
            assert (await http.get(on_second_url)).status_code == 200
            assert (await http.get(callback)).status_code == 400
            on_second = await Agent(http, second.mcp_url(tenant, "alice"), key).start()
            answer = await on_second.whoami()
            assert answer["result"]["content"][0]["text"] == "upstream-token-1", answer
            # the token is kept sealed: Redis holds no token in clear
            stored = await _redis_values(first)
            assert stored and not any(b"upstream-token-1" in v or b"refresh-1" in v for v in stored)


async def _redis_values(plane: LocalPlane) -> list[bytes]:
    """What Redis holds under the forwarded tokens' keys (on the plane's own connection)."""
    counters: Any = plane.runtime.counters
    keys = await counters.execute("KEYS", "trustgate:mcp:upstream-token:*")
    values = [await counters.execute("GET", k) for k in keys]
    return [v for v in values if isinstance(v, bytes)]


async def test_a_manual_client_signs_in_and_a_refused_token_asks_to_connect_again(
    plane: LocalPlane, private: Private, auth_server: AuthServer
) -> None:
    tenant = await plane.new_tenant()
    registry = await tenant.add_mcp_registry(
        "private",
        private.url,
        auth={
            "mode": "forwarded",
            "provider": "private",
            "registration": "manual",
            "client_id": "manual-client",
            "client_secret": "manual-secret",
            "authorize_url": f"{auth_server.url}/authorize",
            "token_url": f"{auth_server.url}/token",
            "scopes": ["tools"],
        },
    )
    auth_server.clients["manual-client"] = {
        "client_secret": "manual-secret",
        "redirect_uris": [f"{plane.url}/oauth/callback/{registry.id}"],
    }
    await tenant.add_consumer("alice", ["private"], type="MCP")
    async with httpx.AsyncClient(timeout=10) as http:
        alice = await Agent(http, plane.mcp_url(tenant, "alice"), tenant.keys["alice"]).start()
        url = _consent_url(await alice.whoami(), plane)
        assert (await http.get(url, follow_redirects=True)).status_code == 200
        answer = await alice.whoami()
        assert answer["result"]["content"][0]["text"] == "upstream-token-1", answer
        # the upstream stops taking the token: the user is asked to connect again
        auth_server.issued.discard("upstream-token-1")
        _consent_url(await alice.whoami(), plane)
    (asked,) = auth_server.authorize_queries
    assert asked["client_id"] == "manual-client" and asked["resource"] == private.url
    assert list(auth_server.clients) == ["manual-client"]  # nothing registered
