"""Runs the telemetry service: ``serve()`` for ``trustgate telemetry``; ``run_server()``
for ``trustgate run``."""

from __future__ import annotations

import socket

import uvicorn

from trustgate_core import serving
from trustgate_telemetry.bootstrap import TelemetryRuntime
from trustgate_telemetry.settings import TelemetrySettings


def server_config(runtime: TelemetryRuntime, settings: TelemetrySettings) -> uvicorn.Config:
    """Telemetry's one HTTP port is its operations port (health and metrics)."""
    return serving.operations_config(
        runtime.app, settings, host=settings.host, port=settings.port, loop="none", log_config=None
    )


async def run_server(
    settings: TelemetrySettings | None = None, *, sockets: list[socket.socket] | None = None
) -> None:
    """Serve health and metrics and run the consumer until cancelled, then stop gracefully
    (the batch in hand is finished: acked after Kafka, or nak'ed)."""
    settings = settings or TelemetrySettings()
    async with TelemetryRuntime(settings) as runtime:
        await serving.serve_until_cancelled(server_config(runtime, settings), sockets)


def serve() -> None:
    settings = TelemetrySettings()
    serving.run_process(run_server(settings), settings.log_level)
