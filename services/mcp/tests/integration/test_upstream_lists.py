"""Upstream lists: every page, a repeating or endless cursor cut, kept for the TTL, shared
by concurrent callers, dropped by ``invalidate`` and by the server's ``list_changed``.

The upstream is the SDK's lowlevel ``Server`` with list handlers of our own (the
high-level ``MCPServer`` never pages).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import aiohttp
import mcp.types as types
import pytest
import pytest_asyncio
import uvicorn
from aiohttp import web
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller
from trustgate_testkit.fixtures import wait_for

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CALLER = Caller(
    gateway=GATEWAY,
    consumer=Consumer(
        id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
    ),
)
BOX = SecretBox("upstream-tests")
PAGES = 5


def registry(url: str) -> Registry:
    return Registry(
        id=uuid4(),
        gateway_id=GATEWAY.id,
        created_at=NOW,
        updated_at=NOW,
        name="paged",
        type="MCP",
        mcp_target={"url": url, "transport": "streamable-http"},
    )


@dataclass
class Paged:
    """The upstream's state: its tools (paged two by two) and how often lists were asked."""

    tools: list[str] = field(default_factory=lambda: [f"t{i}" for i in range(2 * PAGES)])
    calls: dict[str, int] = field(default_factory=dict)

    def count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1


