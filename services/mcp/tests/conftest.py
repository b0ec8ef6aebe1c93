"""Shared fixtures of the MCP plane's tests: the two real ``mcp``-SDK upstreams (weather
and docs, one tool name shared), the plane in process (``McpRuntime(bus=False)``: its
configuration applied straight to its state, its finished calls kept in memory, served
by uvicorn on free ports so the official SDK client reaches it over HTTP), a tenant with
both servers bound to one MCP consumer, and the SDK client with that consumer's key."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client

from trustgate_core.embedded import free_port
from trustgate_core.serving import EmbeddedServer
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_mcp.bootstrap import McpRuntime
from trustgate_mcp.main import operations_config, server_config
from trustgate_mcp.observability.sinks import MemorySink
from trustgate_mcp.settings import McpSettings
from trustgate_testkit.fixtures import wait_for
from trustgate_testkit.mcp.clients import agent as sdk_agent
from trustgate_testkit.mcp.servers import UpstreamThread
from trustgate_testkit.proxy.tenant import Tenant, new_tenant


@dataclass(frozen=True)
class Upstreams:
    weather: str
    docs: str


@dataclass
class LocalPlane:
    url: str
    operations_url: str
    runtime: McpRuntime
    sink: MemorySink

    async def new_tenant(self) -> Tenant:
        return await new_tenant(None, local=self.runtime.apply)

    def mcp_url(self, tenant: Tenant, consumer: str = "agent") -> str:
        return f"{self.url}/{tenant.consumers[consumer].slug}/mcp"


@asynccontextmanager
async def local_plane(
    *, secret: str = DEV_SECRET_KEY, bus: bool = False, **env: Any
) -> AsyncIterator[LocalPlane]:
    """The plane in process with ``env`` as settings; ``bus``: on NATS (``NATS_URL``),
    its configuration from the config stream and its request events published (the
    memory sink then stays empty)."""
    # off unless a test asks: a plane reading an upstream's standalone stream holds a GET
    # open, and the testkit's upstream threads wait for open connections when they stop
    # (an upstream restarted mid-test would take 10 s); test_upstream_list_changed turns it on
    env.setdefault("MCP_LIST_CHANGED_STREAM", "false")
    settings = McpSettings(SERVER_SECRET_KEY=secret, MCP_BASE_DOMAIN="mcp.test", **env)
    sink = MemorySink()
    async with McpRuntime(settings, bus=bus, sink=None if bus else sink) as runtime:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        traffic = EmbeddedServer(server_config(runtime, settings))
        ops = settings.model_copy(update={"metrics_port": 0})
        operations = EmbeddedServer(operations_config(runtime, ops))
        tasks = [
            asyncio.create_task(traffic.serve(sockets=[sock])),
            asyncio.create_task(operations.serve()),
        ]
        try:
            await wait_for(lambda: traffic.started and operations.started, timeout=5)
            port = operations.servers[0].sockets[0].getsockname()[1]
            yield LocalPlane(
                f"http://127.0.0.1:{sock.getsockname()[1]}",
                f"http://127.0.0.1:{port}",
                runtime,
                sink,
            )
        finally:
            traffic.should_exit = operations.should_exit = True
            await asyncio.gather(*tasks)


@pytest.fixture
def make_plane() -> Callable[..., AbstractAsyncContextManager[LocalPlane]]:
    """``async with make_plane(**env) as plane``: another plane in process (a replica)."""
    return local_plane


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    with (
        UpstreamThread("weather", free_port()) as weather,
        UpstreamThread("docs", free_port()) as docs,
    ):
        yield Upstreams(weather, docs)


@pytest_asyncio.fixture
async def plane() -> AsyncIterator[LocalPlane]:
    async with local_plane() as running:
        yield running


async def mcp_tenant(plane: LocalPlane, upstreams: Upstreams, **consumer: Any) -> Tenant:
    """A gateway with both servers bound (weather first) to the MCP consumer ``agent``."""
    tenant = await plane.new_tenant()
    await tenant.add_mcp_registry("weather", upstreams.weather)
    await tenant.add_mcp_registry("docs", upstreams.docs)
    await tenant.add_consumer("agent", ["weather", "docs"], type="MCP", **consumer)
    return tenant


@pytest_asyncio.fixture
async def tenant(plane: LocalPlane, upstreams: Upstreams) -> Tenant:
    return await mcp_tenant(plane, upstreams)


def agent(url: str, key: str, *, mode: Any = "auto") -> Client:
    """The SDK's client on ``url`` (``/{slug}/mcp``) with the consumer's API key (its
    default mode: ``server/discover``, then 2026-07-28)."""
    return sdk_agent(url, key, mode=mode)


@pytest.fixture
def connect() -> Callable[..., Client]:
    """``connect(url, key, mode=...)``: the SDK client (see ``agent``)."""
    return agent
