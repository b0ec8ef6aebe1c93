"""The stateless revision (2026-07-28) through the plane: the SDK client's default mode
probes ``server/discover`` and stays there, every request self-contained (no session id
asked for or handed out); ``mode="legacy"`` still negotiates the handshake. With a plain
HTTP client: what the SDK's own server answers to a malformed or mismatched request, an
unknown version, a notification, a request without a credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import DiscoverResult
from mcp_types import methods as wire

from trustgate_core.embedded import free_port
from trustgate_core.events import decode_request_event
from trustgate_mcp.domain.call import event_payload
from trustgate_mcp.services.ports import Caller
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.proxy.tenant import Tenant

if TYPE_CHECKING:
    from conftest import LocalPlane

MODERN = "2026-07-28"
ENVELOPE = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
    "io.modelcontextprotocol/clientCapabilities": {},
}
NAMED = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class Traffic:
    """What went over the wire: each request's protocol-version header and whether any
    request or response carried a session id."""

    def __init__(self) -> None:
        self.versions: list[str | None] = []
        self.session_ids: list[str] = []

    async def request(self, request: httpx2.Request) -> None:
        self.versions.append(request.headers.get("mcp-protocol-version"))
        if "mcp-session-id" in request.headers:
            self.session_ids.append(request.headers["mcp-session-id"])

    async def response(self, response: httpx2.Response) -> None:
        if "mcp-session-id" in response.headers:
            self.session_ids.append(response.headers["mcp-session-id"])


def watched(url: str, key: str, traffic: Traffic, mode: Any = "auto") -> Client:
    http = httpx2.AsyncClient(
        headers={"X-AG-API-Key": key},
        timeout=httpx2.Timeout(20),
        event_hooks={"request": [traffic.request], "response": [traffic.response]},
    )
    return Client(streamable_http_client(url, http_client=http), mode=mode)


def modern(
    method: str, params: dict[str, Any] | None = None, *, rid: Any = 1, version: str = MODERN
) -> tuple[dict[str, Any], dict[str, str]]:
    """A 2026-07-28 request as the SDK's client stamps it: the body and its headers."""
    sent = {
        **(params or {}),
        "_meta": {**ENVELOPE, "io.modelcontextprotocol/protocolVersion": version},
    }
    headers = {"MCP-Protocol-Version": version, "Mcp-Method": method}
    if method in NAMED:
        headers["Mcp-Name"] = sent[NAMED[method]]
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": sent}, headers


class Raw:
    """Plain HTTP on a consumer's MCP URL."""

    def __init__(self, http: httpx.AsyncClient, url: str, key: str | None) -> None:
        self.http = http
        self.url = url
        self.headers = {"Accept": "application/json, text/event-stream"}
        if key is not None:
            self.headers["X-AG-API-Key"] = key

    async def post(self, doc: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return await self.http.post(
            self.url,
            content=orjson.dumps(doc),
            headers={**self.headers, "Content-Type": "application/json", **(headers or {})},
        )

    async def send(
        self, method: str, params: dict[str, Any] | None = None, **extra: str
    ) -> httpx.Response:
        body, headers = modern(method, params)
        return await self.post(body, {**headers, **extra})


@pytest.fixture
async def raw(plane: LocalPlane, tenant: Tenant) -> AsyncIterator[Raw]:
    async with httpx.AsyncClient(timeout=20) as http:
        yield Raw(http, plane.mcp_url(tenant), tenant.keys["agent"])


async def test_the_sdk_clients_default_mode_speaks_2026_07_28_with_no_session(
    plane: LocalPlane, tenant: Tenant
) -> None:
    traffic = Traffic()
    async with watched(plane.mcp_url(tenant), tenant.keys["agent"], traffic) as client:
        assert client.protocol_version == MODERN
        assert client.session.discover_result is not None
        assert client.server_info is not None and client.server_info.name == "trustgate"
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"forecast", "echo", "weather_search", "docs_search"} <= names
        assert "search" not in names
        weather = await client.call_tool("weather_search", {"query": "rain"})
        docs = await client.call_tool("docs_search", {"query": "rain"})
        assert weather.content[0].text == "weather results for rain"  # type: ignore[union-attr]
        assert docs.content[0].text == "docs results for rain"  # type: ignore[union-attr]
        assert (await client.call_tool("fail", {})).is_error is True
        readme = await client.read_resource("docs://readme")
        assert readme.contents[0].text == "# Docs readme"  # type: ignore[union-attr]
        city = await client.read_resource("weather://city/paris")
        assert city.contents[0].text == "station of paris"  # type: ignore[union-attr]
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["weather://city/{name}"]
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"weather_report", "summarize"} <= prompts
        prompt = await client.get_prompt("weather_report", {"city": "Rome"})
        assert "Rome" in prompt.messages[0].content.text  # type: ignore[union-attr]
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nowhere", {})
        assert unknown.value.error.code == -32602
    assert traffic.versions and set(traffic.versions) == {MODERN}
    assert traffic.session_ids == []


