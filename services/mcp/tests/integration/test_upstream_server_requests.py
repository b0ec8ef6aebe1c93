"""A request the upstream sends to its client while a tool runs (elicitation):
the plane has no client to relay it to, so it answers ``-32601`` at once and the tool goes
on, instead of the call waiting for ``MCP_UPSTREAM_TIMEOUT``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from uuid import uuid4

import aiohttp
import pytest
import pytest_asyncio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

from trustgate_core.crypto import SecretBox
from trustgate_core.embedded import free_port
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_mcp.adapters.upstream import Upstreams
from trustgate_mcp.services.ports import Caller
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
# far longer than the test allows a call: a call that waited for it fails the test
UPSTREAM_TIMEOUT = 60.0
ANSWERED_WITHIN = 10.0


class Name(BaseModel):
    name: str


def asking_server() -> MCPServer:
    server: MCPServer = MCPServer("asking")

    @server.tool()
    async def ask(ctx: Context) -> str:
        try:
            answer = await ctx.elicit("your name?", schema=Name)
        except Exception as exc:  # the client's error answer
            return f"no elicitation: {exc}"
        return f"elicited: {answer.action}"

    return server


class AskingThread(UpstreamThread):
    """`UpstreamThread` serving `asking_server`."""

    def __init__(self, port: int) -> None:
        app = asking_server().streamable_http_app()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        self.url = f"http://127.0.0.1:{port}/mcp"
        self._thread = threading.Thread(target=self.server.run, daemon=True)


@pytest.fixture(scope="module")
def asking() -> Iterator[str]:
    with AskingThread(free_port()) as url:
        yield url


@pytest_asyncio.fixture
async def upstreams() -> AsyncIterator[Upstreams]:
    async with aiohttp.ClientSession() as http:
        client = Upstreams(http, BOX, list_ttl=60.0, timeout=UPSTREAM_TIMEOUT)
        yield client
        await client.aclose()


def registry(url: str) -> Registry:
    return Registry(
        id=uuid4(),
        gateway_id=GATEWAY.id,
        created_at=NOW,
        updated_at=NOW,
        name="asking",
        type="MCP",
        mcp_target={"url": url, "transport": "streamable-http"},
    )


async def test_an_elicitation_is_refused_at_once_and_the_tool_goes_on(
    upstreams: Upstreams, asking: str
) -> None:
    reg = registry(asking)
    session = await upstreams.open(reg, CALLER)
    async with asyncio.timeout(ANSWERED_WITHIN):
        result = await upstreams.request(reg, session, CALLER, "tools/call", {"name": "ask"})
    text = result["content"][0]["text"]
    assert text == "no elicitation: the gateway does not support elicitation/create"
