"""Running a service's uvicorn server inside a larger program (``trustgate run``, tests).

Imported only by services, which all depend on uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Generator

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


async def until_signalled(main: Awaitable[None]) -> None:
    """Await ``main`` (a service's ``run_server``) in a process of its own until SIGINT or
    SIGTERM cancels it; it then stops gracefully and this returns."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main
