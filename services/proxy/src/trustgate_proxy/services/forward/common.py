"""What both forwarders share: an ``Attempt`` (one prepared upstream request), the
``UpstreamReply`` that ``open`` gives back, the ``Forwarder`` base that opens an attempt
(sends it, reads the status and headers, and a whole answer's body, writing nothing to
the client), relayed headers, SSE response headers, the disconnect guard, recording an
upstream failure.

Splitting *open* from *relay* is what lets the pipeline retry or fall back: until
``relay`` writes the first byte, a reply can be dropped and another attempt opened."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from time import perf_counter, time
from typing import Any
from uuid import UUID

import aiohttp

from trustgate_core.durations import parse_duration
from trustgate_core.errors import BackendError, TrustGateError, UpstreamTimeout
from trustgate_core.models import Registry
from trustgate_core.policy import ResponseFilter
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.formats import InboundCodec, OutboundCodec, StreamEncoder, WireFormat
from trustgate_proxy.domain.routing import SUCCESS, Route, outcome_of_error, outcome_of_status
from trustgate_proxy.services.ports import Headers, Message, Receive, Send, Upstream

STREAM_BROKEN = "upstream stream terminated unexpectedly"
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
# Never relayed from the upstream: hop-by-hop, framing (recomputed), and what the
# reference strips or this proxy sets itself.
_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-encoding",
        b"content-type",
        b"x-request-id",
        b"date",
        b"server",
        b"set-cookie",
        b"alt-svc",
        b"cache-control",
        b"x-accel-buffering",
    }
)
STREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def relayed(raw: Any) -> Headers:
    """The upstream's response headers a client may see."""
    return [(k, v) for k, v in raw if k.lower() not in _DROP]


class Attempt:
    """One upstream request, ready to send: the route it takes, its target, URL and body,
    and what its forwarder needs to answer the client (response ``headers`` so far, the
    client's ``wire`` format; when translating, the two codecs and the stream encoder)."""

    __slots__ = (
        "body",
        "call",
        "client",
        "encoder",
        "filters",
        "forwarder",
        "headers",
        "hide_usage",
        "provider",
        "route",
        "stream",
        "target",
        "timeouts",
        "url",
        "wire",
    )

    def __init__(
        self,
        forwarder: Forwarder,
        call: Call,
        route: Route,
        target: Upstream,
        url: str,
        body: bytes,
        stream: bool,
        headers: Headers,
        wire: WireFormat = "openai_chat",
    ) -> None:
        self.forwarder = forwarder
        self.call = call
        self.route = route
        self.target = target
        self.url = url
        self.body = body
        self.stream = stream
        self.headers = headers
        self.wire = wire  # the client's format (pass-through: the provider's too)
        self.hide_usage = False  # usage was asked for on the client's behalf: hide it
        self.client: InboundCodec | None = None  # translating: the client's codec
        self.provider: OutboundCodec | None = None  # translating: the provider's codec
        self.encoder: StreamEncoder | None = None  # translating a stream
        # policies' rewrites of a 2xx answer, in the client's format (regex_replace)
        self.filters: Sequence[ResponseFilter] = ()
        self.timeouts: Timeouts | None = None  # the registry's (None: the session's)


class UpstreamReply:
    """What ``open`` got: the upstream's response (status and headers read; a whole
    answer's body read into ``data``, a stream's left to relay), how the attempt ended,
    or the ``error`` when no answer came."""

    __slots__ = ("attempt", "data", "error", "outcome", "resp", "status")

    def __init__(
        self,
        attempt: Attempt,
        resp: aiohttp.ClientResponse | None,
        outcome: str,
        data: bytes | None = None,
        error: TrustGateError | None = None,
    ) -> None:
        self.attempt = attempt
        self.resp = resp
        self.status = resp.status if resp is not None else 0
        self.outcome = outcome
        self.data = data
        self.error = error

    def release(self) -> None:
        """Give the connection back (or drop it, mid-stream)."""
        if self.resp is not None:
            self.resp.release()


class Timeouts:
    """One registry's timeouts: ``client`` for aiohttp (connect; ``sock_read`` is the
    wait for the first byte; ``total``), and ``idle``, the longest silence between a
    stream's chunks once it has started (``None``: as the first byte)."""

    __slots__ = ("client", "idle")

    def __init__(self, client: aiohttp.ClientTimeout, idle: float | None) -> None:
        self.client = client
        self.idle = idle


