"""The proxy in process, without the bus: its configuration applied straight to the
replica's state, its finished calls kept in memory.

Request-path tests that are not about delivery, replay or outages use it: no NATS, no
waiting for a replica to catch up, so each costs milliseconds. The app is the real one
(``ProxyRuntime(bus=False)``: same pipeline, same forwarders, served by uvicorn on a free
port so the official SDKs reach it over HTTP, streams included).

A test module opts in with one line, replacing the ``proxy``, ``tenant``, ``bus`` and
``events`` fixtures of the proxy's conftest (``events(bus, gateway_id)`` then reads the
request events of the calls the proxy finished, as the bus would carry them)::

    proxy, tenant, bus, events = local_fixtures()
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import pytest
import pytest_asyncio

from trustgate_core.events import RequestEvent, decode_request_event
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_proxy.bootstrap import ProxyRuntime
from trustgate_proxy.domain.call import Call, event_payload
from trustgate_proxy.services.config_view import RouterFactory
from trustgate_proxy.services.ports import ChainCompiler, MemorySink
from trustgate_proxy.settings import ProxySettings
from trustgate_testkit.proxy.server import RunningProxy, serving
from trustgate_testkit.proxy.tenant import Tenant, new_tenant


@dataclass
class LocalProxy(RunningProxy):
    sink: MemorySink

    async def new_tenant(self, slug: str | None = None) -> Tenant:
        """A gateway applied to this proxy's state (its changes too, synchronously)."""
        return await new_tenant(None, slug=slug, local=self.runtime.apply)

    def calls(self, trace_id: str) -> list[Call]:
        """The finished calls with ``trace_id`` (the ``X-AG-Trace-Id`` of a response)."""
        return [c for c in self.sink.calls if c.trace_id == trace_id]


class EventLog:
    """The request events of one gateway's calls finished since the log was opened, as
    the publisher would put them on the bus (the same payload, encoded and decoded)."""

    def __init__(self, sink: MemorySink, gateway_id: UUID) -> None:
        self._sink = sink
        self._gateway_id = gateway_id
        self._start = len(sink.calls)
        self._decoded: list[RequestEvent] = []
        self._seen = self._start

    @property
    def events(self) -> list[RequestEvent]:
        calls = self._sink.calls
        for call in calls[self._seen :]:
            if call.gateway_id == self._gateway_id:
                self._decoded.append(decode_request_event(orjson.dumps(event_payload(call))))
        self._seen = len(calls)
        return self._decoded

    def by_trace(self, trace_id: str) -> list[RequestEvent]:
        return [e for e in self.events if e.trace_id == trace_id]


@asynccontextmanager
async def local_proxy(
    *, router: RouterFactory | None = None, chain: ChainCompiler | None = None, **env: Any
) -> AsyncIterator[LocalProxy]:
    """The proxy in process, with ``env`` as settings (tracing off), and the given router
    factory and policy-chain compiler (default: the policy engine, with the limit counters
    in this process unless ``env`` names a Redis)."""
    settings = ProxySettings(SERVER_SECRET_KEY=DEV_SECRET_KEY, GATEWAY_BASE_DOMAIN="gw.test", **env)
    sink = MemorySink()
    async with ProxyRuntime(
        settings, router=router, chain=chain, bus=False, sink=sink, tracing_env={}
    ) as runtime:
        async with serving(runtime, settings) as (url, operations_url):
            yield LocalProxy(url, runtime, operations_url, sink)


def local_fixtures() -> tuple[Any, Any, Any, Any]:
    """``proxy``, ``tenant``, ``bus`` and ``events`` fixtures on an in-process proxy, for a
    test module (``bus`` is nothing: the events come from the proxy's memory sink)."""

    @pytest_asyncio.fixture
    async def proxy() -> AsyncIterator[LocalProxy]:
        async with local_proxy() as running:
            yield running

    @pytest_asyncio.fixture
    async def tenant(proxy: LocalProxy) -> Tenant:
        return await proxy.new_tenant()

    @pytest.fixture
    def bus() -> None:
        return None

    @pytest.fixture
    def events(
        proxy: LocalProxy,
    ) -> Callable[[Any, UUID], AbstractAsyncContextManager[EventLog]]:
        @asynccontextmanager
        async def collect(_bus: Any, gateway_id: UUID) -> AsyncIterator[EventLog]:
            yield EventLog(proxy.sink, gateway_id)

        return collect

    return proxy, tenant, bus, events
