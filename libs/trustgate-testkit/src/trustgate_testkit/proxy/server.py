"""The proxy served by uvicorn inside the caller's event loop, on a free port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from trustgate_core.models import Consumer
from trustgate_core.serving import EmbeddedServer
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_proxy.bootstrap import ProxyRuntime
from trustgate_proxy.main import operations_config, server_config
from trustgate_proxy.settings import ProxySettings
from trustgate_testkit.proxy.tenant import Tenant


async def poll(predicate: Callable[[], bool], within: float) -> None:
    """Until ``predicate()`` holds; ``TimeoutError`` after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - polling a plain attribute
            await asyncio.sleep(0.01)


@dataclass
class RunningProxy:
    url: str
    runtime: ProxyRuntime
    operations_url: str  # /metrics, /healthz, /readyz

    def base_url(self, consumer: Consumer) -> str:
        return f"{self.url}/{consumer.slug}/v1"


@asynccontextmanager
async def run_proxy(
    nats_url: str, *, tracing_env: Mapping[str, str] | None = None, **env: Any
) -> AsyncIterator[RunningProxy]:
    """The proxy with ``env`` as settings; tracing from ``tracing_env`` (``OTEL_*``; default
    the process environment). It keeps no config snapshot unless ``env`` names one."""
    settings = ProxySettings(
        NATS_URL=nats_url,
        SERVER_SECRET_KEY=DEV_SECRET_KEY,
        GATEWAY_BASE_DOMAIN="gw.test",
        **{"PROXY_CONFIG_SNAPSHOT": "", **env},
    )
    async with (
        ProxyRuntime(settings, tracing_env=tracing_env) as runtime,
        serving(runtime, settings) as (url, operations_url),
    ):
        yield RunningProxy(url, runtime, operations_url)


@asynccontextmanager
async def serving(runtime: ProxyRuntime, settings: ProxySettings) -> AsyncIterator[tuple[str, str]]:
    """``runtime.app`` and its operations port served by uvicorn on free ports of
    127.0.0.1; their base URLs. Both stop together (each takes up to a tick of uvicorn's
    main loop to notice, which every test using a proxy would otherwise pay twice)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    traffic = EmbeddedServer(server_config(runtime, settings))
    ops = settings.model_copy(update={"metrics_port": 0})
    operations = EmbeddedServer(operations_config(runtime, ops))
    servers = (traffic, operations)
    tasks = [
        asyncio.create_task(traffic.serve(sockets=[sock])),
        asyncio.create_task(operations.serve()),
    ]
    try:
        await poll(lambda: traffic.started and operations.started, 5.0)
        port = operations.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", f"http://127.0.0.1:{port}"
    finally:
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
        sock.close()


async def until_known(proxy: RunningProxy, tenant: Tenant, within: float = 5.0) -> None:
    """Until the proxy's replica holds everything the tenant published."""
    state = proxy.runtime.state

    def caught_up() -> bool:
        return (
            state.gateway_by_slug(tenant.slug) == tenant.gateway
            and all(state.registries.get(r.id) == r for r in tenant.registries.values())
            and all(state.consumers.get(c.id) == c for c in tenant.consumers.values())
            and all(state.auths.get(a.id) == a for a in tenant.auths.values())
        )

    await poll(caught_up, within)
