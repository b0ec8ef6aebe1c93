"""Chat's ``chat.completion.chunk`` SSE stream both ways: canonical events to chunks
(encoder, with the usage chunk when asked and ``[DONE]``), and chunks in any chunking to
canonical events (decoder).
"""

from __future__ import annotations

from time import time
from typing import Any

import orjson

from trustgate_proxy.domain.formats.base import UpstreamStreamError
from trustgate_proxy.domain.formats.common import as_int, error_message
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
from trustgate_proxy.domain.formats.openai_chat.wire import (
    chat_id,
    finish_reason,
    reasoning_text,
    usage_doc,
    usage_of,
)
from trustgate_proxy.domain.formats.sse import SSEDecoder, sse_data


class ChatStreamEncoder:
    """Stream events to ``chat.completion.chunk`` SSE events: a first chunk with the role,
    text deltas, tool calls (``index``/``id``/``name`` first, then argument fragments), the
    finish chunk, the usage chunk when asked, ``[DONE]``."""

    __slots__ = (
        "_calls",
        "_created",
        "_finish",
        "_id",
        "_include_usage",
        "_model",
        "_prefix",
        "_started",
        "_usage",
    )

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self._model = model
        self._include_usage = include_usage
        self._id = ""
        self._created = int(time())
        self._started = False
        self._calls: dict[int, int] = {}  # block -> tool call index
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self._prefix = b""

    def _start(self, event: StreamStart | None) -> bytes:
        self._started = True
        self._id = chat_id(event.id if event else None)
        if event is not None and event.model and not self._model:
            self._model = event.model
        head = orjson.dumps(
            {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
            }
        )
        self._prefix = b"data: " + head[:-1] + b',"choices":[{"index":0,"delta":'
        return self._delta({"role": "assistant", "content": ""})

    def _delta(self, delta: dict[str, Any], finish: FinishReason | None = None) -> bytes:
        tail = b',"logprobs":null,"finish_reason":' + (
            b"null" if finish is None else b'"' + finish.encode() + b'"'
        )
        return self._prefix + orjson.dumps(delta) + tail + b"}]}\n\n"

    def feed(self, event: StreamEvent) -> bytes:
        out = b""
        if not self._started:
            out = self._start(event if isinstance(event, StreamStart) else None)
            if isinstance(event, StreamStart):
                return out
        if isinstance(event, TextDelta):
            return out + self._delta({"content": event.text}) if event.text else out
        if isinstance(event, ToolCallStart):
            index = self._calls[event.block] = len(self._calls)
            call = {
                "index": index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return out + self._delta({"tool_calls": [call]})
        if isinstance(event, ToolArgsDelta):
            found = self._calls.get(event.block)
            if found is None or not event.delta:
                return out
            call = {"index": found, "function": {"arguments": event.delta}}
            return out + self._delta({"tool_calls": [call]})
        if isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._finish = event.reason
        return out  # ThinkingDelta: Chat has no field for it; StreamStart twice; StreamEnd

    def finish(self) -> bytes:
        out = b"" if self._started else self._start(None)
        finish = self._finish or ("tool_calls" if self._calls else "stop")
        out += self._delta({}, "stop" if finish == "error" else finish)
        if self._include_usage:
            doc = {
                "id": self._id,
                "object": "chat.completion.chunk",
                "created": self._created,
                "model": self._model,
                "choices": [],
                "usage": usage_doc(self._usage or Usage()),
            }
            out += sse_data(doc)
        return out + b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        return error_event(message)


def error_event(message: str) -> bytes:
    """The reference's mid-stream error event (the OpenAI SDK raises ``APIError`` on it)."""
    return sse_data({"error": {"message": message, "type": "upstream_error"}})


class ChatStreamDecoder(SSEDecoder):
    """``chat.completion.chunk`` events to stream events. ``[DONE]`` is the end marker."""

    __slots__ = ("_blocks", "_calls", "_ended", "_kind", "_started")

    def __init__(self) -> None:
        super().__init__()
        self._started = False
        self._ended = False
        self._blocks = 0  # blocks opened so far
        self._kind: str | None = None  # the open block: "text", "thinking", "tool"
        self._calls: dict[int, int] = {}  # tool call index -> block

    def _open(self, kind: str) -> int:
        if self._kind != kind or kind == "tool":
            self._kind = kind
            self._blocks += 1
        return self._blocks - 1

    def _event(self, data: bytes, out: list[StreamEvent]) -> None:
        if self._ended:
            return
        if data == b"[DONE]":
            self._ended = True
            out.append(StreamEnd())
            return
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStreamError("the provider sent a malformed stream event") from exc
        if not isinstance(doc, dict):
            raise UpstreamStreamError("the provider sent a malformed stream event")
        if doc.get("error") is not None:
            raise UpstreamStreamError(error_message(doc) or "the provider reported an error")
        if not self._started:
            self._started = True
            model = doc.get("model")
            out.append(StreamStart(doc.get("id"), model if isinstance(model, str) else None))
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            choice = choices[0]
            delta = choice.get("delta")
            if isinstance(delta, dict):
                self._delta(delta, out)
            reason = choice.get("finish_reason")
            if reason is not None:
                out.append(Finish(finish_reason(reason, bool(self._calls))))
        usage = usage_of(doc.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        thinking = reasoning_text(delta)
        if thinking:
            out.append(ThinkingDelta(self._open("thinking"), thinking))
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(TextDelta(self._open("text"), content))
        calls = delta.get("tool_calls")
        if not isinstance(calls, list):
            return
        for call in calls:
            if not isinstance(call, dict):
                continue
            index = as_int(call.get("index")) or 0
            raw = call.get("function")
            fn: dict[str, Any] = raw if isinstance(raw, dict) else {}
            block = self._calls.get(index)
            if block is None:
                block = self._calls[index] = self._open("tool")
                name = fn.get("name")
                out.append(
                    ToolCallStart(
                        block,
                        str(call.get("id") or f"call_{index}"),
                        name if isinstance(name, str) else "",
                    )
                )
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                out.append(ToolArgsDelta(block, args))
