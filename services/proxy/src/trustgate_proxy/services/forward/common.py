"""What both forwarders share: their session (`Relay`), relayed headers, SSE response
headers, the disconnect guard, recording an upstream failure, reading a whole answer."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import aiohttp

from trustgate_core.errors import BackendError
from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.asgi.types import Headers, Message, Receive
from trustgate_proxy.domain.call import Call

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


class Relay:
    """What both forwarders hold: the upstream session, and how long a plain call runs
    before a client disconnect is watched for."""

    def __init__(
        self, session: aiohttp.ClientSession, disconnect_check_after: float = 0.25
    ) -> None:
        self.session = session
        self.disconnect_check_after = disconnect_check_after


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


def upstream_failure(call: Call, exc: BaseException, broken: str) -> BackendError:
    """Record a failed upstream exchange on ``call``; the error to raise (before any byte
    reached the client)."""
    call.upstream_end = perf_counter()
    if isinstance(exc, TimeoutError):
        call.error_kind = "upstream_timeout"
        return BackendError("upstream timed out")
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


async def post(
    session: aiohttp.ClientSession,
    call: Call,
    target: UpstreamTarget,
    url: str,
    body: bytes,
) -> aiohttp.ClientResponse:
    """Send ``body`` to ``url`` (signed or with a fresh token when the target needs it)."""
    call.upstream_start = perf_counter()
    try:
        headers = (
            await target.authorize("POST", url, body) if target.needs_authorize else target.headers
        )
        resp = await session.post(url, data=body, headers=headers)
    except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise upstream_failure(call, exc, "upstream unreachable") from exc
    call.upstream_ttfb = perf_counter()
    call.status = resp.status
    return resp


async def read_all(call: Call, resp: aiohttp.ClientResponse) -> bytes:
    try:
        data = await resp.read()
    except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise upstream_failure(call, exc, "upstream connection broken") from exc
    call.upstream_end = perf_counter()
    if call.body_limit:  # the gateway's telemetry asks for bodies
        call.response_body = data
    return data


def retry_after(resp: aiohttp.ClientResponse, headers: Headers) -> Headers:
    """``headers`` plus the upstream's ``Retry-After``, when it sent one."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return headers
    return [*headers, (b"retry-after", value.encode())]
