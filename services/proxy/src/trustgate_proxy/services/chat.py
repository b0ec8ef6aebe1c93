"""Proxying an OpenAI Chat Completions call to the chosen upstream, streamed or not.

Same wire format on both sides, so the body passes through untouched unless the route
changes the model or a stream needs ``stream_options.include_usage`` (then it is
re-encoded once). Upstream non-2xx answers are relayed verbatim. Streams are passed on
as they arrive, cut only at line boundaries so a failure can always be reported as one
clean SSE error event.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from trustgate_core.errors import BackendError
from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.asgi.types import Headers, Message, Receive, Send
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.routing import Route
from trustgate_proxy.domain.usage import find_usage

STREAM_ERROR_EVENT = (
    b'data: {"error":{"message":"upstream stream terminated unexpectedly",'
    b'"type":"upstream_error"}}\n\n'
)
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
_DONE = b"data: [DONE]"
_USAGE_ONLY = b'"choices":[]'
_USAGE_ONLY_SPACED = b'"choices": []'
_TAIL = 8192
_STREAM_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def _relayed(raw: Any) -> Headers:
    return [(k, v) for k, v in raw if k.lower() not in _DROP]


def prepare_body(
    body: bytes, doc: dict[str, Any], route: Route, stream: bool
) -> tuple[bytes, str | None, bool]:
    """The body to send, the model it names, and whether usage was asked for on the
    client's behalf (then the usage-only chunk is kept from the client)."""
    model = doc.get("model")
    changed = injected = False
    if route.model is not None and route.model != model:
        doc["model"] = model = route.model
        changed = True
    if stream:
        opts = doc.get("stream_options")
        if not isinstance(opts, dict) or opts.get("include_usage") is not True:
            doc["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
            changed = injected = True
    sent = model if isinstance(model, str) else None
    return (orjson.dumps(doc) if changed else body), sent, injected


def _without_usage_chunks(chunk: bytes) -> bytes:
    """``chunk`` (whole lines) without the usage-only events (``"choices":[]``)."""
    events = chunk.split(b"\n\n")
    kept = [e for e in events if not (_USAGE_ONLY in e or _USAGE_ONLY_SPACED in e)]
    return b"\n\n".join(kept)


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


def _upstream_failure(call: Call, exc: BaseException, broken: str) -> BackendError:
    """Record a failed upstream exchange on ``call``; the error to raise (before any byte
    reached the client)."""
    call.upstream_end = perf_counter()
    if isinstance(exc, TimeoutError):
        call.error_kind = "upstream_timeout"
        return BackendError("upstream timed out")
    call.error_kind = "upstream_connect"
    return BackendError(broken)


class ChatForwarder:
    def __init__(
        self, session: aiohttp.ClientSession, disconnect_check_after: float = 0.25
    ) -> None:
        self.session = session
        self.disconnect_check_after = disconnect_check_after

    async def forward(
        self,
        call: Call,
        target: UpstreamTarget,
        body: bytes,
        model: str | None,
        stream: bool,
        headers: Headers,
        receive: Receive,
        send: Send,
        hide_usage: bool = False,
    ) -> None:
        """Call the upstream and write its answer. Raises ``BackendError`` only before
        anything was written. A client that disconnects cancels the upstream call."""
        guard = DisconnectGuard(receive, 0.0 if stream else self.disconnect_check_after)
        resp: aiohttp.ClientResponse | None = None
        try:
            call.upstream_start = perf_counter()
            try:
                resp = await self.session.post(
                    target.chat_url(model), data=body, headers=target.headers
                )
            except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
                raise _upstream_failure(call, exc, "upstream unreachable") from exc
            call.upstream_ttfb = perf_counter()
            status = resp.status
            call.status = status
            if status >= 300:
                await self._relay_error(call, resp, headers, send, guard)
            elif stream and resp.content_type == "text/event-stream":
                await self._relay_stream(call, resp, headers, send, guard, hide_usage)
            else:
                await self._relay_json(call, resp, headers, send, guard)
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            call.upstream_end = call.upstream_end or perf_counter()
            call.status = 499
            call.error_kind = "client_disconnected"
            if resp is not None:
                resp.close()  # drop the upstream connection: the upstream sees the cancel
        finally:
            guard.disarm()
            if resp is not None:
                resp.release()

    async def _read(self, call: Call, resp: aiohttp.ClientResponse) -> bytes:
        try:
            data = await resp.read()
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise _upstream_failure(call, exc, "upstream connection broken") from exc
        call.upstream_end = perf_counter()
        return data

    async def _relay_json(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        headers: Headers,
        send: Send,
        guard: DisconnectGuard,
    ) -> None:
        data = await self._read(call, resp)
        guard.disarm()
        call.usage = find_usage(data)
        call.response_bytes = len(data)
        ctype = resp.headers.get("Content-Type", "application/json").encode()
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [
                    *headers,
                    *_relayed(resp.raw_headers),
                    (b"content-type", ctype),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _relay_error(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        headers: Headers,
        send: Send,
        guard: DisconnectGuard,
    ) -> None:
        """Status and body verbatim, as JSON, with ``Retry-After`` when the upstream sent it."""
        data = await self._read(call, resp)
        guard.disarm()
        call.error_kind = "upstream_status"
        call.response_bytes = len(data)
        out = [
            *headers,
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        retry_after = resp.headers.get("Retry-After")
        if retry_after is not None:
            out.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": resp.status, "headers": out})
        await send({"type": "http.response.body", "body": data})

    async def _relay_stream(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        headers: Headers,
        send: Send,
        guard: DisconnectGuard,
        hide_usage: bool,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [*headers, *_relayed(resp.raw_headers), *SSE_HEADERS],
            }
        )
        pending = b""
        tail = b""
        last = b"\n\n"
        sent = 0
        try:
            try:
                async for chunk in resp.content.iter_any():
                    if pending:
                        chunk = pending + chunk
                    cut = chunk.rfind(b"\n") + 1
                    if cut == 0:
                        pending = chunk
                        continue
                    if cut < len(chunk):
                        pending = chunk[cut:]
                        chunk = chunk[:cut]
                    else:
                        pending = b""
                    tail = chunk if len(chunk) >= _TAIL else (tail + chunk)[-_TAIL:]
                    if hide_usage and (_USAGE_ONLY in chunk or _USAGE_ONLY_SPACED in chunk):
                        chunk = _without_usage_chunks(chunk)
                        if not chunk:
                            continue
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                    last = chunk
                complete = _DONE in tail
            except _STREAM_ERRORS:
                complete = False
            call.upstream_end = perf_counter()
            if complete:
                end = pending
            else:
                call.error_kind = "stream_interrupted"
                # finish the event in flight (its lines are complete) before the error event
                end = (b"" if last.endswith(b"\n\n") else b"\n") + STREAM_ERROR_EVENT
            guard.disarm()
            await send({"type": "http.response.body", "body": end, "more_body": False})
            sent += len(end)
        finally:
            call.usage = find_usage(tail)
            call.response_bytes = sent
