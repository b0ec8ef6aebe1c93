"""``streamGenerateContent?alt=sse``: ``data: {GenerateContentResponse}`` events in any
chunking to canonical stream events.
"""

from __future__ import annotations

import orjson

from trustgate_proxy.domain.formats.base import UpstreamStreamError
from trustgate_proxy.domain.formats.gemini.response import (
    candidate_of,
    error_text,
    finish_reason,
    raw_parts,
    tool_call,
    usage_of,
)
from trustgate_proxy.domain.formats.model import (
    Finish,
    StreamEnd,
    StreamEvent,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCallStart,
    Usage,
    UsageUpdate,
)
from trustgate_proxy.domain.formats.sse import SSEDecoder


class GeminiStreamDecoder(SSEDecoder):
    """``data: {GenerateContentResponse}`` SSE events (any chunking) → stream events."""

    __slots__ = ("_block", "_calls", "_finished", "_kind", "_started", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._finished = False
        self._block = -1
        self._kind = ""  # the open block's kind: text | thinking | tool
        self._calls = 0
        self._usage: Usage | None = None

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for data in self._sse.close():
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError:
                continue  # an event cut short: the stream was interrupted (or is over)
            self._event(data, events)
        if self._finished:
            events.append(StreamEnd())
        return events

    def _open(self, kind: str) -> int:
        if self._kind != kind or kind == "tool":
            self._block += 1
            self._kind = kind
        return self._block

    def _event(self, data: bytes, events: list[StreamEvent]) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamStreamError("malformed event in the Gemini stream") from None
        if isinstance(doc, list) and doc:
            doc = doc[0]
        if not isinstance(doc, dict):
            raise UpstreamStreamError("malformed event in the Gemini stream")
        if isinstance(doc.get("error"), dict):
            raise UpstreamStreamError(error_text(doc["error"]))
        response_id = str(doc.get("responseId") or "")
        if not self._started:
            self._started = True
            events.append(StreamStart(id=response_id or None, model=doc.get("modelVersion")))
        candidate = candidate_of(doc)
        for raw in raw_parts(candidate):
            signature = raw.get("thoughtSignature")
            if raw.get("thought") is True:
                block = self._open("thinking")
                text = str(raw.get("text") or "")
                if text:
                    events.append(ThinkingDelta(block, text))
                if isinstance(signature, str):
                    events.append(ThinkingDelta(block, "", signature))
                    self._kind = ""  # the signature closes the block
                continue
            if isinstance(signature, str):
                self._open("signature")
                events.append(ThinkingDelta(self._block, "", signature))
            call = raw.get("functionCall")
            if isinstance(call, dict):
                tool = tool_call(call, response_id, self._calls)
                self._calls += 1
                block = self._open("tool")
                events.append(ToolCallStart(block, tool.id, tool.name))
                events.append(ToolArgsDelta(block, tool.arguments))
            elif isinstance(raw.get("text"), str) and raw["text"]:
                events.append(TextDelta(self._open("text"), raw["text"]))
        usage = usage_of(doc.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        finish = finish_reason(doc, candidate, self._calls > 0)
        if self._finished and usage is not None:
            events.append(UsageUpdate(usage))  # usage after the finishing chunk
        elif finish is not None and self._usage is not None:
            events.append(UsageUpdate(self._usage))
        if finish is not None and not self._finished:
            self._finished = True
            events.append(Finish(finish))
