"""The proxy in process, without the bus: its configuration applied straight to the
replica's state, its finished calls kept in memory.

Request-path tests that are not about delivery, replay or outages use it: no NATS, no
waiting for a replica to catch up, so each costs milliseconds. The app is the real one
(``ProxyRuntime(bus=False)``: same pipeline, same forwarders, served by uvicorn on a free
port so the official SDKs reach it over HTTP, streams included).

A test module opts in with one line, replacing the ``proxy`` and ``tenant`` fixtures of
the proxy's conftest::

    proxy, tenant = local_fixtures()
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_proxy.bootstrap import ProxyRuntime
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.routing import RoundRobin
from trustgate_proxy.services.config_view import RouterFactory
from trustgate_proxy.services.ports import ChainCompiler, MemorySink, no_policies
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


@asynccontextmanager
async def local_proxy(
    *, router: RouterFactory = RoundRobin, chain: ChainCompiler = no_policies, **env: Any
) -> AsyncIterator[LocalProxy]:
    """The proxy in process, with ``env`` as settings (tracing off), and the given router
    factory and policy-chain compiler."""
    settings = ProxySettings(SERVER_SECRET_KEY=DEV_SECRET_KEY, GATEWAY_BASE_DOMAIN="gw.test", **env)
    sink = MemorySink()
    async with ProxyRuntime(
        settings, router=router, chain=chain, bus=False, sink=sink, tracing_env={}
    ) as runtime:
        async with serving(runtime, settings) as url:
            yield LocalProxy(url, runtime, sink)


def local_fixtures() -> tuple[Any, Any]:
    """``proxy`` and ``tenant`` fixtures on an in-process proxy, for a test module."""

    @pytest_asyncio.fixture
    async def proxy() -> AsyncIterator[LocalProxy]:
        async with local_proxy() as running:
            yield running

    @pytest_asyncio.fixture
    async def tenant(proxy: LocalProxy) -> Tenant:
        return await proxy.new_tenant()

    return proxy, tenant
