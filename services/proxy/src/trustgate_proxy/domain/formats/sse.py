"""Server-sent events, as the text-streaming formats (OpenAI Chat, OpenAI Responses,
Anthropic, Gemini) frame them: reading the ``data`` of each event out of bytes in any
chunking, and writing whole events.

Pure: no I/O. One reader per stream (it keeps the half-received line).
"""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_proxy.domain.formats.model import StreamEvent


class SSEReader:
    """SSE framing: the ``data`` of each complete event (its ``data:`` lines joined by
    ``\\n``), whatever the chunking. Lines end with ``\\n`` or ``\\r\\n``; ``event:``,
    ``id:`` and comment lines carry nothing the codecs need (each format names its events
    in the JSON too); an event without ``data`` is skipped."""

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        out: list[bytes] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
        self._buf = buf[start:]
        return out

    def close(self) -> list[bytes]:
        """The byte stream ended: the event still open (its blank line, or even its last
        line's end, never came), if any. A format whose events must be whole drops it
        (simply not calling ``close``)."""
        out = self.feed(b"\n\n") if self._buf else []
        if self._data:
            out.append(b"\n".join(self._data))
            self._data = []
        return out


class SSEDecoder:
    """The framing half of an SSE provider stream's decoder: bytes in any chunking become
    the data of whole events, each handed to ``_event``, which appends the canonical events
    it makes to ``out``. ``close`` hands over an event the stream left open at its end; a
    format whose events must be whole overrides it."""

    __slots__ = ("_sse",)

    def __init__(self) -> None:
        self._sse = SSEReader()

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for data in self._sse.feed(chunk):
            self._event(data, out)
        return out

    def close(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for data in self._sse.close():
            self._event(data, out)
        return out

    def _event(self, data: bytes, out: list[StreamEvent]) -> None:
        raise NotImplementedError


def sse_event(name: bytes, doc: Any) -> bytes:
    """A named event: ``event: <name>`` and one ``data:`` line of JSON."""
    return b"event: " + name + b"\ndata: " + orjson.dumps(doc) + b"\n\n"


def sse_data(doc: Any) -> bytes:
    """An unnamed event: one ``data:`` line of JSON (OpenAI Chat's chunks)."""
    return b"data: " + orjson.dumps(doc) + b"\n\n"
