"""Runs the MCP plane: ``serve()`` for ``trustgate mcp``; ``run_server()`` for ``trustgate run``."""

from __future__ import annotations

import gc
import logging
import socket

import uvicorn

from trustgate_core import serving
from trustgate_mcp.bootstrap import McpRuntime
from trustgate_mcp.settings import McpSettings

log = logging.getLogger(__name__)


def server_config(runtime: McpRuntime, settings: McpSettings) -> uvicorn.Config:
    """The traffic port (``/metrics`` answers 404 there); TLS with ``SERVER_MCP_TLS_*``."""
    return serving.traffic_config(
        runtime.app,
        settings,
        host=settings.host,
        port=settings.port,
        tls=settings.listener_tls(),
    )


def operations_config(runtime: McpRuntime, settings: McpSettings) -> uvicorn.Config:
    """The operations port: ``/metrics``, ``/healthz``, ``/readyz``."""
    return serving.operations_config(
        runtime.health, settings, port=settings.metrics_port, loop="none", log_config=None
    )


async def run_server(
    settings: McpSettings | None = None, *, sockets: list[socket.socket] | None = None
) -> None:
    """Serve the plane (and its operations port) until cancelled, then shut down."""
    settings = settings or McpSettings()
    async with McpRuntime(settings) as runtime:
        await serving.serve_until_cancelled(
            server_config(runtime, settings),
            sockets,
            beside=[operations_config(runtime, settings)],
        )


def serve() -> None:
    """``trustgate mcp``: one MCP process on ``SERVER_MCP_PORT`` (uvloop, httptools)."""
    serve_settings(McpSettings())


def serve_settings(settings: McpSettings) -> None:
    """Run the plane in this process until SIGINT or SIGTERM."""
    # as on the proxy: the request path allocates many short-lived objects and few cycles,
    # so the young generation is collected less often (fewer pauses in the latency tail)
    gc.set_threshold(20_000, 50, 100)
    serving.run_process(run_server(settings), settings.log_level)
