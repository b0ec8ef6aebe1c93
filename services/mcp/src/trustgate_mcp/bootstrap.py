"""The composition root: builds the MCP plane's parts and owns their lifecycle.

Like the proxy: the HTTP app answers at once (``/healthz``; ``/readyz`` says not ready);
core's replica runner connects to NATS (retrying), makes sure the streams exist and
follows the config stream; the plane serves once the replica has caught up. No database
on the request path.
"""

from __future__ import annotations

from types import TracebackType

import aiohttp
from prometheus_client import CollectorRegistry

from trustgate_core.counters import Counters, counters_from
from trustgate_core.crypto import SecretBox
from trustgate_core.events.subjects import CONFIG_STREAM, requests_stream
from trustgate_core.observability.metrics import Aggregates, render
from trustgate_core.replica import ReplicaState
from trustgate_core.service import HealthApp, ReplicaRunner
from trustgate_mcp import __version__
from trustgate_mcp.asgi.app import McpApp
from trustgate_mcp.oauth.server import OAuthServer
from trustgate_mcp.settings import McpSettings


class McpRuntime:
    """Everything one MCP process holds: ``async with McpRuntime(settings) as rt``, then
    serve ``rt.app`` (traffic) and ``rt.health`` (operations port)."""

    SERVICE_NAME = "trustgate-mcp"

    def __init__(self, settings: McpSettings) -> None:
        self.settings = settings
        self.state = ReplicaState()
        self.box = SecretBox(settings.secrets_material)
        self.counters: Counters = counters_from(settings)
        self.aggregates = Aggregates()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.aggregates)
        self.runner = ReplicaRunner(
            settings.nats_url,
            name=self.SERVICE_NAME,
            state=self.state,
            streams=[
                CONFIG_STREAM,
                requests_stream(settings.requests_max_age_seconds, settings.requests_max_bytes),
            ],
            listeners=[],
        )
        self.oauth = OAuthServer(self.state, settings, self.counters)
        self.http: aiohttp.ClientSession | None = None
        self.health = HealthApp(
            self.SERVICE_NAME,
            __version__,
            is_ready=lambda: self.runner.ready,
            dependencies=self.runner.dependencies,
            metrics=lambda: render(self.registry),
        )
        self.app = McpApp(system=self.health.for_traffic(), oauth=self.oauth)

    async def start(self) -> None:
        s = self.settings
        self.http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=s.upstream_pool_size),
            timeout=aiohttp.ClientTimeout(
                total=s.upstream_timeout, connect=s.upstream_connect_timeout
            ),
        )
        await self.runner.start()

    async def wait_ready(self) -> None:
        """Until the replica has caught up (wrap in ``asyncio.timeout``)."""
        await self.runner.wait_ready()

    async def stop(self) -> None:
        await self.runner.stop()
        if self.http is not None:
            await self.http.close()
        await self.counters.aclose()

    async def __aenter__(self) -> McpRuntime:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
