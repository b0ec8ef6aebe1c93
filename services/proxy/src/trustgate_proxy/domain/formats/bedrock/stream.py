"""ConverseStream: AWS event-stream frames (CRCs checked by botocore) in any chunking to
canonical stream events; an exception or a corrupt frame becomes ``UpstreamStreamError``
after the events decoded before it.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from trustgate_proxy.domain.formats.base import UpstreamStreamError
from trustgate_proxy.domain.formats.bedrock.response import STOP_REASONS, usage_of
from trustgate_proxy.domain.formats.model import (
    Finish,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCallStart,
    UsageUpdate,
)

CORRUPT = "corrupt event-stream frame"


# What botocore's parser raises on a frame it cannot read (bad CRCs and lengths are
# ParserErrors; an unknown header type or a truncated header slips out as the others).
MALFORMED = (ParserError, KeyError, IndexError, ValueError, struct.error)


class ConverseStreamDecoder:
    """ConverseStream's event-stream frames, in any chunking, to stream events. A broken
    frame (corrupt, or an exception) arriving in the same chunk as good ones: the good
    ones' events are returned first, and the error is raised by the next ``feed`` or by
    ``close``; once broken, it stays broken."""

    __slots__ = ("_blocks", "_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._blocks: dict[int, int] = {}  # Bedrock's contentBlockIndex -> our block
        self._broken: str | None = None

    def _block(self, payload: dict[str, Any]) -> int:
        index = payload.get("contentBlockIndex", 0)
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = len(self._blocks)
        return block

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._broken is not None:
            raise UpstreamStreamError(self._broken)
        self._buffer.add_data(chunk)
        out: list[StreamEvent] = []
        try:
            for message in self._buffer:
                self._event(message.headers, message.payload, out)
        except MALFORMED:
            self._broken = CORRUPT
        except UpstreamStreamError as exc:
            self._broken = exc.message
        if self._broken is not None and not out:
            raise UpstreamStreamError(self._broken)
        return out

    def _event(self, headers: dict[str, Any], payload: bytes, out: list[StreamEvent]) -> None:
        kind = headers.get(":message-type")
        if kind == "exception":
            name = headers.get(":exception-type", "exception")
            raise UpstreamStreamError(f"{name}: {_message_of(payload)}")
        if kind == "error":
            code = headers.get(":error-code", "error")
            raise UpstreamStreamError(f"{code}: {headers.get(':error-message', '')}".rstrip(": "))
        if kind != "event":
            return
        try:
            doc = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamStreamError("malformed event-stream payload") from None
        if not isinstance(doc, dict):
            raise UpstreamStreamError("malformed event-stream payload")
        event = headers.get(":event-type")
        if event == "contentBlockDelta":
            delta = doc.get("delta") or {}
            block = self._block(doc)
            if "text" in delta:
                out.append(TextDelta(block, delta["text"]))
            elif "toolUse" in delta:
                out.append(ToolArgsDelta(block, (delta["toolUse"] or {}).get("input", "")))
            elif "reasoningContent" in delta:
                reasoning = delta["reasoningContent"] or {}
                if "text" in reasoning:
                    out.append(ThinkingDelta(block, reasoning["text"]))
                if "signature" in reasoning:
                    out.append(ThinkingDelta(block, "", reasoning["signature"]))
        elif event == "contentBlockStart":
            use = (doc.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                out.append(
                    ToolCallStart(self._block(doc), use.get("toolUseId", ""), use.get("name", ""))
                )
        elif event == "messageStart":
            out.append(StreamStart())
        elif event == "messageStop":
            stop = doc.get("stopReason")
            out.append(Finish(STOP_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop"))
        elif event == "metadata":
            usage = usage_of(doc.get("usage"))
            if usage is not None:
                out.append(UsageUpdate(usage))
            out.append(StreamEnd())

    def close(self) -> list[StreamEvent]:
        if self._broken is not None:
            raise UpstreamStreamError(self._broken)
        return []


def _message_of(payload: bytes) -> str:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode("utf-8", "replace")
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("Message")
        if isinstance(msg, str):
            return msg
    return ""