def paged_server(state: Paged) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        state.count("tools/list")
        page = int(params.cursor[1:]) if params and params.cursor else 0
        names = state.tools[2 * page : 2 * page + 2]
        more = 2 * page + 2 < len(state.tools)
        return types.ListToolsResult(
            tools=[types.Tool(name=n, input_schema={"type": "object"}) for n in names],
            next_cursor=f"p{page + 1}" if more else None,
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # "grow" adds a tool and says so on this request's stream
        state.tools.append(f"t{len(state.tools)}")
        await ctx.session.send_notification(
            types.ToolListChangedNotification(), related_request_id=ctx.request_id
        )
        return types.CallToolResult(content=[types.TextContent(type="text", text="grown")])

    async def list_prompts(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        state.count("prompts/list")
        # the same cursor every time: a loop the client must cut
        return types.ListPromptsResult(
            prompts=[types.Prompt(name=f"p{state.calls['prompts/list']}")], next_cursor="again"
        )

    async def list_resources(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        state.count("resources/list")
        n = state.calls["resources/list"]
        # a new cursor every time: endless
        return types.ListResourcesResult(
            resources=[types.Resource(name=f"r{n}", uri=f"res://{n}")], next_cursor=f"c{n}"
        )

    return Server(
        "paged",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_prompts=list_prompts,
        on_list_resources=list_resources,
    )


class AppThread:
    """An ASGI app served by uvicorn in a thread (as the testkit's `UpstreamThread`)."""

    def __init__(self, app: Any, port: int) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)


@pytest.fixture(scope="module")
def paged() -> Iterator[tuple[str, Paged]]:
    state = Paged()
    port = free_port()
    with AppThread(paged_server(state).streamable_http_app(), port):
        yield f"http://127.0.0.1:{port}/mcp", state


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def upstreams(http: aiohttp.ClientSession) -> AsyncIterator[Upstreams]:
    client = Upstreams(http, BOX, list_ttl=60.0, timeout=5.0)
    yield client
    await client.aclose()


async def tool_names(upstreams: Upstreams, reg: Registry) -> list[str]:
    return [t["name"] for t in await upstreams.listing(reg, CALLER, "tools")]


async def test_every_page_is_fetched_and_kept(
    upstreams: Upstreams, paged: tuple[str, Paged]
) -> None:
    url, state = paged
    reg = registry(url)
    before = state.calls.get("tools/list", 0)
    assert await tool_names(upstreams, reg) == state.tools
    assert len(state.tools) >= 2 * PAGES
    assert state.calls["tools/list"] - before == len(state.tools) // 2
    # kept: no more upstream calls
    await tool_names(upstreams, reg)
    assert state.calls["tools/list"] - before == len(state.tools) // 2


async def test_concurrent_callers_share_one_fetch(
    upstreams: Upstreams, paged: tuple[str, Paged]
) -> None:
    url, state = paged
    reg = registry(url)
    before = state.calls.get("tools/list", 0)
    lists = await asyncio.gather(*(tool_names(upstreams, reg) for _ in range(20)))
    assert all(names == state.tools for names in lists)
    assert state.calls["tools/list"] - before == len(state.tools) // 2


async def test_a_repeating_cursor_is_cut_with_a_warning(
    upstreams: Upstreams, paged: tuple[str, Paged], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = paged
    with caplog.at_level(logging.WARNING):
        prompts = await upstreams.listing(registry(url), CALLER, "prompts")
    assert len(prompts) == 2
    assert "repeated a prompts/list cursor" in caplog.text


async def test_an_endless_list_is_cut_at_100_pages(
    upstreams: Upstreams, paged: tuple[str, Paged], caplog: pytest.LogCaptureFixture
) -> None:
    url, _ = paged
    with caplog.at_level(logging.WARNING):
        resources = await upstreams.listing(registry(url), CALLER, "resources")
    assert len(resources) == 100
    assert "more than 100 pages" in caplog.text


async def test_list_changed_on_a_call_drops_the_kept_tools(
    upstreams: Upstreams, paged: tuple[str, Paged]
) -> None:
    url, state = paged
    reg = registry(url)
    first = await tool_names(upstreams, reg)
    session = await upstreams.open(reg, CALLER)
    result = await upstreams.request(reg, session, CALLER, "tools/call", {"name": "grow"})
    assert result["content"][0]["text"] == "grown"
    after = await tool_names(upstreams, reg)
    assert len(after) == len(first) + 1 and after == state.tools


async def test_invalidate_and_the_ttl_refetch(
    http: aiohttp.ClientSession, paged: tuple[str, Paged]
) -> None:
    url, state = paged
    reg = registry(url)
    upstreams = Upstreams(http, BOX, list_ttl=60.0, timeout=5.0)
    first = await tool_names(upstreams, reg)
    state.tools.append(f"t{len(state.tools)}")  # silently: no list_changed
    assert await tool_names(upstreams, reg) == first
    upstreams.invalidate(reg.id)
    assert await tool_names(upstreams, reg) == state.tools
    await upstreams.aclose()

    short = Upstreams(http, BOX, list_ttl=0.05, timeout=5.0)
    kept = await tool_names(short, reg)
    state.tools.append(f"t{len(state.tools)}")
    assert await wait_for(
        lambda: _longer(short, reg, len(kept)), timeout=2, message="the list refetched"
    )
    await short.aclose()


async def _longer(upstreams: Upstreams, reg: Registry, n: int) -> bool:
    return len(await tool_names(upstreams, reg)) > n


async def test_a_new_registry_object_refetches(
    upstreams: Upstreams, paged: tuple[str, Paged]
) -> None:
    url, state = paged
    reg = registry(url)
    await tool_names(upstreams, reg)
    state.tools.append(f"t{len(state.tools)}")
    changed = reg.model_copy(update={"description": "edited"})
    assert await tool_names(upstreams, changed) == state.tools


async def test_items_without_a_name_or_uri_are_dropped(upstreams: Upstreams) -> None:
    async def answer(request: web.Request) -> web.Response:
        body = await request.json()
        if "id" not in body:
            return web.Response(status=202)
        result: dict[str, Any] | None = {
            "initialize": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "serverInfo": {"name": "raw", "version": "1"},
            },
            "tools/list": {"tools": [{"name": "ok"}, {"title": "no name"}, "text", {"name": 3}]},
            "resources/list": {"resources": [{"uri": "a://b", "name": "b"}, {"name": "no uri"}]},
        }.get(body["method"])
        if result is None:  # the other lists: not implemented
            error = {"code": -32601, "message": "method not found"}
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    app = web.Application()
    app.router.add_post("/mcp", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    reg = registry(f"http://127.0.0.1:{port}/mcp")
    try:
        assert await upstreams.listing(reg, CALLER, "tools") == [{"name": "ok"}]
        assert await upstreams.listing(reg, CALLER, "resources") == [{"uri": "a://b", "name": "b"}]
    finally:
        await runner.cleanup()
