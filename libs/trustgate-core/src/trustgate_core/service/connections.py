"""HTTP/1.1 connections no client can hog: uvicorn's httptools protocol with limits kept
while reading, on every plane.

uvicorn with httptools buffers a header that never ends without limit and has no header
or body read timeout, so one slow client could stall a process or use up its memory and
file handles. `guarded_protocol` returns the protocol class to give ``uvicorn.Config(http=...)``:

- the request line and headers may take ``max_header_bytes``; beyond, 431 and close, decided
  as the bytes arrive (httptools is never fed more than the limit of an unfinished head);
- a head must be complete ``header_timeout`` after its first byte (or after the connection
  opened): 408 and close; a connection that never sent a byte is closed;
- a request body that is not complete may pause ``body_timeout`` between bytes: 408 and
  close (only close once the response has started);
- a keep-alive connection may sit ``idle_timeout`` between requests;
- beyond ``max_connections`` open connections on the server, a new one gets 503 with
  ``Retry-After`` at once, unread, and is closed.

On a TLS listener, each request's scope carries the ASGI TLS extension
(``scope["extensions"]["tls"]``): ``client_cert_chain`` holds the certificate the client
proved in the handshake and (from Python 3.13) the chain it sent, PEM, leaf first (empty
without one), read once per connection.

The timers cost nothing per request: one sweep per server walks its connections every
`ConnectionLimits.tick` seconds and counts time in ticks; a connection only records the
tick at which its current phase began (and, while a body is read, the tick it last heard
from). uvicorn's own keep-alive timer (a ``call_later`` per response) is not armed.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.server import ServerState

from trustgate_core.errors import TrustGateError
from trustgate_core.service.asgi import SECURITY_HEADERS

# A connection's phase: what it is waiting for. Ordered: up to HEAD a request head is read.
OPEN, IDLE, HEAD, BODY, BUSY, CLOSING = range(6)
#: How long a connection closed after an error answer may go on sending (see `_linger`).
LINGER = 1.0
#: Refused connections lingering at once, per server; beyond, they are closed at once (a
#: flood of them must not hold the file handles the cap keeps free).
MAX_LINGERING_REFUSALS = 256


class HeaderTooLarge(TrustGateError):
    code, status = "request_header_too_large", 431


class RequestTimeout(TrustGateError):
    code, status = "request_timeout", 408


class TooManyConnections(TrustGateError):
    code, status, retryable = "too_many_connections", 503, True


@dataclass(frozen=True)
class ConnectionLimits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 60.0
    max_connections: int = 1024
    retry_after: int = 1  # seconds, on a refused connection's 503

    @property
    def tick(self) -> float:
        """The sweep's period: a quarter of the shortest timeout, within 50 ms and 1 s (so a
        timeout fires at most a quarter late, or a second for long ones)."""
        shortest = min(self.header_timeout, self.body_timeout, self.idle_timeout)
        return min(1.0, max(0.05, shortest / 4))

    def ticks(self, seconds: float) -> int:
        return max(1, math.ceil(seconds / self.tick))


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` keeping ``limits``."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})


class Sweep:
    """One server's clock: every tick it advances ``ticks`` and expires the connections
    whose phase has lasted too long. Armed while the server has connections."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, state: ServerState, limits: ConnectionLimits
    ) -> None:
        self.ticks = 0
        self.lingering_refusals = 0
        self.header = limits.ticks(limits.header_timeout)
        self.body = limits.ticks(limits.body_timeout)
        self.idle = limits.ticks(limits.idle_timeout)
        self._period = limits.tick
        self._loop = loop
        self._connections = state.connections
        self._handle: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(self._period, self._run)

    def _run(self) -> None:
        self._handle = None
        self.ticks += 1
        for connection in list(self._connections):
            if isinstance(connection, GuardedHttpToolsProtocol):
                connection.expire(self)
        if self._connections:
            self.arm()


_SWEEPS: weakref.WeakKeyDictionary[ServerState, Sweep] = weakref.WeakKeyDictionary()


def _sweep_for(
    state: ServerState, loop: asyncio.AbstractEventLoop, limits: ConnectionLimits
) -> Sweep:
    sweep = _SWEEPS.get(state)
    if sweep is None:
        sweep = _SWEEPS[state] = Sweep(loop, state, limits)
    return sweep


def _response(error: TrustGateError, extra: bytes = b"") -> bytes:
    """A whole ``connection: close`` response carrying ``error``'s JSON body."""
    body = orjson.dumps(error.body())
    head = b"".join(name + b": " + value + b"\r\n" for name, value in SECURITY_HEADERS)
    return b"".join(
        (
            STATUS_LINE[error.status],
            head,
            extra,
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        )
    )