_TIMEOUT_OPTIONS = ("connect_timeout", "first_byte_timeout", "idle_timeout", "total_timeout")


def _seconds(options: Mapping[str, Any], name: str) -> float | None:
    """A duration option (``"250ms"``, ``"2m"``, or seconds); ``None`` when absent or not
    a positive duration (the admin validates; the proxy never fails a request on it)."""
    value = options.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = parse_duration(value, bare="s")
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


class TimeoutBook:
    """Each registry's ``Timeouts``, from its ``provider_options`` (``connect_timeout``,
    ``first_byte_timeout``, ``idle_timeout``, ``total_timeout``) over the process
    defaults (``PROVIDER_CONNECT_TIMEOUT``, ``PROVIDER_RESPONSE_HEADER_TIMEOUT`` else
    ``PROVIDER_REQUEST_TIMEOUT``, and ``PROVIDER_REQUEST_TIMEOUT`` between chunks; no
    total). Built once per registry version, not per request; ``None`` for a registry
    that sets none (the session's own timeout applies)."""

    def __init__(
        self,
        connect: float | None = None,
        first_byte: float | None = None,
        idle: float | None = None,
    ) -> None:
        self.connect = connect
        self.first_byte = first_byte
        self.idle = idle
        self._built: dict[UUID, tuple[Registry, Timeouts | None]] = {}

    @classmethod
    def of_session(cls, session: aiohttp.ClientSession) -> TimeoutBook:
        timeout = session.timeout
        return cls(timeout.connect, timeout.sock_read, timeout.sock_read)

    def defaults(self, first_byte: float | None) -> None:
        """The process's first-byte default (``PROVIDER_RESPONSE_HEADER_TIMEOUT``)."""
        if first_byte:
            self.first_byte = first_byte
            self._built = {}

    def of(self, registry: Registry) -> Timeouts | None:
        entry = self._built.get(registry.id)
        if entry is None or entry[0] is not registry:
            if len(self._built) > 4096:
                self._built = {}
            entry = self._built[registry.id] = (registry, self._build(registry))
        return entry[1]

    def _build(self, registry: Registry) -> Timeouts | None:
        options = registry.provider_options or {}
        given = [_seconds(options, name) for name in _TIMEOUT_OPTIONS]
        if not any(given) and self.first_byte == self.idle:
            return None
        connect, first_byte, idle, total = given
        first_byte = first_byte or self.first_byte
        return Timeouts(
            aiohttp.ClientTimeout(
                total=total,
                connect=connect or self.connect,
                sock_connect=connect or self.connect,
                sock_read=first_byte,
            ),
            idle or self.idle,
        )


