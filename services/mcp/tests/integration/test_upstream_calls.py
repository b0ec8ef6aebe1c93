"""`Upstreams` against real mcp-SDK servers: the handshake, calls, lists, SSE and JSON
answers, and what a caller sees when the upstream forgets its session or is not there."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import (
    Caller,
    RpcFailure,
    SessionExpired,
    UpstreamUnavailable,
)
from trustgate_testkit.mcp.servers import UpstreamThread

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CALLER = Caller(
    gateway=GATEWAY,
    consumer=Consumer(
        id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
    ),
)
BOX = SecretBox("upstream-tests")


def registry(url: str, name: str = "docs") -> Registry:
    return Registry(
        id=uuid4(),
        gateway_id=GATEWAY.id,
        created_at=NOW,
        updated_at=NOW,
        name=name,
        type="MCP",
        mcp_target={"url": url, "transport": "streamable-http"},
    )


@pytest.fixture(scope="module")
def docs_sse() -> Iterator[str]:
    with UpstreamThread("docs", free_port()) as url:
        yield url


@pytest.fixture(scope="module")
def weather_json() -> Iterator[str]:
    with UpstreamThread("weather", free_port(), json_response=True) as url:
        yield url


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with aiohttp.ClientSession() as http:
        client = Upstreams(http, BOX, list_ttl=60.0, timeout=5.0)
        yield client
        await client.aclose()


@pytest.mark.parametrize("fixture", ["docs_sse", "weather_json"])
async def test_open_negotiates_a_handshake_version_and_a_session(
    upstreams: Upstreams, fixture: str, request: pytest.FixtureRequest
) -> None:
    reg = registry(request.getfixturevalue(fixture))
    session = await upstreams.open(reg, CALLER)
    assert session.registry_id == reg.id
    assert session.session_id
    assert session.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS
    await upstreams.close(reg, session, CALLER)


async def test_tools_call_answers_over_sse(upstreams: Upstreams, docs_sse: str) -> None:
    reg = registry(docs_sse)
    session = await upstreams.open(reg, CALLER)
    result = await upstreams.request(
        reg, session, CALLER, "tools/call", {"name": "echo", "arguments": {"text": "hi"}}
    )
    assert result["content"][0]["text"] == "hi"
    assert not result.get("isError")


async def test_calls_answer_over_json(upstreams: Upstreams, weather_json: str) -> None:
    reg = registry(weather_json, "weather")
    session = await upstreams.open(reg, CALLER)
    call = await upstreams.request(
        reg, session, CALLER, "tools/call", {"name": "forecast", "arguments": {"city": "Oslo"}}
    )
    assert call["content"][0]["text"] == "sunny in Oslo"
    read = await upstreams.request(
        reg, session, CALLER, "resources/read", {"uri": "weather://city/Rome"}
    )
    assert read["contents"][0]["text"] == "station of Rome"
    prompt = await upstreams.request(
        reg,
        session,
        CALLER,
        "prompts/get",
        {"name": "weather_report", "arguments": {"city": "Bern"}},
    )
    assert "Bern" in prompt["messages"][0]["content"]["text"]


async def test_tool_errors_are_results_and_protocol_errors_failures(
    upstreams: Upstreams, docs_sse: str
) -> None:
    reg = registry(docs_sse)
    session = await upstreams.open(reg, CALLER)
    failed = await upstreams.request(reg, session, CALLER, "tools/call", {"name": "fail"})
    assert failed["isError"] is True
    # This SDK answers an unknown tool with a tool error, an unknown prompt with an RPC error.
    unknown_tool = await upstreams.request(reg, session, CALLER, "tools/call", {"name": "nope"})
    assert unknown_tool["isError"] is True
    assert "Unknown tool: nope" in unknown_tool["content"][0]["text"]
    with pytest.raises(RpcFailure) as info:
        await upstreams.request(reg, session, CALLER, "prompts/get", {"name": "nope"})
    assert "Unknown prompt: nope" in info.value.message
    with pytest.raises(RpcFailure) as unknown:
        await upstreams.request(reg, session, CALLER, "no/such/method", None)
    assert unknown.value.code == -32601


@pytest.mark.parametrize("fixture", ["docs_sse", "weather_json"])
async def test_listing_returns_every_kind(
    upstreams: Upstreams, fixture: str, request: pytest.FixtureRequest
) -> None:
    reg = registry(request.getfixturevalue(fixture))
    tools = {t["name"] for t in await upstreams.listing(reg, CALLER, "tools")}
    resources = {r["uri"] for r in await upstreams.listing(reg, CALLER, "resources")}
    templates = await upstreams.listing(reg, CALLER, "resource_templates")
    prompts = {p["name"] for p in await upstreams.listing(reg, CALLER, "prompts")}
    if fixture == "docs_sse":
        assert tools == {"search", "echo", "fail"}
        assert resources == {"docs://readme"}
        assert templates == []
        assert prompts == {"summarize"}
    else:
        assert tools == {"forecast", "search", "slow"}
        assert resources == {"weather://stations"}
        assert [t["uriTemplate"] for t in templates] == ["weather://city/{name}"]
        assert prompts == {"weather_report"}


async def test_a_restarted_upstream_reports_the_session_expired(upstreams: Upstreams) -> None:
    port = free_port()
    with UpstreamThread("docs", port) as url:
        reg = registry(url)
        session = await upstreams.open(reg, CALLER)
    with UpstreamThread("docs", port):
        with pytest.raises(SessionExpired):
            await upstreams.request(reg, session, CALLER, "tools/call", {"name": "fail"})
        fresh = await upstreams.open(reg, CALLER)
        result = await upstreams.request(
            reg, fresh, CALLER, "tools/call", {"name": "echo", "arguments": {"text": "back"}}
        )
        assert result["content"][0]["text"] == "back"


async def test_listing_reopens_its_session_once_when_the_upstream_restarted(
    upstreams: Upstreams,
) -> None:
    port = free_port()
    with UpstreamThread("docs", port) as url:
        reg = registry(url)
        assert await upstreams.listing(reg, CALLER, "tools")
    upstreams.invalidate(reg.id)
    with UpstreamThread("docs", port):
        prompts = await upstreams.listing(reg, CALLER, "prompts")
    assert [p["name"] for p in prompts] == ["summarize"]


async def test_a_dead_port_is_unavailable_fast(upstreams: Upstreams) -> None:
    reg = registry(f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(UpstreamUnavailable) as info:
        await upstreams.open(reg, CALLER)
    assert "cannot reach" in str(info.value)
    with pytest.raises(UpstreamUnavailable):
        await upstreams.listing(reg, CALLER, "tools")


async def test_a_slow_upstream_times_out(docs_sse: str, weather_json: str) -> None:
    async with aiohttp.ClientSession() as http:
        client = Upstreams(http, BOX, list_ttl=60.0, timeout=0.3)
        reg = registry(weather_json, "weather")
        session = await client.open(reg, CALLER)
        with pytest.raises(UpstreamUnavailable) as info:
            await client.request(
                reg, session, CALLER, "tools/call", {"name": "slow", "arguments": {"seconds": 1}}
            )
        assert "did not answer within 0.3s" in str(info.value)
        await client.aclose()


async def test_a_server_that_is_not_mcp_is_unavailable(upstreams: Upstreams) -> None:
    async def not_mcp(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=502)

    app = web.Application()
    app.router.add_post("/html", not_mcp)
    app.router.add_post("/bad", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        with pytest.raises(UpstreamUnavailable, match="not JSON"):
            await upstreams.open(registry(f"http://127.0.0.1:{port}/html"), CALLER)
        with pytest.raises(UpstreamUnavailable, match="HTTP 502"):
            await upstreams.open(registry(f"http://127.0.0.1:{port}/bad"), CALLER)
    finally:
        await runner.cleanup()


async def test_target_headers_and_static_auth_reach_the_upstream(upstreams: Upstreams) -> None:
    seen: list[dict[str, Any]] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {}})

    app = web.Application()
    app.router.add_post("/mcp", record)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    sealed = BOX.seal_fields(
        {
            "url": f"http://127.0.0.1:{port}/mcp",
            "headers": {"X-Tenant": "acme"},
            "auth": {"mode": "static", "header": "X-Api-Key", "value": "k-123"},
        }
    )
    reg = registry("unused").model_copy(update={"mcp_target": sealed})
    try:
        await upstreams.request(reg, None, CALLER, "ping", None)
    finally:
        await runner.cleanup()
    assert seen[0]["X-Tenant"] == "acme"
    assert seen[0]["X-Api-Key"] == "k-123"
    assert seen[0]["Accept"] == "application/json, text/event-stream"
    assert "Mcp-Session-Id" not in seen[0]


async def serve_raw(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/mcp", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/mcp"


async def test_an_sse_answer_skips_comments_pings_and_server_requests(
    upstreams: Upstreams,
) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        events = [
            b": a comment\n\n",
            b"event: ping\ndata:\n\n",
            b'data: {"jsonrpc":"2.0","id":"s1","method":"sampling/createMessage"}\n\n',
            b'data: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n',
            b'data: {"jsonrpc":"2.0","id":-7,"result":{"other":"request"}}\n\n',
            b'id: 9\nevent: message\ndata: {"jsonrpc":"2.0",\r\ndata: "id":%d,\n' % body["id"],
            b'data: "result":{"ok":true}}\n\n',
        ]
        for event in events:
            await resp.write(event)
        await resp.write_eof()
        return resp

    runner, url = await serve_raw(stream)
    try:
        assert await upstreams.request(registry(url), None, CALLER, "ping", None) == {"ok": True}
    finally:
        await runner.cleanup()


async def test_an_upstream_on_an_unknown_protocol_version_is_unavailable(
    upstreams: Upstreams,
) -> None:
    async def modern(request: web.Request) -> web.Response:
        body = await request.json()
        result = {
            "protocolVersion": "2026-07-28",
            "capabilities": {},
            "serverInfo": {"name": "new", "version": "1"},
        }
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    runner, url = await serve_raw(modern)
    try:
        with pytest.raises(UpstreamUnavailable, match="unsupported protocol version"):
            await upstreams.open(registry(url), CALLER)
    finally:
        await runner.cleanup()


async def test_secrets_sealed_with_another_key_are_unavailable(upstreams: Upstreams) -> None:
    sealed = SecretBox("another key").seal_fields(
        {"url": "http://127.0.0.1:1/mcp", "headers": {"X-Api-Key": "k"}}
    )
    reg = registry("unused").model_copy(update={"mcp_target": sealed})
    with pytest.raises(UpstreamUnavailable, match="secrets cannot be opened"):
        await upstreams.open(reg, CALLER)