def tls_extension(tls: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension of a connection: what is unknown here is None."""
    der = tls.getpeercert(binary_form=True)
    chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
    sent = getattr(tls, "get_unverified_chain", None)  # Python 3.13
    if chain and sent is not None:
        chain += [c.public_bytes() for c in sent()[1:]]  # PEM by default
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": None,
        "cipher_suite": None,
    }


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol keeping `limits` (see the module's docstring)."""

    limits: ClassVar[ConnectionLimits] = ConnectionLimits()

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._sweep = _sweep_for(server_state, self.loop, self.limits)
        self._phase = OPEN
        self._since = self._sweep.ticks  # the tick the phase began
        self._heard = self._since  # the tick bytes last arrived
        self._head_bytes = 0  # of the head being read
        self._max_head = self.limits.max_header_bytes
        self._refused = False  # counted in the sweep's lingering refusals
        self._extensions: dict[str, Any] | None = None  # on TLS: the connection's

    # -- connections ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refuse(transport)
            return
        super().connection_made(transport)
        self._since = self._sweep.ticks
        self._sweep.arm()
        tls = transport.get_extra_info("ssl_object")
        if tls is not None:
            self._extensions = {"tls": tls_extension(tls)}

    def _refuse(self, transport: asyncio.Transport) -> None:
        """503 at once, unread."""
        self.transport = transport
        retry = b"retry-after: %d\r\n" % self.limits.retry_after
        transport.write(_response(TooManyConnections("too many connections"), retry))
        sweep = self._sweep
        if sweep.lingering_refusals >= MAX_LINGERING_REFUSALS:
            self._close()
            return
        sweep.lingering_refusals += 1
        self._refused = True
        self._linger()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            self._sweep.lingering_refusals -= 1
        super().connection_lost(exc)

    def _linger(self) -> None:
        """Close after an answer: what the client still sends is drained (and dropped)
        until it closes or for `LINGER`, since a close with unread bytes resets the
        connection, and the answer on its way with it."""
        self._phase = CLOSING
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)
        else:
            transport.close()

    # -- reading --------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        phase = self._phase
        self._heard = self._sweep.ticks
        if phase <= HEAD:
            total = self._head_bytes + len(data)
            if total > self._max_head:
                self._head_overflow(data, self._max_head - self._head_bytes)
                return
            self._head_bytes = total
        elif phase == CLOSING:
            return
        super().data_received(data)

    def _head_overflow(self, data: bytes, room: int) -> None:
        """``data`` takes the head past the limit: feed what fits; unless the head ended
        in it, 431. (The bytes after a head that ended are read as usual.)"""
        self._head_bytes += room
        if room > 0:
            super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._head_bytes == 0:  # reset: the head was complete within the limit
            self.data_received(data[room:])
        else:
            self._answer(HeaderTooLarge("the request line and headers are too large"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._extensions is not None:
            self.scope["extensions"] = self._extensions  # type: ignore[typeddict-unknown-key]
        if self._phase != OPEN:  # a connection's first head is timed from its opening
            self._since = self._sweep.ticks
        self._phase = HEAD

    def on_headers_complete(self) -> None:
        self._phase = BODY
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle: RequestResponseCycle | None = self.cycle  # None after an upgrade
        if cycle is not None and cycle.response_complete:  # answered before the body was read
            self._phase = IDLE
            self._since = self._sweep.ticks
        else:
            self._phase = BUSY

    def on_response_complete(self) -> None:
        """uvicorn's, without its keep-alive timer (the sweep keeps the idle timeout)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._phase == BUSY:
            self._phase = IDLE
            self._since = self._sweep.ticks

    # -- timeouts -------------------------------------------------------------------------
    def expire(self, sweep: Sweep) -> None:
        """Called by the sweep each tick: close what waited too long."""
        phase = self._phase
        if phase == HEAD:
            if sweep.ticks - self._since > sweep.header:
                self._answer(RequestTimeout("the request headers took too long"))
        elif phase == BODY:
            if not self.flow.read_paused and sweep.ticks - self._heard > sweep.body:
                self._answer(RequestTimeout("the request body took too long"))
        elif phase == OPEN:
            if sweep.ticks - self._since > sweep.header:
                self._close()
        elif phase == IDLE and sweep.ticks - self._since > sweep.idle:
            self._close()

    def _answer(self, error: TrustGateError) -> None:
        """``error`` to the client, then close; only close if the request being answered
        (the one whose body is read, or one before this head) has its response started."""
        cycle: RequestResponseCycle | None = self.cycle
        if cycle is not None and (self._phase == BODY or not cycle.response_complete):
            if cycle.response_started:
                self._close()
                return
            cycle.disconnected = True  # the application's answer goes nowhere
            cycle.message_event.set()
        self.transport.write(_response(error))
        self._linger()

    def _close(self) -> None:
        self._phase = CLOSING
        self.transport.close()
