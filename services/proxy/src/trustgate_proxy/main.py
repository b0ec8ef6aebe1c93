"""Runs the proxy: ``serve()`` for ``trustgate proxy``; ``run_server()`` for ``trustgate run``."""

from __future__ import annotations

import gc
import logging
import socket

import uvicorn

from trustgate_core import serving
from trustgate_proxy.bootstrap import ProxyRuntime
from trustgate_proxy.settings import ProxySettings

log = logging.getLogger(__name__)


def server_config(runtime: ProxyRuntime, settings: ProxySettings) -> uvicorn.Config:
    """The traffic port (``/metrics`` answers 404 there), over TLS when
    ``SERVER_PROXY_TLS_CERT`` is set."""
    return serving.traffic_config(
        runtime.app,
        settings,
        host=settings.host,
        port=settings.port,
        tls=settings.listener_tls(),
    )


def operations_config(runtime: ProxyRuntime, settings: ProxySettings) -> uvicorn.Config:
    """The operations port: ``/metrics``, ``/healthz``, ``/readyz``."""
    return serving.operations_config(
        runtime.health, settings, port=settings.metrics_port, loop="none", log_config=None
    )


async def run_server(
    settings: ProxySettings | None = None, *, sockets: list[socket.socket] | None = None
) -> None:
    """Serve the proxy (and its operations port) until cancelled, then shut down
    gracefully."""
    settings = settings or ProxySettings()
    async with ProxyRuntime(settings) as runtime:
        await serving.serve_until_cancelled(
            server_config(runtime, settings),
            sockets,
            beside=[operations_config(runtime, settings)],
        )


def serve() -> None:
    """``trustgate proxy``: one proxy process on ``SERVER_PROXY_PORT`` (uvloop, httptools)."""
    serve_settings(ProxySettings())


def serve_settings(settings: ProxySettings) -> None:
    """Run the proxy in this process until SIGINT or SIGTERM."""
    # The hot path allocates many short-lived objects and no cycles worth chasing often:
    # collect the young generation less often (fewer pauses in the latency tail).
    gc.set_threshold(20_000, 50, 100)
    serving.run_process(run_server(settings), settings.log_level)
