"""Different wire formats on the two sides: the client's request, decoded into the
internal model by the pipeline, is encoded for the provider; the provider's answer is decoded
and encoded back in the client's format — a stream event by event, each translated chunk
written as soon as the provider's bytes complete it.

An upstream non-2xx keeps its status; its body is translated (the provider's message in
the client format's error shape) and ``Retry-After`` kept. A stream the provider breaks
(an error event, a corrupt frame, a cut connection, no end marker) ends with the client
format's error event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Sequence
from time import perf_counter

import aiohttp
import orjson

from trustgate_core.errors import BackendError
from trustgate_core.policy import ResponseFilter
from trustgate_core.service.asgi import send_bytes
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.formats import (
    InboundCodec,
    OutboundCodec,
    StreamDecoder,
    StreamEncoder,
    UpstreamStreamError,
)
from trustgate_proxy.domain.formats.model import StreamEnd, StreamEvent, Usage, UsageUpdate
from trustgate_proxy.services.forward.common import (
    SSE_HEADERS,
    STREAM_BROKEN,
    STREAM_ERRORS,
    DisconnectGuard,
    Forwarder,
    UpstreamReply,
    filter_chunk,
    filter_end,
    filter_whole,
    retry_after,
)
from trustgate_proxy.services.ports import Headers, Send


class Translator(Forwarder):
    """Relays a reply in the client's format: the attempt carries the client's codec
    (``client``), the provider's (``provider``) and, for a stream, the client's encoder."""

    async def relay(self, reply: UpstreamReply, send: Send, guard: DisconnectGuard) -> None:
        attempt = reply.attempt
        assert attempt.client is not None and attempt.provider is not None
        resp = reply.resp
        assert resp is not None
        if reply.data is None:
            assert attempt.encoder is not None
            await self._stream(
                attempt.call,
                resp,
                attempt.provider,
                attempt.encoder,
                attempt.headers,
                attempt.filters,
                send,
                guard,
            )
        else:
            await self._whole(
                attempt.call,
                resp,
                reply.data,
                attempt.client,
                attempt.provider,
                attempt.headers,
                attempt.filters,
                send,
                guard,
            )

    async def _whole(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        data: bytes,
        inbound: InboundCodec,
        outbound: OutboundCodec,
        headers: Headers,
        filters: Sequence[ResponseFilter],
        send: Send,
        guard: DisconnectGuard,
    ) -> None:
        """A whole answer translated; an upstream non-2xx as the client format's error."""
        guard.disarm()
        status = resp.status
        if status >= 300:
            call.error_kind = "upstream_status"
            out = orjson.dumps(inbound.error_body(status, outbound.error_message(status, data)))
            call.response_bytes = len(out)
            await send_bytes(send, status, out, retry_after(resp, headers))
            return
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            call.error_kind = "upstream_malformed"
            raise BackendError("the provider's answer is not a JSON object")
        try:
            response = outbound.decode_response(doc)
            if not response.model:  # Bedrock's Converse answer names no model
                response.model = call.model or ""
            # orjson.JSONEncodeError (a TypeError): nested deeper than orjson writes
            out = orjson.dumps(inbound.encode_response(response))
        except (KeyError, TypeError, ValueError) as exc:
            call.error_kind = "upstream_malformed"
            raise BackendError("the provider's answer cannot be read") from exc
        if response.usage is not None:
            call.usage = response.usage.as_event()
        if filters:
            out = filter_whole(filters, out)
        call.response_bytes = len(out)
        await send_bytes(send, status, out, headers)

    async def _stream(
        self,
        call: Call,
        resp: aiohttp.ClientResponse,
        outbound: OutboundCodec,
        encoder: StreamEncoder,
        headers: Headers,
        filters: Sequence[ResponseFilter],
        send: Send,
        guard: DisconnectGuard,
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": resp.status,
                "headers": [*headers, *SSE_HEADERS],
            }
        )
        decoder = outbound.stream_decoder()
        usage: Usage | None = None
        ended = False
        broken = STREAM_BROKEN
        sent = 0
        try:
            try:
                async with contextlib.aclosing(_decoded(decoder, resp.content)) as batches:
                    async for events in batches:
                        out = b""
                        for event in events:
                            if isinstance(event, UsageUpdate):
                                usage = event.usage
                            elif isinstance(event, StreamEnd):
                                ended = True
                            out += encoder.feed(event)
                        if out and filters:
                            out = filter_chunk(filters, out)
                        if out:
                            await send(
                                {"type": "http.response.body", "body": out, "more_body": True}
                            )
                            sent += len(out)
            except UpstreamStreamError as exc:
                broken = exc.message
                ended = False
                call.error_kind = "upstream_stream_error"
            except STREAM_ERRORS:
                ended = False
            call.upstream_end = perf_counter()
            if ended:
                end = encoder.finish()
                if filters:
                    end = filter_end(filters, end)
            else:
                call.error_kind = call.error_kind or "stream_interrupted"
                end = encoder.error(broken)
                if filters:
                    end = filter_end(filters, b"") + end
            guard.disarm()
            await send({"type": "http.response.body", "body": end, "more_body": False})
            sent += len(end)
        finally:
            call.usage = usage.as_event() if usage is not None else None
            call.response_bytes = sent


async def _decoded(
    decoder: StreamDecoder, content: aiohttp.StreamReader
) -> AsyncGenerator[list[StreamEvent], None]:
    """The provider's stream as batches of events: one per chunk that completes any, then
    what closing the decoder yields (a corrupt frame or a stream error raises)."""
    async for chunk in content.iter_any():
        events = decoder.feed(chunk)
        if events:
            yield events
    yield decoder.close()
