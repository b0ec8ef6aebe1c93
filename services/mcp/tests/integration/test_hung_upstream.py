"""An upstream that accepts connections and never answers: under ``fail_mode: open`` it
costs the healthy server's calls one list deadline (``MCP_LIST_TIMEOUT``) at most, once,
and is then remembered as failing; under ``closed`` the client gets ``-32005`` naming it,
fast. A server that was listed before it hung keeps its tools listed (names unchanged),
and a call to one of them answers ``-32005`` at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from mcp.shared.exceptions import MCPError

from trustgate_core.embedded import free_port
from trustgate_testkit.mcp.clients import agent
from trustgate_testkit.mcp.servers import UpstreamThread

if TYPE_CHECKING:
    from conftest import LocalPlane

MakePlane = Callable[..., AbstractAsyncContextManager["LocalPlane"]]

LIST_TIMEOUT = 2.0
# a call that waited for the hung server would take at least LIST_TIMEOUT
FAST = LIST_TIMEOUT / 2
ENV = {
    "MCP_LIST_TIMEOUT": str(LIST_TIMEOUT),
    "MCP_LIST_TTL": "0",  # every request asks for the lists again
    "MCP_LIST_BACKOFF": "60",
    "MCP_UPSTREAM_TIMEOUT": "30",
}


@asynccontextmanager
async def hung(port: int = 0) -> AsyncIterator[str]:
    """A TCP server that accepts every connection, reads nothing and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/mcp"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def within(seconds: float, work: Any) -> Any:
    """``work``'s outcome, which must come within ``seconds``."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        result = await work
    return result, time.monotonic() - started


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_hung_server_costs_the_healthy_one_one_deadline_at_most(
    make_plane: MakePlane, mode: str
) -> None:
    async with make_plane(**ENV) as plane, hung() as stuck:
        tenant = await plane.new_tenant()
        with UpstreamThread("weather", free_port()) as weather_url:
            await tenant.add_mcp_registry("weather", weather_url)
            await tenant.add_mcp_registry("stuck", stuck)
            await tenant.add_consumer("agent", ["weather", "stuck"], type="MCP", fail_mode="open")
            client = agent(plane.mcp_url(tenant), tenant.keys["agent"], mode=mode)
            async with asyncio.timeout(LIST_TIMEOUT + 20), client:
                # the first handshake or list waits for the deadline, no longer
                listed, _ = await within(LIST_TIMEOUT + 5, client.list_tools())
                assert "forecast" in {t.name for t in listed.tools}
                for i in range(5):  # then nobody waits for the hung server again
                    result, _ = await within(FAST, client.call_tool("forecast", {"city": "Oslo"}))
                    assert result.is_error is False, i
                    listed, _ = await within(FAST, client.list_tools())
                    assert "forecast" in {t.name for t in listed.tools}


async def test_a_hung_server_fails_a_closed_consumer_fast_and_by_name(
    make_plane: MakePlane,
) -> None:
    async with make_plane(**ENV) as plane, hung() as stuck:
        tenant = await plane.new_tenant()
        with UpstreamThread("weather", free_port()) as weather_url:
            await tenant.add_mcp_registry("weather", weather_url)
            await tenant.add_mcp_registry("stuck", stuck)
            await tenant.add_consumer("agent", ["weather", "stuck"], type="MCP", fail_mode="closed")
            # the stateless revision: no initialize, so the list is what fails
            client = agent(plane.mcp_url(tenant), tenant.keys["agent"], mode="auto")
            async with client:
                for limit in (LIST_TIMEOUT + 5, FAST, FAST):
                    with pytest.raises(MCPError) as failed:
                        await within(limit, client.list_tools())
                    assert failed.value.error.code == -32005
                    assert "'stuck'" in failed.value.error.message
                    assert stuck not in str(failed.value.error)


async def test_a_server_that_hangs_after_it_was_listed_keeps_its_tools_listed(
    make_plane: MakePlane,
) -> None:
    port = free_port()
    async with make_plane(**ENV) as plane:
        tenant = await plane.new_tenant()
        with UpstreamThread("weather", free_port()) as weather_url:
            await tenant.add_mcp_registry("weather", weather_url)
            await tenant.add_mcp_registry("docs", f"http://127.0.0.1:{port}/mcp")
            await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", fail_mode="open")
            docs = UpstreamThread("docs", port)
            docs.__enter__()
            try:
                client = agent(plane.mcp_url(tenant), tenant.keys["agent"])
                async with client:
                    before = sorted(t.name for t in (await client.list_tools()).tools)
                    assert "echo" in before and "docs_search" in before
                    docs.__exit__()
                    async with hung(port):
                        listed, _ = await within(LIST_TIMEOUT + 5, client.list_tools())
                        # the same names: the shared `search` is still told apart
                        assert sorted(t.name for t in listed.tools) == before
                        with pytest.raises(MCPError) as failed:
                            await within(FAST, client.call_tool("echo", {"text": "x"}))
                        assert failed.value.error.code == -32005
                        assert "'docs'" in failed.value.error.message
                        result, _ = await within(
                            FAST, client.call_tool("forecast", {"city": "Oslo"})
                        )
                        assert result.is_error is False
            finally:
                docs.__exit__()