class Forwarder:
    """Opens attempts over the upstream session; subclasses relay the reply to the client
    (``PassThrough`` in the same format, ``Translator`` across formats)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    def streams(self, attempt: Attempt, resp: aiohttp.ClientResponse) -> bool:
        """Whether a 2xx answer to ``attempt`` is relayed as a stream."""
        return attempt.stream

    async def open(self, attempt: Attempt) -> UpstreamReply:
        """Send the attempt (signed, or with a fresh token, when its target needs it); read
        the status and headers, and a whole answer's body. Writes nothing to the client; a
        transport failure is the reply's ``error`` (a credential the target cannot mint
        raises, before anything was sent)."""
        call = attempt.call
        target = attempt.target
        url = attempt.url
        body = attempt.body
        call.upstream_start = perf_counter()
        try:
            headers = (
                await target.authorize("POST", url, body)
                if target.needs_authorize
                else target.headers
            )
            timeouts = attempt.timeouts
            if timeouts is None:
                resp = await self.session.post(url, data=body, headers=headers)
            else:
                resp = await self.session.post(
                    url, data=body, headers=headers, timeout=timeouts.client
                )
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            return _failed(attempt, upstream_failure(call, exc, "upstream unreachable"))
        call.upstream_ttfb = perf_counter()
        call.status = resp.status
        try:
            if resp.status < 300 and self.streams(attempt, resp):
                if timeouts is not None and timeouts.idle != timeouts.client.sock_read:
                    _read_timeout(resp, timeouts.idle)
                return UpstreamReply(attempt, resp, SUCCESS)
            data = await resp.read()
        except (aiohttp.ClientError, OSError) as exc:
            resp.close()
            return _failed(attempt, upstream_failure(call, exc, "upstream connection broken"))
        except BaseException:  # cancelled (the client left): drop the connection
            resp.close()
            raise
        call.upstream_end = perf_counter()
        if call.body_limit:  # the gateway's telemetry asks for bodies
            call.response_body = data
        return UpstreamReply(attempt, resp, outcome_of_status(resp.status), data)

    async def relay(self, reply: UpstreamReply, send: Send, guard: DisconnectGuard) -> None:
        """Write the reply to the client (``guard`` is disarmed before the last write).
        Raises a ``TrustGateError`` only before anything was written."""
        raise NotImplementedError


class DisconnectGuard:
    """Cancels the request's task when the client disconnects, so the upstream call is
    dropped with it. Armed at once for streams; for plain calls only after ``delay`` (most
    finish sooner, and then cost one timer, not a task)."""

    __slots__ = ("_receive", "_timer", "_watcher", "gone", "task")

    def __init__(self, receive: Receive, delay: float = 0.0) -> None:
        self._receive = receive
        self.task = asyncio.current_task()
        self.gone = False
        self._watcher: asyncio.Future[Message] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if delay > 0:
            self._timer = asyncio.get_running_loop().call_later(delay, self._arm)
        else:
            self._arm()

    def _arm(self) -> None:
        self._timer = None
        self._watcher = asyncio.ensure_future(self._receive())
        self._watcher.add_done_callback(self._on_message)

    def _on_message(self, fut: asyncio.Future[Message]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        if fut.result().get("type") == "http.disconnect" and self.task is not None:
            self.gone = True
            self.task.cancel()

    def disarm(self) -> None:
        """Stop watching (before the last write, and always at the end)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.remove_done_callback(self._on_message)
            if not watcher.done():
                watcher.cancel()

    def absorb(self) -> bool:
        """In an ``except CancelledError``: whether the cancel was ours (the client left);
        if so it is taken back and the caller carries on cleaning up."""
        if not self.gone or self.task is None:
            return False
        self.task.uncancel()
        return True


def _read_timeout(resp: aiohttp.ClientResponse, seconds: float | None) -> None:
    """From now on, a stream silent for ``seconds`` is cut (aiohttp's read timeout
    between chunks; the first byte had its own)."""
    connection = resp.connection
    if connection is not None and connection.protocol is not None:
        connection.protocol.read_timeout = seconds
        connection.protocol.start_timeout()  # counted from now, not from the last read


def retry_after_seconds(resp: aiohttp.ClientResponse | None) -> float | None:
    """A 429's or 503's ``Retry-After``, in seconds (a number or an HTTP date)."""
    if resp is None or resp.status not in (429, 503):
        return None
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time())


def _failed(attempt: Attempt, error: BackendError) -> UpstreamReply:
    return UpstreamReply(attempt, None, outcome_of_error(error), error=error)


def upstream_failure(call: Call, exc: BaseException, broken: str) -> BackendError:
    """Record a failed upstream exchange on ``call``; the error it is (reported before any
    byte reached the client)."""
    call.upstream_end = perf_counter()
    if isinstance(exc, TimeoutError):  # a gateway timeout (504), not a bad gateway
        call.error_kind = "upstream_timeout"
        return UpstreamTimeout("upstream timed out")
    call.error_kind = "upstream_connect"
    return BackendError(broken)


def client_left(call: Call, resp: aiohttp.ClientResponse | None) -> None:
    """Record a client that disconnected; drop the upstream connection (it sees the
    cancel)."""
    call.upstream_end = call.upstream_end or perf_counter()
    call.status = 499
    call.error_kind = "client_disconnected"
    if resp is not None:
        resp.close()


def retry_after(resp: aiohttp.ClientResponse, headers: Headers) -> Headers:
    """``headers`` plus the upstream's ``Retry-After``, when it sent one."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return headers
    return [*headers, (b"retry-after", value.encode())]


def filter_whole(filters: Sequence[ResponseFilter], body: bytes) -> bytes:
    for f in filters:
        body = f.whole(body)
    return body


def filter_chunk(filters: Sequence[ResponseFilter], chunk: bytes) -> bytes:
    for f in filters:
        chunk = f.feed(chunk)
    return chunk


def filter_end(filters: Sequence[ResponseFilter], tail: bytes) -> bytes:
    """The stream's ``tail`` and what the filters held back, each filter's output passed
    through the ones after it."""
    out = tail
    for f in filters:
        out = (f.feed(out) if out else b"") + f.finish()
    return out
