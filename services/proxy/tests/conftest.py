"""Proxy tests: a real NATS JetStream, a mock upstream speaking OpenAI's wire format, and the
proxy served by uvicorn in the test's event loop.

Config reaches the proxy only as config events published on the bus (as the admin's outbox
would); each test uses its own gateway, so tests can share one NATS server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM, RequestEvent, decode_request_event
from trustgate_core.events.subjects import requests_stream, requests_subject
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_policy_cache.settings import PolicyCacheSettings
from trustgate_testkit.fixtures import NatsServer, wait_for
from trustgate_testkit.proxy.mock_anthropic import AnthropicMock, serve_anthropic
from trustgate_testkit.proxy.mock_upstream import MockUpstream, serve_mock
from trustgate_testkit.proxy.server import RunningProxy, run_proxy
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

pytest_plugins = ["trustgate_testkit.fixtures"]


@pytest.fixture
def private_nats_url() -> Iterator[str]:
    """A private NATS server: the cache subjects are shared by everything on a bus, so a
    cache test's service answers only its own proxy (a module overrides ``nats_url``
    with it)."""
    server = NatsServer()
    server.start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest_asyncio.fixture
async def cache_service(
    nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[PolicyCacheRuntime]:
    """A policy-cache replica on ``nats_url``, its entries in its memory, index loaded."""
    for name in ("REDIS_URL", "REDIS_HOST"):
        monkeypatch.delenv(name, raising=False)
    runtime = PolicyCacheRuntime(PolicyCacheSettings(NATS_URL=nats_url))  # type: ignore[call-arg]
    await runtime.start()
    await wait_for(lambda: runtime.loaded, timeout=10, message="the index never loaded")
    try:
        yield runtime
    finally:
        await runtime.stop()


@pytest_asyncio.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    async with serve_mock("mock") as mock:
        yield mock


@pytest_asyncio.fixture
async def claude() -> AsyncIterator[AnthropicMock]:
    """A mock speaking Anthropic's Messages wire format."""
    async with serve_anthropic("anthropic") as mock:
        yield mock


@pytest.fixture
def nats_url(infra: Any) -> str:
    return str(infra.nats_url)


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[NATS]:
    nc = await connect(nats_url, name="proxy-tests")
    await ensure_streams(nc.jetstream(), [CONFIG_STREAM, requests_stream()])
    try:
        yield nc
    finally:
        await nc.close()


@pytest_asyncio.fixture
async def tenant(bus: NATS) -> Tenant:
    return await new_tenant(bus)


@pytest_asyncio.fixture
async def proxy(nats_url: str) -> AsyncIterator[RunningProxy]:
    async with run_proxy(nats_url) as running:
        async with asyncio.timeout(10):
            await running.runtime.wait_ready()
        yield running


@dataclass
class EventLog:
    events: list[RequestEvent] = field(default_factory=list)

    def by_trace(self, trace_id: str) -> list[RequestEvent]:
        return [e for e in self.events if e.trace_id == trace_id]


@asynccontextmanager
async def collect_events(nc: NATS, gateway_id: UUID) -> AsyncIterator[EventLog]:
    log = EventLog()

    async def on_msg(msg: Msg) -> None:
        log.events.append(decode_request_event(msg.data))

    sub = await nc.subscribe(requests_subject(gateway_id), cb=on_msg)
    await nc.flush()
    try:
        yield log
    finally:
        await sub.unsubscribe()


@pytest.fixture
def events() -> Any:
    """``async with events(nc, gateway_id) as log``: the request events published meanwhile."""
    return collect_events
