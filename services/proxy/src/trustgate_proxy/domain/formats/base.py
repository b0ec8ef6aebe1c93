"""The codec ports: what a wire format must provide to be spoken by clients (inbound) or
to providers (outbound). One package per format implements them (``openai_chat/``,
``anthropic/``, ``openai_responses/``, ``gemini/``, ``bedrock/``: inbound, outbound, stream,
pass-through usage, ...; shared pieces in ``sse.py`` and ``common.py``) and registers an
instance in ``trustgate_proxy.domain.formats.INBOUND`` / ``OUTBOUND``.

Pure: codecs parse and build documents and stream frames; they never do I/O. Documents are
the ``dict`` orjson gives and takes; a stream is bytes in (provider) and bytes out (client).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse, StreamEvent, Usage

WireFormat = Literal["openai_chat", "openai_responses", "anthropic", "gemini", "bedrock"]


class UpstreamStreamError(Exception):
    """The provider's stream reported an error (an ``error`` event, an exception frame) or
    is corrupt (bad framing, a CRC mismatch). The forwarder ends the client's stream with
    the client format's error event; ``message`` is safe to show (no secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class StreamDecoder(Protocol):
    """A provider's stream, as bytes in any chunking, to events. Framing (SSE lines, AWS
    event-stream frames) is the decoder's business: a chunk may hold half a frame."""

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Events completed by ``chunk``. Raises ``UpstreamStreamError``."""
        ...

    def close(self) -> list[StreamEvent]:
        """The byte stream ended: what is left. A stream that ended without the format's
        end marker yields no ``StreamEnd`` (the forwarder treats it as interrupted)."""
        ...


class StreamEncoder(Protocol):
    """Events to the client format's stream bytes (whole SSE events)."""

    def feed(self, event: StreamEvent) -> bytes: ...

    def finish(self) -> bytes:
        """After the provider's ``StreamEnd``: what closes the stream cleanly (closing open
        blocks, the final usage, ``[DONE]`` / ``message_stop`` / ``response.completed``)."""
        ...

    def error(self, message: str) -> bytes:
        """The client format's error event, the last thing written to a broken stream."""
        ...


class InboundCodec(Protocol):
    """A format that clients speak to the proxy."""

    format: WireFormat

    def decode_request(self, doc: dict[str, Any]) -> ChatRequest:
        """Raises ``InvalidRequest`` (400) for a body the format does not allow."""
        ...

    def encode_response(self, response: ChatResponse) -> dict[str, Any]: ...

    def stream_encoder(self, model: str, include_usage: bool = True) -> StreamEncoder:
        """The client's stream; ``include_usage`` is ``ChatRequest.stream_usage`` (formats
        that always report usage ignore it)."""
        ...

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """A provider's error (``status``, its message) in this format's error shape."""
        ...


class OutboundCodec(Protocol):
    """A format the proxy speaks to providers."""

    format: WireFormat

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        """The provider's body (the model goes where the format puts it: in the body, or
        left to the target's URL). Appends what it had to drop to ``request.dropped``;
        raises ``Untranslatable`` when the request cannot be served at all."""
        ...

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def error_message(self, status: int, body: bytes) -> str:
        """The human message of the provider's error body (for translating it)."""
        ...


class UsageReader(Protocol):
    """What a same-format (pass-through) exchange needs of its format, without decoding
    all of it: usage from a plain body, or from a stream's first and last bytes (``head``:
    the first chunk(s), up to a few KiB; ``tail``: the last few KiB), and whether a stream
    ended with the format's end marker (else it was cut, and the client gets the format's
    error event). ``head_bytes``: how much of a stream's start ``from_stream`` reads (0: it
    needs only the tail, and none is kept)."""

    head_bytes: int

    def from_body(self, body: bytes) -> Usage | None: ...

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None: ...

    def stream_complete(self, tail: bytes) -> bool: ...
