"""Same wire format on both sides: the body passes through untouched (unknown fields
survive), unless the route changes the model or an OpenAI Chat stream needs
``stream_options.include_usage`` (then it is re-encoded once). Upstream non-2xx answers
are relayed verbatim. Streams are passed on as they arrive, cut only at line boundaries so
a failure can always be reported as one clean error event of the format.

The OpenAI Chat path is the benchmarked hot path: no decoding of the answer, usage found
in the stream's tail, a constant error event.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any

import aiohttp
import orjson

from trustgate_proxy.adapters.providers import UpstreamTarget
from trustgate_proxy.asgi.responses import send_bytes
from trustgate_proxy.asgi.types import Headers, Receive, Send
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.formats import INBOUND, USAGE, WireFormat
from trustgate_proxy.domain.routing import Route
from trustgate_proxy.domain.usage import find_usage
from trustgate_proxy.services.forward.common import (
    SSE_HEADERS,
    STREAM_BROKEN,
    STREAM_ERRORS,
    DisconnectGuard,
    Relay,
    client_left,
    post,
    read_all,
    relayed,
    retry_after,
)

_USAGE_ONLY = b'"choices":[]'
_USAGE_ONLY_SPACED = b'"choices": []'
_TAIL = 8192
_HEAD = 4096


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
        doc["model"] = model = route.model
        changed = True
    if stream and wire == "openai_chat":
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


class PassThrough(Relay):
    async def forward(
        self,
        call: Call,
        target: UpstreamTarget,
        url: str,
        body: bytes,
        stream: bool,
        headers: Headers,
        receive: Receive,
        send: Send,
        hide_usage: bool = False,
        wire: WireFormat = "openai_chat",
    ) -> None:
        """Call the upstream and write its answer. Raises ``BackendError`` only before
        anything was written. A client that disconnects cancels the upstream call."""
        guard = DisconnectGuard(receive, 0.0 if stream else self.disconnect_check_after)
        resp: aiohttp.ClientResponse | None = None
        try:
            resp = await post(self.session, call, target, url, body)
            if resp.status < 300 and stream and resp.content_type == "text/event-stream":
                await self._relay_stream(call, resp, headers, send, guard, hide_usage, wire)
            else:
                await self._relay_whole(call, resp, headers, send, guard, wire)
        except asyncio.CancelledError:
            if not guard.absorb():
                raise
            client_left(call, resp)
        finally:
            guard.disarm()
            if resp is not None:
                resp.release()

    async def _relay_whole(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        headers: Headers,
        send: Send,
        guard: DisconnectGuard,
        wire: WireFormat,
    ) -> None:
        """A whole answer. Upstream non-2xx: status and body verbatim, as JSON, with
        ``Retry-After`` when the upstream sent it."""
        data = await read_all(call, resp)
        guard.disarm()
        call.response_bytes = len(data)
        if resp.status >= 300:
            call.error_kind = "upstream_status"
            await send_bytes(send, resp.status, data, retry_after(resp, headers))
            return
        if wire == "openai_chat":  # the hot path: the usage dict straight from the bytes
            call.usage = find_usage(data)
        else:
            usage = USAGE[wire].from_body(data)
            call.usage = usage.as_event() if usage is not None else None
        ctype = resp.headers.get("Content-Type", "application/json").encode()
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [
                    *headers,
                    *relayed(resp.raw_headers),
                    (b"content-type", ctype),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _relay_stream(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        headers: Headers,
        send: Send,
        guard: DisconnectGuard,
        hide_usage: bool,
        wire: WireFormat,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [*headers, *relayed(resp.raw_headers), *SSE_HEADERS],
            }
        )
        reader = USAGE[wire]
        keep_head = wire != "openai_chat"  # OpenAI Chat's usage is in the tail
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
                    if keep_head and len(head) < _HEAD:
                        head += chunk
                    if hide_usage and (_USAGE_ONLY in chunk or _USAGE_ONLY_SPACED in chunk):
                        chunk = _without_usage_chunks(chunk)
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
                end = pending
            else:
                call.error_kind = "stream_interrupted"
                # finish the event in flight (its lines are complete) before the error event
                end = (b"" if last.endswith(b"\n\n") else b"\n") + INBOUND[wire].stream_encoder(
                    call.model or ""
                ).error(STREAM_BROKEN)
            guard.disarm()
            await send({"type": "http.response.body", "body": end, "more_body": False})
            sent += len(end)
        finally:
            if wire == "openai_chat":
                call.usage = find_usage(tail)
            else:
                usage = reader.from_stream(head, tail)
                call.usage = usage.as_event() if usage is not None else None
            call.response_bytes = sent
