"""Runs the telemetry service: ``serve()`` for ``trustgate telemetry``; ``run_server()``
for ``trustgate run``."""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn

from trustgate_core.serving import serve_until_cancelled, until_signalled
from trustgate_telemetry.bootstrap import TelemetryRuntime
from trustgate_telemetry.settings import TelemetrySettings


def server_config(runtime: TelemetryRuntime, settings: TelemetrySettings) -> uvicorn.Config:
    return uvicorn.Config(
        runtime.app,
        host=settings.host,
        port=settings.port,
        loop="none",
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level=settings.log_level.lower(),
        log_config=None,
    )


async def run_server(
    settings: TelemetrySettings | None = None, *, sockets: list[socket.socket] | None = None
) -> None:
    """Serve health and metrics and run the consumer until cancelled, then stop gracefully
    (the batch in hand is finished: acked after Kafka, or nak'ed)."""
    settings = settings or TelemetrySettings()
    async with TelemetryRuntime(settings) as runtime:
        await serve_until_cancelled(server_config(runtime, settings), sockets)


def serve() -> None:
    settings = TelemetrySettings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(until_signalled(run_server(settings)))
