"""The Responses API's SSE events both ways: provider events in any chunking to canonical
events (decoder), and canonical events to the API's event sequence (encoder).
"""

from __future__ import annotations

import time
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
from trustgate_proxy.domain.formats.openai_responses.wire import (
    SIGNED,
    incomplete_finish,
    item_id_for,
    reasoning_item,
    response_doc,
    response_id_of,
    status_of,
    text_part,
    usage_from,
)
from trustgate_proxy.domain.formats.sse import SSEDecoder, sse_event


class ResponsesStreamDecoder(SSEDecoder):
    """The Responses API's SSE events to stream events."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[int, int, str], int] = {}  # (output, part, kind) -> block
        self._seen: set[int] = set()  # blocks that got a delta
        self._calls = False
        self._ended = False

    def _block(self, key: tuple[int, int, str]) -> tuple[int, bool]:
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = len(self._blocks)
            return block, True
        return block, False

    def _event(self, data: bytes, out: list[StreamEvent]) -> None:
        if self._ended or data == b"[DONE]":
            return
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise UpstreamStreamError("the provider sent a malformed stream event") from exc
        if not isinstance(doc, dict):
            return
        kind = doc.get("type")
        output = as_int(doc.get("output_index")) or 0
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            block, _ = self._block((output, as_int(doc.get("content_index")) or 0, "text"))
            self._seen.add(block)
            out.append(TextDelta(block, str(doc.get("delta") or "")))
        elif kind == "response.function_call_arguments.delta":
            block, _ = self._block((output, 0, "call"))
            self._seen.add(block)
            out.append(ToolArgsDelta(block, str(doc.get("delta") or "")))
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            index = as_int(doc.get("summary_index")) or as_int(doc.get("content_index")) or 0
            block, _ = self._block((output, index, "thinking"))
            self._seen.add(block)
            out.append(ThinkingDelta(block, str(doc.get("delta") or "")))
        elif kind == "response.output_item.added":
            item = doc.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                self._call_start(output, item, out)
        elif kind == "response.output_text.done":
            self._late_text(output, as_int(doc.get("content_index")) or 0, doc.get("text"), out)
        elif kind == "response.function_call_arguments.done":
            block, _ = self._block((output, 0, "call"))
            if block not in self._seen and isinstance(doc.get("arguments"), str):
                self._seen.add(block)
                out.append(ToolArgsDelta(block, doc["arguments"]))
        elif kind == "response.output_item.done":
            self._item_done(output, doc.get("item"), out)
        elif kind == "response.created":
            response = doc.get("response")
            if isinstance(response, dict):
                out.append(StreamStart(response.get("id"), response.get("model")))
        elif kind in ("response.completed", "response.incomplete"):
            response = doc.get("response")
            response = response if isinstance(response, dict) else {}
            usage = usage_from(response.get("usage"))
            if usage is not None:
                out.append(UsageUpdate(usage))
            if kind == "response.incomplete":
                finish: FinishReason = incomplete_finish(response)
            else:
                finish = "tool_calls" if self._calls else "stop"
            out.append(Finish(finish))
            out.append(StreamEnd())
            self._ended = True
        elif kind == "response.failed":
            raise UpstreamStreamError(
                error_message(doc.get("response")) or "the provider's response failed"
            )
        elif kind == "error":
            raise UpstreamStreamError(error_message(doc) or "the provider's stream failed")

    def _call_start(self, output: int, item: dict[str, Any], out: list[StreamEvent]) -> None:
        block, new = self._block((output, 0, "call"))
        if not new:
            return
        self._calls = True
        call_id = item.get("call_id") or item.get("id") or ""
        out.append(ToolCallStart(block, str(call_id), str(item.get("name") or "")))
        arguments = item.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._seen.add(block)
            out.append(ToolArgsDelta(block, arguments))

    def _late_text(self, output: int, index: int, text: Any, out: list[StreamEvent]) -> None:
        """Text that arrived only whole (a ``.done`` or finished item without deltas)."""
        block, _ = self._block((output, index, "text"))
        if block not in self._seen and isinstance(text, str) and text:
            self._seen.add(block)
            out.append(TextDelta(block, text))

    def _item_done(self, output: int, item: Any, out: list[StreamEvent]) -> None:
        if not isinstance(item, dict):
            return
        kind = item.get("type")
        if kind == "function_call":
            self._call_start(output, item, out)
            block, _ = self._block((output, 0, "call"))
            arguments = item.get("arguments")
            if block not in self._seen and isinstance(arguments, str) and arguments:
                self._seen.add(block)
                out.append(ToolArgsDelta(block, arguments))
        elif kind == "message":
            for index, content in enumerate(item.get("content") or []):
                if isinstance(content, dict) and content.get("type") == "output_text":
                    self._late_text(output, index, content.get("text"), out)
        elif kind == "reasoning":
            for index, summary in enumerate(item.get("summary") or []):
                if not isinstance(summary, dict):
                    continue
                block, _ = self._block((output, index, "thinking"))
                text = summary.get("text")
                if block not in self._seen and isinstance(text, str) and text:
                    self._seen.add(block)
                    out.append(ThinkingDelta(block, text))


class ResponsesStreamEncoder:
    """Stream events to the Responses API's SSE events, in the order the API emits them:
    ``response.created``, ``response.in_progress``, per output item ``output_item.added``
    → its parts' ``added`` / deltas / ``done`` → ``output_item.done``, then
    ``response.completed`` (or ``response.incomplete``) carrying the whole response."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._id: str | None = None
        self._created = int(time.time())
        self._seq = 0
        self._output: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None  # the output item being streamed
        self._block: int | None = None
        self._text: list[str] = []  # the open item's text (or arguments) so far
        self._usage: Usage | None = None
        self._finish: FinishReason = "stop"

    def _frame(self, kind: str, fields: dict[str, Any]) -> bytes:
        doc = {"type": kind, "sequence_number": self._seq, **fields}
        self._seq += 1
        return sse_event(kind.encode(), doc)

    def _response(self, status: str) -> dict[str, Any]:
        assert self._id is not None
        incomplete = None
        if status == "incomplete":
            incomplete = status_of(self._finish)[1]
        usage = self._usage if status != "in_progress" else None
        return response_doc(
            self._id, self._model, self._created, status, self._output, usage, incomplete
        )

    def _start(self, event: StreamStart | None = None) -> bytes:
        if self._id is not None:
            return b""
        if event is not None and event.model:
            self._model = event.model
        self._id = response_id_of(event.id if event is not None else None)
        response = self._response("in_progress")
        response["output"] = []
        return self._frame("response.created", {"response": response}) + self._frame(
            "response.in_progress", {"response": response}
        )

    def _item_fields(self) -> dict[str, Any]:
        assert self._open is not None
        return {"item_id": self._open["id"], "output_index": len(self._output) - 1}

    def _open_item(self, block: int, item: dict[str, Any]) -> bytes:
        out = self._close_item()
        self._block = block
        self._open = item
        self._text = []
        self._output.append(item)
        added = {**item, "status": "in_progress"}
        if item["type"] == "message":
            added["content"] = []
        elif item["type"] == "reasoning":
            added["summary"] = []
        out += self._frame(
            "response.output_item.added", {"output_index": len(self._output) - 1, "item": added}
        )
        if item["type"] == "message":
            out += self._frame(
                "response.content_part.added",
                {**self._item_fields(), "content_index": 0, "part": text_part("")},
            )
        elif item["type"] == "reasoning":
            out += self._frame(
                "response.reasoning_summary_part.added",
                {
                    **self._item_fields(),
                    "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""},
                },
            )
        return out

    def _close_item(self) -> bytes:
        item = self._open
        if item is None:
            return b""
        fields = self._item_fields()
        text = "".join(self._text)
        out = b""
        kind = item["type"]
        if kind == "message":
            part = text_part(text)
            out += self._frame(
                "response.output_text.done",
                {**fields, "content_index": 0, "text": text, "logprobs": []},
            )
            out += self._frame(
                "response.content_part.done", {**fields, "content_index": 0, "part": part}
            )
            item["content"] = [part]
            item["status"] = (
                "incomplete" if self._finish in ("length", "content_filter") else "completed"
            )
        elif kind == "function_call":
            item["arguments"] = text
            item["status"] = "completed"
            out += self._frame(
                "response.function_call_arguments.done", {**fields, "arguments": text}
            )
        else:  # reasoning
            summary = {"type": "summary_text", "text": text}
            out += self._frame(
                "response.reasoning_summary_text.done", {**fields, "summary_index": 0, "text": text}
            )
            out += self._frame(
                "response.reasoning_summary_part.done",
                {**fields, "summary_index": 0, "part": summary},
            )
            item["summary"] = [summary]
        out += self._frame(
            "response.output_item.done", {"output_index": fields["output_index"], "item": item}
        )
        self._open = None
        self._block = None
        return out

    def _new_id(self, kind: str) -> str:
        assert self._id is not None
        return item_id_for(self._id, kind, len(self._output))

    def feed(self, event: StreamEvent) -> bytes:
        if isinstance(event, StreamStart):
            return self._start(event)
        out = self._start()
        if isinstance(event, TextDelta):
            if self._block != event.block:
                item = {
                    "id": self._new_id("msg"),
                    "type": "message",
                    "status": "completed",
                    "content": [],
                    "role": "assistant",
                }
                out += self._open_item(event.block, item)
            self._text.append(event.text)
            out += self._frame(
                "response.output_text.delta",
                {**self._item_fields(), "content_index": 0, "delta": event.text, "logprobs": []},
            )
        elif isinstance(event, ToolCallStart):
            item = {
                "id": self._new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "arguments": "",
                "call_id": event.id,
                "name": event.name,
            }
            out += self._open_item(event.block, item)
        elif isinstance(event, ToolArgsDelta):
            if self._block == event.block and event.delta:
                self._text.append(event.delta)
                out += self._frame(
                    "response.function_call_arguments.delta",
                    {**self._item_fields(), "delta": event.delta},
                )
        elif isinstance(event, ThinkingDelta):
            if self._block != event.block:
                out += self._open_item(event.block, reasoning_item(self._new_id("rs"), None, ""))
            if event.signature is not None and self._open is not None:
                self._open["encrypted_content"] = SIGNED + event.signature
            if event.text:
                self._text.append(event.text)
                out += self._frame(
                    "response.reasoning_summary_text.delta",
                    {**self._item_fields(), "summary_index": 0, "delta": event.text},
                )
        elif isinstance(event, UsageUpdate):
            self._usage = event.usage
        elif isinstance(event, Finish):
            self._finish = event.reason
        return out

    def finish(self) -> bytes:
        out = self._start() + self._close_item()
        status, _ = status_of(self._finish)
        if status == "failed":
            return out + self.error("the provider ended the answer with an error")
        kind = "response.incomplete" if status == "incomplete" else "response.completed"
        return out + self._frame(kind, {"response": self._response(status)})

    def error(self, message: str) -> bytes:
        """An ``error`` event with the fields flat (as the API reference and the SDK's
        ``ResponseErrorEvent`` have them) and nested under ``error`` (as the live API sends
        them, and as the SDK's stream reader needs to raise ``APIError``). Nothing else:
        an encoder that wrote nothing yet (a pass-through stream cut by the provider) writes
        no ``response.created`` of its own."""
        error = {"type": "server_error", "code": "server_error", "message": message, "param": None}
        return self._frame(
            "error", {"code": "server_error", "message": message, "param": None, "error": error}
        )
