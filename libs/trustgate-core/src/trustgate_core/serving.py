"""Every plane's uvicorn servers: one `server_config` for all (so their connection limits
cannot drift), and running them inside a larger program (``trustgate run``, tests).

Imported only by services, which all depend on uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from trustgate_core.service.connections import ConnectionLimits, guarded_protocol
from trustgate_core.settings import CoreSettings

#: Connections an operations port (metrics scrapes, probes) takes at once.
OPERATIONS_MAX_CONNECTIONS = 64
#: Open files kept back from the connection cap: upstream sockets, NATS, Postgres, logs.
RESERVED_FILES = 256
DEFAULT_MAX_CONNECTIONS = 10_000


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to the hard one where allowed (it is
    often 1024 while the hard limit is far higher); the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and soft != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return DEFAULT_MAX_CONNECTIONS * 4 if soft == resource.RLIM_INFINITY else soft


def connection_cap(open_files: int) -> int:
    """The default cap on a server's connections: each may hold an upstream socket too, so
    half of what the reserve leaves; at most `DEFAULT_MAX_CONNECTIONS`."""
    return max(16, min(DEFAULT_MAX_CONNECTIONS, (open_files - RESERVED_FILES) // 2))


def connection_limits(
    settings: CoreSettings, max_connections: int | None = None
) -> ConnectionLimits:
    """The limits ``settings`` ask for (``SERVER_MAX_*``, ``SERVER_*_TIMEOUT``)."""
    open_files = raise_open_file_limit()
    return ConnectionLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
        idle_timeout=settings.idle_timeout,
        max_connections=max_connections or settings.max_connections or connection_cap(open_files),
    )


@dataclass(frozen=True)
class ListenerTls:
    """A listener that speaks TLS: its certificate chain and key (PEM files; the key may
    be in the certificate's file), and, with ``client_ca``, client certificates asked for
    and verified against that bundle (a client without one still connects: it may hold
    another credential; one the bundle does not vouch for fails the handshake)."""

    cert: str
    key: str | None = None
    client_ca: str | None = None

    def uvicorn_options(self) -> dict[str, Any]:
        return {
            "ssl_certfile": self.cert,
            "ssl_keyfile": self.key,
            "ssl_ca_certs": self.client_ca,
            "ssl_cert_reqs": ssl.CERT_OPTIONAL if self.client_ca else ssl.CERT_NONE,
        }


def server_config(
    app: Any,
    settings: CoreSettings,
    *,
    host: str,
    port: int,
    max_connections: int | None = None,
    tls: ListenerTls | None = None,
    **options: Any,
) -> uvicorn.Config:
    """A plane's uvicorn config: httptools under `trustgate_core.service.connections`'
    limits, no access log, no ``server`` header, TLS with ``tls``; ``options`` are
    uvicorn's own."""
    limits = connection_limits(settings, max_connections)
    options = {
        "access_log": False,
        "server_header": False,
        "log_level": settings.log_level.lower(),
        **(tls.uvicorn_options() if tls is not None else {}),
        **options,
    }
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guarded_protocol(limits),
        **options,
    )


def traffic_config(
    app: Any, settings: CoreSettings, *, host: str, port: int, tls: ListenerTls | None
) -> uvicorn.Config:
    """A data plane's traffic port (the proxy's, the MCP plane's): no lifespan, no proxy
    headers believed, a deep accept backlog, TLS with ``tls``; the caller runs the loop."""
    return server_config(
        app,
        settings,
        host=host,
        port=port,
        tls=tls,
        loop="none",
        lifespan="off",
        proxy_headers=False,
        date_header=True,
        backlog=4096,
        log_config=None,
    )


def operations_config(
    app: Any, settings: CoreSettings, *, port: int, host: str | None = None, **options: Any
) -> uvicorn.Config:
    """The config of a plane's operations port (``/metrics``, ``/healthz``, ``/readyz``) on
    ``host``, by default ``SERVER_METRICS_HOST`` (telemetry and policy-cache, whose one
    port is their operations port, name their own)."""
    return server_config(
        app,
        settings,
        host=settings.metrics_host if host is None else host,
        port=port,
        max_connections=OPERATIONS_MAX_CONNECTIONS,
        lifespan="off",
        **options,
    )


class EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal capture: whoever runs the server owns the signals, and
    stops it by cancelling the task serving it. ``up`` is set once it listens (or gave up
    starting)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.up = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            self.up.set()


async def serve_until_cancelled(
    config: uvicorn.Config,
    sockets: list[socket.socket] | None = None,
    *,
    beside: Sequence[uvicorn.Config] = (),
) -> None:
    """Serve ``config`` until the calling task is cancelled (or a server stops), then shut
    down gracefully (lifespan shutdown runs and open requests finish) before the
    cancellation propagates. The ``beside`` servers (operations ports) start once the main
    one is up, so they never see an application before its startup ran."""
    main = EmbeddedServer(config)
    servers = [main]
    tasks = [asyncio.ensure_future(main.serve(sockets=sockets))]
    listening = asyncio.ensure_future(main.up.wait())
    try:
        await asyncio.wait([tasks[0], listening], return_when=asyncio.FIRST_COMPLETED)
        if not tasks[0].done():
            for other in beside:
                servers.append(EmbeddedServer(other))
                tasks.append(asyncio.ensure_future(servers[-1].serve()))
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        listening.cancel()
        for server in servers:
            server.should_exit = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


def run_process(main: Coroutine[Any, Any, None], log_level: str) -> None:
    """Run a plane's ``run_server(...)`` as the process's work until SIGINT or SIGTERM:
    logging at ``log_level``, on uvloop's event loop (it comes with uvicorn[standard])."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    factory: Callable[[], asyncio.AbstractEventLoop]
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        factory = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(until_signalled(main))


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