async def test_legacy_mode_still_negotiates_the_handshake_and_a_session(
    plane: LocalPlane, tenant: Tenant
) -> None:
    traffic = Traffic()
    async with watched(plane.mcp_url(tenant), tenant.keys["agent"], traffic, "legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.session.discover_result is None
        assert (await client.call_tool("echo", {"text": "hi"})).is_error is False
    assert traffic.session_ids
    assert MODERN not in traffic.versions


async def test_discover_names_every_version_and_the_gateway_and_is_not_cached(raw: Raw) -> None:
    response = await raw.send("server/discover")
    assert response.status_code == 200
    assert "mcp-session-id" not in response.headers
    result = response.json()["result"]
    wire.validate_server_result("server/discover", MODERN, result)
    discovered = DiscoverResult.model_validate(result)
    assert discovered.supported_versions == [
        "2024-11-05",
        "2025-03-26",
        "2025-06-18",
        "2025-11-25",
        MODERN,
    ]
    assert result["ttlMs"] == 0 and result["cacheScope"] == "private"
    assert set(result["capabilities"]) == {"tools", "resources", "prompts"}
    info = result["_meta"]["io.modelcontextprotocol/serverInfo"]
    assert info["name"] == "trustgate"


async def test_an_unknown_version_is_32022_naming_the_supported_ones(raw: Raw) -> None:
    for method in ("server/discover", "tools/list"):
        body, headers = modern(method, version="2099-01-01")
        response = await raw.post(body, headers)
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == -32022
        assert MODERN in error["data"]["supported"]
        assert error["data"]["requested"] == "2099-01-01"


async def test_results_are_shaped_as_2026_07_28_requires(raw: Raw) -> None:
    asked = {
        "tools/list": None,
        "resources/list": None,
        "resources/templates/list": None,
        "prompts/list": None,
        "tools/call": {"name": "echo", "arguments": {"text": "x"}},
        "resources/read": {"uri": "docs://readme"},
        "prompts/get": {"name": "summarize", "arguments": {"text": "t"}},
    }
    for method, params in asked.items():
        response = await raw.send(method, params)
        assert response.status_code == 200, method
        assert "mcp-session-id" not in response.headers
        result = response.json()["result"]
        wire.validate_server_result(method, MODERN, result)
        assert result["resultType"] == "complete"
        if method.endswith("/list") or method == "resources/read":
            assert (result["ttlMs"], result["cacheScope"]) == (0, "private")


async def test_mismatched_or_repeated_headers_are_refused_as_the_sdks_server_does(
    raw: Raw,
) -> None:
    call = {"name": "echo", "arguments": {"text": "x"}}
    name = await raw.send("tools/call", call, **{"Mcp-Name": "forecast"})
    assert name.status_code == 400
    assert name.json()["error"]["code"] == -32020
    assert "mcp-name" in name.json()["error"]["message"]
    method = await raw.send("tools/list", **{"Mcp-Method": "prompts/list"})
    assert (method.status_code, method.json()["error"]["code"]) == (400, -32020)
    body, headers = modern("tools/list")
    del headers["MCP-Protocol-Version"]
    headers["MCP-Protocol-Version"] = "2026-07-28"
    twice = await raw.http.post(
        raw.url,
        content=orjson.dumps(body),
        headers=[
            *raw.headers.items(),
            ("Content-Type", "application/json"),
            *headers.items(),
            ("Mcp-Method", "tools/list"),
        ],
    )
    assert (twice.status_code, twice.json()["error"]["code"]) == (400, -32020)
    assert "more than once" in twice.json()["error"]["message"]
    bare = await raw.post(
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list"},
        {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"},
    )
    assert (bare.status_code, bare.json()["error"]["code"]) == (400, -32602)
    unknown = await raw.send("subscriptions/listen")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, -32601)
    encoded = await raw.send(
        "resources/read",
        {"uri": "docs://readme"},
        **{"Mcp-Name": "=?base64?ZG9jczovL3JlYWRtZQ==?="},
    )
    assert encoded.status_code == 200


async def test_a_notification_is_accepted_and_a_request_without_a_credential_is_401(
    raw: Raw, plane: LocalPlane, tenant: Tenant
) -> None:
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    accepted = await raw.post(note, {"MCP-Protocol-Version": MODERN})
    assert (accepted.status_code, accepted.content) == (202, b"")
    refused = await raw.post(note, {"MCP-Protocol-Version": "2099-01-01"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, -32022)

    anonymous = Raw(raw.http, plane.mcp_url(tenant), None)
    response = await anonymous.send("tools/list")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert "resource_metadata=" in response.headers["www-authenticate"]
    wrong = Raw(raw.http, plane.mcp_url(tenant), "not-a-key")
    assert (await wrong.send("server/discover")).status_code == 401


async def test_each_stateless_call_is_one_mcp_event(plane: LocalPlane, tenant: Tenant) -> None:
    key = tenant.keys["agent"]
    async with watched(plane.mcp_url(tenant), key, Traffic()) as client:
        await client.list_tools()
        await client.call_tool("weather_search", {"query": "rain"})
        await client.read_resource("docs://readme")
        await client.get_prompt("summarize", {"text": "t"})
        with pytest.raises(MCPError):
            await client.call_tool("nowhere", {})
    events = [decode_request_event(orjson.dumps(event_payload(c))) for c in plane.sink.calls]
    assert [e.mcp.method for e in events if e.mcp] == [
        "tools/call",
        "resources/read",
        "prompts/get",
        "tools/call",
    ]
    search, readme, _prompt, unknown = events
    assert all(e.kind == "mcp" for e in events)
    assert search.status == 200 and search.registry_id == tenant.registries["weather"].id
    assert search.mcp is not None and search.mcp.upstream_tool == "search"
    assert search.consumer_id == tenant.consumers["agent"].id
    assert readme.registry_id == tenant.registries["docs"].id
    assert unknown.mcp is not None and unknown.mcp.rpc_error_code == -32602
    assert unknown.error_kind == "not_found"
    assert all(c.session_id is None for c in plane.sink.calls)
    for event in events:
        assert key not in event.model_dump_json()


async def test_policies_refuse_stateless_calls_as_they_refuse_session_calls(
    plane: LocalPlane, tenant: Tenant
) -> None:
    rule = {"tool": "forecast", "windows": [{"duration": "1m", "max": 1}]}
    await tenant.add_policy("per-tool", "per_tool_rate_limiter", {"rules": [rule]})
    await tenant.add_policy("no-fail", "tool_allowlist", {"deny_tools": ["fail"]})
    ids = [tenant.policies["per-tool"].id, tenant.policies["no-fail"].id]
    await tenant.put_consumer("agent", policy_ids=ids)
    async with watched(plane.mcp_url(tenant), tenant.keys["agent"], Traffic()) as client:
        assert client.protocol_version == MODERN
        assert "fail" not in {tool.name for tool in (await client.list_tools()).tools}
        with pytest.raises(MCPError) as denied:
            await client.call_tool("fail", {})
        assert denied.value.error.code == -32001
        assert (await client.call_tool("forecast", {"city": "Oslo"})).is_error is False
        with pytest.raises(MCPError) as limited:
            await client.call_tool("forecast", {"city": "Oslo"})
        assert limited.value.error.code == -32004
        assert isinstance(limited.value.error.data, dict)
        assert limited.value.error.data["retry_after"] >= 1
    refused = [c for c in plane.sink.calls if c.rpc_error_code == -32004]
    assert len(refused) == 1 and refused[0].status == 429


async def test_stateless_calls_share_one_upstream_session_per_server_on_a_replica(
    plane: LocalPlane, tenant: Tenant
) -> None:
    upstreams = plane.runtime.upstreams
    async with watched(plane.mcp_url(tenant), tenant.keys["agent"], Traffic()) as client:
        await client.call_tool("forecast", {"city": "Oslo"})
        weather = tenant.registries["weather"]
        registry = plane.runtime.state.registries[weather.id]
        caller_session = await upstreams.shared_session(registry, _caller(plane, tenant), None)
        for _ in range(3):
            await client.call_tool("forecast", {"city": "Oslo"})
        again = await upstreams.shared_session(registry, _caller(plane, tenant), None)
    assert again is caller_session
    assert caller_session.session_id is not None  # the SDK's upstream keeps sessions


def _caller(plane: LocalPlane, tenant: Tenant) -> Caller:
    state = plane.runtime.state
    consumer = state.consumers[tenant.consumers["agent"].id]
    return Caller(state.gateways[tenant.gateway.id], consumer)


async def test_an_upstream_that_restarted_gets_a_new_shared_session_and_the_call_succeeds(
    plane: LocalPlane,
) -> None:
    port = free_port()
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("docs", f"http://127.0.0.1:{port}/mcp")
    await tenant.add_consumer("agent", ["docs"], type="MCP")
    registry = plane.runtime.state.registries[tenant.registries["docs"].id]
    async with AsyncExitStack() as stack:
        before = UpstreamThread("docs", port)
        stack.callback(before.__exit__)
        before.__enter__()
        client = await stack.enter_async_context(
            watched(plane.mcp_url(tenant), tenant.keys["agent"], Traffic())
        )
        assert (await client.call_tool("echo", {"text": "before"})).is_error is False
        first = await plane.runtime.upstreams.shared_session(registry, _caller(plane, tenant), None)
        before.__exit__()
        with UpstreamThread("docs", port):  # it knows none of the earlier sessions
            after = await client.call_tool("echo", {"text": "after"})
            assert after.content[0].text == "after"  # type: ignore[union-attr]
            now = await plane.runtime.upstreams.shared_session(
                registry, _caller(plane, tenant), None
            )
    assert now.session_id not in (None, first.session_id)


async def test_a_bearer_token_of_the_plane_authenticates_each_stateless_request(
    plane: LocalPlane, tenant: Tenant
) -> None:
    url = plane.mcp_url(tenant)
    token = plane.runtime.oauth.tokens.issue(
        plane.url,
        url,
        {
            "sub": "alice",
            "gateway_id": str(tenant.gateway.id),
            "consumer_id": str(tenant.consumers["agent"].id),
            "auth_id": str(tenant.auths["agent"].id),
            "scope": "mcp",
        },
    )
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=httpx2.Timeout(20)
    )
    async with Client(streamable_http_client(url, http_client=http)) as client:
        assert client.protocol_version == MODERN
        assert (await client.call_tool("echo", {"text": "x"})).is_error is False
    (call,) = plane.sink.calls
    assert call.subject == "alice" and call.auth_id == tenant.auths["agent"].id
    assert token not in orjson.dumps(event_payload(call)).decode()
