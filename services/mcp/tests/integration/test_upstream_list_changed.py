"""``list_changed`` that belongs to no request: an upstream tells its sessions on their
standalone stream (the GET of streamable HTTP) that its tools changed, here because
another client's call added one. The plane reads that stream for its listing session and
drops the kept tools, so the next list has the new tool without waiting for the TTL (on
each replica that reads the stream: the drop is not shared between replicas)."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import aiohttp
import mcp.types as types
import pytest
import pytest_asyncio
import uvicorn
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.mcp.clients import agent

if TYPE_CHECKING:
    from conftest import LocalPlane

MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]

NOW = datetime.now(UTC)
GATEWAY = Gateway(id=uuid4(), gateway_id=uuid4(), created_at=NOW, updated_at=NOW, slug="gw")
CALLER = Caller(
    gateway=GATEWAY,
    consumer=Consumer(
        id=uuid4(), gateway_id=GATEWAY.id, created_at=NOW, updated_at=NOW, name="c", slug="c"
    ),
)
BOX = SecretBox("upstream-tests")


@dataclass
class Growing:
    """The upstream's tools, the sessions that listed them, and the GET streams opened."""

    tools: list[str] = field(default_factory=lambda: ["t0"])
    listers: list[Any] = field(default_factory=list)
    streams: int = 0


def growing_server(state: Growing) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        if ctx.session not in state.listers:
            state.listers.append(ctx.session)
        return types.ListToolsResult(
            tools=[types.Tool(name=n, input_schema={"type": "object"}) for n in state.tools]
        )

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        # "grow" adds a tool and tells every session that listed tools, on its standalone
        # stream (no related request): not on this call's answer
        state.tools.append(f"t{len(state.tools)}")
        for session in state.listers:
            await session.send_notification(types.ToolListChangedNotification())
        return types.CallToolResult(content=[types.TextContent(type="text", text="grown")])

    return Server("growing", on_list_tools=list_tools, on_call_tool=call_tool)


def counting_gets(app: Any, state: Growing) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            state.streams += 1
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def growing() -> Iterator[tuple[str, Growing]]:
    state = Growing()
    port = free_port()
    app = counting_gets(growing_server(state).streamable_http_app(), state)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}/mcp", state
    server.should_exit = True
    thread.join(10)


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with aiohttp.ClientSession() as http:
        client = Upstreams(http, BOX, list_ttl=3600.0, timeout=10.0, listen=True)
        yield client
        await client.aclose()


def registry(url: str) -> Registry:
    return Registry(
        id=uuid4(),
        gateway_id=GATEWAY.id,
        created_at=NOW,
        updated_at=NOW,
        name="growing",
        type="MCP",
        mcp_target={"url": url, "transport": "streamable-http"},
    )


async def test_list_changed_on_the_standalone_stream_drops_the_kept_tools(
    growing: tuple[str, Growing], upstreams: Upstreams
) -> None:
    url, state = growing
    reg = registry(url)

    async def names() -> list[str]:
        return [t["name"] for t in await upstreams.listing(reg, CALLER, "tools")]

    assert await names() == ["t0"]
    await wait_for(lambda: state.streams >= 1, timeout=10, message="the plane opened its stream")
    # another client's session (as an agent's call through another replica would be)
    other = await upstreams.open(reg, CALLER)
    grown = await upstreams.request(reg, other, CALLER, "tools/call", {"name": "grow"})
    assert grown["content"][0]["text"] == "grown"

    async def refreshed() -> bool:
        return await names() == ["t0", "t1"]

    # kept for an hour (list_ttl): only the notification can make the list change
    await wait_for(refreshed, timeout=10, message="the kept tools were dropped")


async def test_an_agent_sees_a_tool_the_upstream_announced_on_its_stream(
    growing: tuple[str, Growing], make_plane: MakePlane, upstreams: Upstreams
) -> None:
    url, state = growing
    env = {"MCP_LIST_CHANGED_STREAM": "true", "MCP_LIST_TTL": "3600"}
    async with make_plane(**env) as plane:
        tenant = await plane.new_tenant()
        await tenant.add_mcp_registry("growing", url)
        await tenant.add_consumer("agent", ["growing"], type="MCP")
        async with agent(plane.mcp_url(tenant), tenant.keys["agent"]) as client:

            async def names() -> list[str]:
                return sorted(tool.name for tool in (await client.list_tools()).tools)

            before = await names()
            await wait_for(lambda: state.streams >= 1, timeout=10, message="the plane's stream")
            reg = registry(url)  # another client of the upstream (not through the plane)
            other = await upstreams.open(reg, CALLER)
            await upstreams.request(reg, other, CALLER, "tools/call", {"name": "grow"})

            async def announced() -> bool:
                return len(await names()) == len(before) + 1

            await wait_for(announced, timeout=10, message="the new tool listed")
