"""Runs the policy-cache service: ``serve()`` for ``trustgate policy-cache``;
``run_server()`` for ``trustgate run``."""

from __future__ import annotations

import socket

import uvicorn

from trustgate_core import serving
from trustgate_policy_cache.bootstrap import PolicyCacheRuntime
from trustgate_policy_cache.settings import PolicyCacheSettings


def server_config(runtime: PolicyCacheRuntime, settings: PolicyCacheSettings) -> uvicorn.Config:
    """The service's one HTTP port: health and metrics."""
    return serving.operations_config(
        runtime.app, settings, host=settings.host, port=settings.port, loop="none", log_config=None
    )


async def run_server(
    settings: PolicyCacheSettings | None = None, *, sockets: list[socket.socket] | None = None
) -> None:
    """Serve health and metrics and answer cache requests until cancelled."""
    settings = settings or PolicyCacheSettings()
    async with PolicyCacheRuntime(settings) as runtime:
        await serving.serve_until_cancelled(server_config(runtime, settings), sockets)


def serve() -> None:
    """``trustgate policy-cache``: one process, health and metrics on 8084."""
    settings = PolicyCacheSettings()
    serving.run_process(run_server(settings), settings.log_level)
