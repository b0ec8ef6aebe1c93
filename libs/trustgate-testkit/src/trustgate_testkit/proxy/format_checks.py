"""Helpers the wire-format tests share: feeding a stream decoder in any chunking, running
a stream encoder over events, and reading SSE frames back.

Tests run with ``--import-mode=importlib`` and cannot import each other, so what they
share lives here.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Protocol

import orjson

from trustgate_proxy.domain.formats.model import StreamEnd, StreamEvent


class _Decoder(Protocol):
    def feed(self, chunk: bytes) -> list[StreamEvent]: ...

    def close(self) -> list[StreamEvent]: ...


class _Encoder(Protocol):
    def feed(self, event: StreamEvent) -> bytes: ...

    def finish(self) -> bytes: ...


def chunks_of(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of ``size`` bytes (``1``: byte by byte)."""
    return [data[i : i + size] for i in range(0, len(data), size)]


def random_chunks(data: bytes, rng: random.Random, cuts: int) -> list[bytes]:
    """``data`` cut at ``cuts`` random places (all pieces non-empty)."""
    points = sorted(rng.sample(range(1, len(data)), cuts))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def decode_chunks(decoder: _Decoder, chunks: Iterable[bytes]) -> list[StreamEvent]:
    """Every event ``decoder`` gives for ``chunks`` fed in order, then closed."""
    events: list[StreamEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def feed_bytewise(decoder: _Decoder, data: bytes) -> list[StreamEvent]:
    """``data`` fed one byte at a time (not closed); the events it gave."""
    events: list[StreamEvent] = []
    for chunk in chunks_of(data, 1):
        events += decoder.feed(chunk)
    return events


def transcode(decoder: _Decoder, encoder: _Encoder, chunks: Iterable[bytes]) -> bytes:
    """A provider stream (``chunks``) decoded and re-encoded for a client, as a translating
    forwarder does; the decoder must end it with ``StreamEnd``, which is not fed on."""
    out = b""
    events: list[StreamEvent] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            events.append(event)
            out += b"" if isinstance(event, StreamEnd) else encoder.feed(event)
    for event in decoder.close():
        events.append(event)
        out += b"" if isinstance(event, StreamEnd) else encoder.feed(event)
    assert events and isinstance(events[-1], StreamEnd), events[-3:]
    return out + encoder.finish()


def encode_events(encoder: _Encoder, events: Iterable[StreamEvent]) -> bytes:
    """The bytes ``encoder`` writes for ``events``, then its finish."""
    return b"".join(encoder.feed(e) for e in events) + encoder.finish()


def sse_frames(data: bytes, *, named: bool) -> list[Any]:
    """The JSON ``data`` of each SSE frame (``"[DONE]"`` kept as the string). ``named``:
    each frame is ``event: <type>`` + ``data:``, the name checked against the doc's
    ``type``; else a lone ``data:`` line."""
    assert data.endswith(b"\n\n"), data[-40:]
    docs: list[Any] = []
    for frame in data.split(b"\n\n")[:-1]:
        if named:
            name, payload = frame.split(b"\n")
            assert name.startswith(b"event: ") and payload.startswith(b"data: "), frame
            doc = orjson.loads(payload[6:])
            assert name[7:].decode() == doc["type"], frame
        else:
            assert frame.startswith(b"data: "), frame
            doc = "[DONE]" if frame[6:] == b"[DONE]" else orjson.loads(frame[6:])
        docs.append(doc)
    return docs
