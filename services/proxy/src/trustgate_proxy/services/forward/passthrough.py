"""Same wire format on both sides: the body passes through untouched (unknown fields
survive), unless the route changes the model or an OpenAI Chat stream needs
``stream_options.include_usage`` (then it is re-encoded once; ``prepare_body``). Upstream
non-2xx answers are relayed verbatim. Streams are passed on as they arrive, cut only at
line boundaries so a failure can always be reported as one clean error event of the
format. Usage and a stream's completeness are read from the raw bytes by the format's
``UsageReader``; nothing of the answer is decoded.
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

import aiohttp
import orjson

from trustgate_core.service.asgi import send_bytes
from trustgate_proxy.domain.formats import INBOUND, USAGE, WireFormat
from trustgate_proxy.domain.routing import Route
from trustgate_proxy.services.forward.common import (
    SSE_HEADERS,
    STREAM_BROKEN,
    STREAM_ERRORS,
    Attempt,
    DisconnectGuard,
    Forwarder,
    UpstreamReply,
    filter_chunk,
    filter_end,
    filter_whole,
    relayed,
    retry_after,
)
from trustgate_proxy.services.ports import Send

_USAGE_ONLY = b'"choices":[]'
_USAGE_ONLY_SPACED = b'"choices": []'
_TAIL = 8192


def prepare_body(
    body: bytes, doc: dict[str, Any], route: Route, stream: bool, wire: WireFormat = "openai_chat"
) -> tuple[bytes, str | None, bool]:
    """The body to send, the model it names, and whether usage was asked for on the
    client's behalf (then the usage-only chunk is kept from the client). Every inbound
    format names its model in the body's ``model``; only OpenAI Chat streams need usage
    asked for."""
    model = doc.get("model")
    changed = injected = False
    if route.model is not None and route.model != model:
        doc = {**doc, "model": route.model}
        model = route.model
        changed = True
    if stream and wire == "openai_chat":
        opts = doc.get("stream_options")
        if not isinstance(opts, dict) or opts.get("include_usage") is not True:
            doc = {
                **doc,
                "stream_options": {
                    **(opts if isinstance(opts, dict) else {}),
                    "include_usage": True,
                },
            }
            changed = injected = True
    sent = model if isinstance(model, str) else None
    return (orjson.dumps(doc) if changed else body), sent, injected


def _without_usage_chunks(chunk: bytes) -> bytes:
    """``chunk`` (whole lines) without the usage-only events (``"choices":[]``)."""
    events = chunk.split(b"\n\n")
    kept = [e for e in events if not (_USAGE_ONLY in e or _USAGE_ONLY_SPACED in e)]
    return b"\n\n".join(kept)


class PassThrough(Forwarder):
    def streams(self, attempt: Attempt, resp: aiohttp.ClientResponse) -> bool:
        return attempt.stream and resp.content_type == "text/event-stream"

    async def relay(self, reply: UpstreamReply, send: Send, guard: DisconnectGuard) -> None:
        if reply.data is None:
            await self._relay_stream(reply, send, guard)
        else:
            await self._relay_whole(reply, reply.data, send, guard)

    async def _relay_whole(
        self, reply: UpstreamReply, data: bytes, send: Send, guard: DisconnectGuard
    ) -> None:
        """A whole answer. Upstream non-2xx: status and body verbatim, as JSON, with
        ``Retry-After`` when the upstream sent it."""
        attempt = reply.attempt
        call = attempt.call
        resp = reply.resp
        assert resp is not None
        guard.disarm()
        call.response_bytes = len(data)
        if resp.status >= 300:
            call.error_kind = "upstream_status"
            await send_bytes(send, resp.status, data, retry_after(resp, attempt.headers))
            return
        usage = USAGE[attempt.wire].from_body(data)
        call.usage = usage.as_event() if usage is not None else None
        if attempt.filters:
            data = filter_whole(attempt.filters, data)
            call.response_bytes = len(data)
        ctype = resp.headers.get("Content-Type", "application/json").encode()
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [
                    *attempt.headers,
                    *relayed(resp.raw_headers),
                    (b"content-type", ctype),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _relay_stream(self, reply: UpstreamReply, send: Send, guard: DisconnectGuard) -> None:
        attempt = reply.attempt
        call = attempt.call
        resp = reply.resp
        assert resp is not None
        wire = attempt.wire
        hide_usage = attempt.hide_usage
        filters = attempt.filters
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [*attempt.headers, *relayed(resp.raw_headers), *SSE_HEADERS],
            }
        )
        reader = USAGE[wire]
        keep_head = reader.head_bytes
        head = b""
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
                    if len(head) < keep_head:
                        head += chunk
                    if hide_usage and (_USAGE_ONLY in chunk or _USAGE_ONLY_SPACED in chunk):
                        chunk = _without_usage_chunks(chunk)
                        if not chunk:
                            continue
                    if filters:
                        chunk = filter_chunk(filters, chunk)
                        if not chunk:
                            continue
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    sent += len(chunk)
                    last = chunk
                complete = reader.stream_complete(tail)
            except STREAM_ERRORS:
                complete = False
            call.upstream_end = perf_counter()
            if complete:
                end = filter_end(filters, pending) if filters else pending
            else:
                call.error_kind = "stream_interrupted"
                # finish the event in flight (its lines are complete) before the error event
                end = (b"" if last.endswith(b"\n\n") else b"\n") + INBOUND[wire].stream_encoder(
                    call.model or ""
                ).error(STREAM_BROKEN)
                if filters:  # what they held back is whole events: before the error
                    end = filter_end(filters, b"") + end
            guard.disarm()
            await send({"type": "http.response.body", "body": end, "more_body": False})
            sent += len(end)
        finally:
            usage = reader.from_stream(head, tail)
            call.usage = usage.as_event() if usage is not None else None
            call.response_bytes = sent
