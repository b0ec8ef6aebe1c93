"""Anthropic's SSE stream both ways: canonical events to ``message_start`` / per-block
``content_block_*`` / ``message_delta`` / ``message_stop`` (encoder), and Anthropic's
events in any chunking to canonical events (decoder).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from trustgate_proxy.domain.formats.anthropic.wire import (
    FINISH_REASONS,
    finish_reason,
    message_id,
    usage_from,
    usage_to,
)
from trustgate_proxy.domain.formats.base import UpstreamStreamError
from trustgate_proxy.domain.formats.model import (
    Finish,
    FinishReason,
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
from trustgate_proxy.domain.formats.sse import SSEDecoder, sse_event


class AnthropicStreamEncoder:
    """Canonical stream events to Anthropic's SSE events, in the API's order:
    ``message_start`` (+ ``ping``), per block ``content_block_start`` / deltas /
    ``content_block_stop`` (indices dense from 0), ``message_delta``, ``message_stop``."""

    __slots__ = ("_block", "_id", "_index", "_kind", "_model", "_reason", "_started", "_usage")

    def __init__(self, model: str) -> None:
        self._model = model
        self._id: str | None = None
        self._started = False
        self._block: int | None = None  # the canonical block now open
        self._kind: str | None = None  # its Anthropic block type
        self._index = -1  # its Anthropic index
        self._usage: Usage | None = None
        self._reason: FinishReason = "stop"

    def _start(self) -> bytes:
        self._started = True
        message: dict[str, Any] = {
            "id": message_id(self._id),
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_to(self._usage)
            if self._usage
            else {"input_tokens": 0, "output_tokens": 0},
        }
        return sse_event(b"message_start", {"type": "message_start", "message": message}) + (
            b'event: ping\ndata: {"type":"ping"}\n\n'
        )

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = self._kind = None
        return sse_event(
            b"content_block_stop", {"type": "content_block_stop", "index": self._index}
        )

    def _open(self, block: int, kind: str, content_block: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start()
        if self._block == block and self._kind == kind:
            return out
        out += self._close()
        self._index += 1
        self._block, self._kind = block, kind
        return out + sse_event(
            b"content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": content_block},
        )

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event(
            b"content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def feed(self, event: StreamEvent) -> bytes:
        if isinstance(event, TextDelta):
            if not event.text:
                return b""  # (an OpenAI stream's opening "content": "")
            out = self._open(event.block, "text", {"type": "text", "text": ""})
            return out + self._delta({"type": "text_delta", "text": event.text})
        if isinstance(event, ToolArgsDelta):
            if self._block != event.block or self._kind != "tool_use" or not event.delta:
                return b""
            return self._delta({"type": "input_json_delta", "partial_json": event.delta})
        if isinstance(event, ToolCallStart):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            return self._open(event.block, "tool_use", block)
        if isinstance(event, ThinkingDelta):
            if not event.text and not event.signature:
                return b""
            block = {"type": "thinking", "thinking": "", "signature": ""}
            out = self._open(event.block, "thinking", block)
            if event.text:
                out += self._delta({"type": "thinking_delta", "thinking": event.text})
            if event.signature:
                out += self._delta({"type": "signature_delta", "signature": event.signature})
            return out
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
            return b""
        if isinstance(event, Finish):
            self._reason = event.reason
            return b""
        if isinstance(event, StreamStart):
            if event.id and self._id is None:
                self._id = event.id
            if event.model:
                self._model = event.model
            return b""  # message_start waits for the first block (or usage) to be known
        return b""  # StreamEnd: finish() closes

    def finish(self) -> bytes:
        out = b"" if self._started else self._start()
        out += self._close()
        usage = usage_to(self._usage)
        out += sse_event(
            b"message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": FINISH_REASONS[self._reason], "stop_sequence": None},
                "usage": usage,
            },
        )
        return out + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'

    def error(self, message: str) -> bytes:
        return sse_event(
            b"error", {"type": "error", "error": {"type": "api_error", "message": message}}
        )


class AnthropicStreamDecoder(SSEDecoder):
    """Anthropic's SSE stream, in any chunking, to canonical events."""

    __slots__ = ("_blocks", "_usage")

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[int, int] = {}  # Anthropic index -> canonical block
        self._usage: dict[str, Any] = {}

    def close(self) -> list[StreamEvent]:
        # an event without its blank line is incomplete: dropped (SSE), not read
        return []

    def _event(self, data: bytes, out: list[StreamEvent]) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStreamError("malformed event in the provider's stream") from exc
        if not isinstance(doc, dict):
            raise UpstreamStreamError("malformed event in the provider's stream")
        kind = doc.get("type")
        if kind == "content_block_delta":
            self._delta(doc, out)
        elif kind == "content_block_start":
            self._block_start(doc, out)
        elif kind == "message_start":
            message = doc.get("message")
            if isinstance(message, Mapping):
                out.append(StreamStart(message.get("id"), message.get("model")))
                usage = message.get("usage")
                if isinstance(usage, Mapping):
                    self._usage.update(usage)
                    out.append(UsageUpdate(usage_from(self._usage)))
        elif kind == "message_delta":
            delta = doc.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason") is not None:
                out.append(Finish(finish_reason(delta["stop_reason"])))
            usage = doc.get("usage")
            if isinstance(usage, Mapping):
                self._usage.update({k: v for k, v in usage.items() if v is not None})
                out.append(UsageUpdate(usage_from(self._usage)))
        elif kind == "message_stop":
            out.append(StreamEnd())
        elif kind == "error":
            error = doc.get("error")
            message = error.get("message") if isinstance(error, Mapping) else None
            raise UpstreamStreamError(
                message if isinstance(message, str) and message else "provider stream error"
            )
        # ping, content_block_stop and unknown events carry nothing canonical

    def _block_start(self, doc: Mapping[str, Any], out: list[StreamEvent]) -> None:
        block = doc.get("content_block")
        index = doc.get("index")
        if not isinstance(block, Mapping) or not isinstance(index, int):
            return
        kind = block.get("type")
        if kind not in ("text", "tool_use", "thinking"):
            return  # redacted_thinking and server tool blocks have no stream form
        canonical = self._blocks[index] = len(self._blocks)
        if kind == "text":
            if block.get("text"):
                out.append(TextDelta(canonical, str(block["text"])))
        elif kind == "tool_use":
            out.append(
                ToolCallStart(canonical, str(block.get("id", "")), str(block.get("name", "")))
            )
            initial = block.get("input")
            if isinstance(initial, Mapping) and initial:
                out.append(ToolArgsDelta(canonical, orjson.dumps(initial).decode()))
        elif block.get("thinking"):
            out.append(ThinkingDelta(canonical, str(block["thinking"])))

    def _delta(self, doc: Mapping[str, Any], out: list[StreamEvent]) -> None:
        index = doc.get("index")
        delta = doc.get("delta")
        if not isinstance(index, int) or not isinstance(delta, Mapping):
            return
        block = self._blocks.get(index)
        if block is None:
            return
        kind = delta.get("type")
        if kind == "text_delta":
            out.append(TextDelta(block, str(delta.get("text", ""))))
        elif kind == "input_json_delta":
            partial = delta.get("partial_json")
            if isinstance(partial, str) and partial:
                out.append(ToolArgsDelta(block, partial))
        elif kind == "thinking_delta":
            out.append(ThinkingDelta(block, str(delta.get("thinking", ""))))
        elif kind == "signature_delta":
            signature = delta.get("signature")
            if isinstance(signature, str):
                out.append(ThinkingDelta(block, "", signature))
