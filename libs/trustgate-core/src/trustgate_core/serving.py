"""Running a service's uvicorn server inside a larger program (``trustgate run``, tests).

Imported only by services, which all depend on uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal capture: whoever runs the server owns the signals, and
    stops it by cancelling the task serving it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def serve_until_cancelled(
    config: uvicorn.Config, sockets: list[socket.socket] | None = None
) -> None:
    """Serve until the calling task is cancelled, then shut down gracefully (lifespan
    shutdown runs and open requests finish) before the cancellation propagates."""
    server = EmbeddedServer(config)
    serving = asyncio.ensure_future(server.serve(sockets=sockets))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        raise
