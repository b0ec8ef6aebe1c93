"""OpenAI's Responses API (``POST /v1/responses``): spoken by clients (inbound) and by the
``openai`` provider when its registry asks for it (outbound).

Shapes follow the API reference and the ``openai`` SDK's types
(``openai/types/responses/``: ``Response``, ``ResponseInputItemParam``, the
``Response*Event`` stream events) and its stream accumulator
(``openai/lib/streaming/responses/_responses.py``), which the encoder's output must satisfy.

What cannot cross to another format:
- ``previous_response_id``, ``conversation`` and ``prompt`` name state stored at OpenAI: a
  request using them cannot be served by another provider (400, says why);
- built-in tools (``web_search``, ``file_search``, ``computer_use_preview``, …) run inside
  OpenAI: 400 naming the tool type; so do images and files given by ``file_id``;
- ``store``, ``include``, ``truncation``, ``background`` and the other knobs of OpenAI's
  own service are dropped and listed in ``ChatRequest.dropped``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from trustgate_proxy.domain.formats.base import UpstreamStreamError, WireFormat
from trustgate_proxy.domain.formats.common import (
    as_int,
    as_number,
    data_url,
    error_message,
    image_url,
    json_object_after,
)
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    Image,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    StreamEnd,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Untranslatable,
    Usage,
    UsageUpdate,
)
from trustgate_proxy.domain.formats.sse import SSEReader, sse_event

FORMAT: WireFormat = "openai_responses"

# Request fields served by the model; the stateful ones refused; all others are dropped.
_HANDLED = frozenset(
    {
        "model",
        "instructions",
        "input",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_output_tokens",
        "temperature",
        "top_p",
        "text",
        "reasoning",
        "user",
        "metadata",
        "stream",
    }
)
_STATEFUL = {
    "previous_response_id": "previous_response_id continues a response stored by OpenAI",
    "conversation": "conversation names a conversation stored by OpenAI",
    "prompt": "prompt names a prompt template stored by OpenAI",
}
_STATELESS_HINT = (
    "; the route's provider does not speak the Responses API, so send the whole "
    "conversation in `input` instead"
)


# -- helpers ------------------------------------------------------------------------------


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    usage = Usage(
        input_tokens=as_int(raw.get("input_tokens")) or 0,
        output_tokens=as_int(raw.get("output_tokens")) or 0,
    )
    details = raw.get("input_tokens_details")
    if isinstance(details, dict):
        usage.cached_input_tokens = as_int(details.get("cached_tokens"))
        usage.cache_write_tokens = as_int(details.get("cache_write_tokens"))
    details = raw.get("output_tokens_details")
    if isinstance(details, dict):
        usage.reasoning_tokens = as_int(details.get("reasoning_tokens"))
    return usage


def _usage_doc(usage: Usage | None) -> dict[str, Any] | None:
    if usage is None:
        return None
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens or 0,
            "cache_write_tokens": usage.cache_write_tokens or 0,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def _incomplete_finish(doc: dict[str, Any]) -> FinishReason:
    details = doc.get("incomplete_details")
    reason = details.get("reason") if isinstance(details, dict) else None
    return "content_filter" if reason == "content_filter" else "length"


def _summary_text(item: dict[str, Any]) -> str:
    """A reasoning item's visible text: its summary parts (or its raw reasoning text)."""
    parts = item.get("summary") or item.get("content") or []
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n\n".join(texts)


# Another provider's reasoning state (an Anthropic/Bedrock/Gemini signature, Anthropic's
# redacted thinking), given to a Responses client in the reasoning item's opaque
# ``encrypted_content`` and recognised when the client sends the item back, so a later turn
# (a tool result after thinking) reaches that provider with it intact.
_SIGNED = "trustgate.signature:"
_REDACTED = "trustgate.redacted:"


def _opaque(thinking: Thinking) -> str | None:
    """A reasoning item's ``encrypted_content`` for ``thinking``."""
    if thinking.redacted:
        return _REDACTED + thinking.data if thinking.data is not None else None
    if thinking.signature is not None:
        return _SIGNED + thinking.signature
    return thinking.data


def _thinking(item: dict[str, Any]) -> Thinking:
    """A reasoning item as a ``Thinking`` block (see ``_opaque``)."""
    encrypted = item.get("encrypted_content")
    raw_id = item.get("id")
    item_id = raw_id if isinstance(raw_id, str) else None
    text = _summary_text(item)
    if not isinstance(encrypted, str):
        return Thinking(text, id=item_id)
    if encrypted.startswith(_SIGNED):
        return Thinking(text, signature=encrypted[len(_SIGNED) :], id=item_id)
    if encrypted.startswith(_REDACTED):
        return Thinking(redacted=True, data=encrypted[len(_REDACTED) :], id=item_id)
    return Thinking(text, data=encrypted, id=item_id)


def _error_message(doc: Any, default: str) -> str:
    """The message of an ``error`` event or a failed response's ``error`` (flat as the API
    reference documents it, or nested under ``error`` as the live API sends it)."""
    return error_message(doc) or default


# -- request: Responses -> model ------------------------------------------------------------


class _InputReader:
    """``input`` items to messages (consecutive items of one role share a message)."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.names: dict[str, str] = {}

    def _message(self, role: str) -> Message:
        messages = self.request.messages
        if messages and messages[-1].role == role:
            return messages[-1]
        message = Message("user" if role == "user" else "assistant")
        messages.append(message)
        return message

    def read(self, value: Any) -> None:
        if isinstance(value, str):
            self._message("user").parts.append(Text(value))
            return
        if not isinstance(value, list):
            raise Untranslatable("input must be a string or a list of items")
        for item in value:
            if not isinstance(item, dict):
                raise Untranslatable("input items must be objects")
            self.item(item)

    def item(self, item: dict[str, Any]) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self.message(item)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise Untranslatable("a function_call item needs call_id and name")
            arguments = item.get("arguments")
            self.names[call_id] = name
            self._message("assistant").parts.append(
                ToolCall(call_id, name, arguments if isinstance(arguments, str) else "{}")
            )
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise Untranslatable("a function_call_output item needs call_id")
            content = self.tool_output(item.get("output"))
            result = ToolResult(call_id, content, name=self.names.get(call_id))
            self._message("user").parts.append(result)
        elif kind == "reasoning":
            self._message("assistant").parts.append(_thinking(item))
        elif kind == "item_reference":
            raise Untranslatable(
                "an item_reference names an item stored by OpenAI" + _STATELESS_HINT
            )
        else:
            raise Untranslatable(
                f"input items of type '{kind}' belong to OpenAI's built-in tools and cannot "
                "be sent to another provider"
            )

    def message(self, item: dict[str, Any]) -> None:
        role = item.get("role")
        content = item.get("content")
        parts = self.content(content)
        if role in ("system", "developer"):
            texts = [p.text for p in parts if isinstance(p, Text)]
            if len(texts) != len(parts):
                raise Untranslatable(f"a {role} message may only hold text")
            self.request.system.append("\n".join(texts))
        elif role in ("user", "assistant"):
            self._message(role).parts.extend(parts)
        else:
            raise Untranslatable(f"unknown message role '{role}'")

    def content(self, content: Any) -> list[Text | Image]:
        if isinstance(content, str):
            return [Text(content)]
        if not isinstance(content, list):
            raise Untranslatable("message content must be a string or a list of parts")
        return [self.part(p) for p in content]

    def part(self, part: Any) -> Text | Image:
        if not isinstance(part, dict):
            raise Untranslatable("content parts must be objects")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            return Text(str(part.get("text") or ""))
        if kind == "refusal":
            return Text(str(part.get("refusal") or ""))
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise Untranslatable(
                    "input_image by file_id refers to OpenAI's file store and cannot be "
                    "sent to another provider: pass image_url (https or a data URL)"
                )
            detail = part.get("detail")
            detail = detail if isinstance(detail, str) and detail != "auto" else None
            inline = data_url(url)
            if inline is not None:
                media = inline[0] or "application/octet-stream"
                return Image(data=inline[1], media_type=media, detail=detail)
            return Image(url=url, detail=detail)
        raise Untranslatable(f"content parts of type '{kind}' cannot be sent to another provider")

    def tool_output(self, output: Any) -> list[Text | Image]:
        if isinstance(output, str):
            return [Text(output)]
        if isinstance(output, list):
            return [self.part(p) for p in output]
        raise Untranslatable("function_call_output.output must be a string or a list of parts")


def _tool(raw: Any) -> Tool:
    if not isinstance(raw, dict):
        raise Untranslatable("tools must be objects")
    kind = raw.get("type")
    if kind != "function":
        raise Untranslatable(
            f"the built-in tool '{kind}' runs inside OpenAI's Responses API; the route's "
            "provider cannot run it"
        )
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise Untranslatable("a function tool needs a name")
    params = raw.get("parameters")
    strict = raw.get("strict")
    return Tool(
        name=name,
        description=raw.get("description") if isinstance(raw.get("description"), str) else None,
        parameters=params if isinstance(params, dict) else {"type": "object"},
        strict=strict if isinstance(strict, bool) else None,
    )


def _tool_choice(raw: Any, dropped: list[str]) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind == "function" and isinstance(raw.get("name"), str):
            return ToolChoice("tool", raw["name"])
        if kind == "allowed_tools" and raw.get("mode") in ("auto", "required"):
            dropped.append("tool_choice.tools")
            return ToolChoice(raw["mode"])
        raise Untranslatable(f"tool_choice of type '{kind}' names a tool built into OpenAI")
    raise Untranslatable("tool_choice must be auto, none, required or a function")


def _response_format(raw: Any, dropped: list[str]) -> ResponseFormat | None:
    if not isinstance(raw, dict):
        return None
    for key in raw:
        if key != "format":
            dropped.append(f"text.{key}")
    fmt = raw.get("format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None  # the default: nothing to ask for
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        if "description" in fmt:
            dropped.append("text.format.description")
        schema, name, strict = fmt.get("schema"), fmt.get("name"), fmt.get("strict")
        return ResponseFormat(
            "json_schema",
            schema=schema if isinstance(schema, dict) else None,
            name=name if isinstance(name, str) else None,
            strict=strict if isinstance(strict, bool) else None,
        )
    raise Untranslatable(f"text.format of type '{kind}' is not supported")


def _reasoning(raw: Any, dropped: list[str]) -> Reasoning | None:
    if not isinstance(raw, dict):
        return None
    for key, value in raw.items():
        if key != "effort" and value is not None:
            dropped.append(f"reasoning.{key}")
    effort = raw.get("effort")
    return Reasoning(effort=effort) if isinstance(effort, str) else None


# -- request: model -> Responses ------------------------------------------------------------


def _effort(reasoning: Reasoning) -> str | None:
    if reasoning.effort is not None:
        return reasoning.effort
    budget = reasoning.budget_tokens
    if budget is None:
        return None
    if budget <= 0:
        return "minimal"
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def _input_part(part: Text | Image) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "input_text", "text": part.text}
    return {"type": "input_image", "image_url": image_url(part), "detail": part.detail or "auto"}


def _flush(items: list[dict[str, Any]], role: str, run: list[dict[str, Any]]) -> None:
    """The message item of ``role`` holding the content parts gathered in ``run``."""
    if run:
        items.append({"type": "message", "role": role, "content": list(run)})
        run.clear()


def _input_items(request: ChatRequest) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    dropped = request.dropped
    for message in request.messages:
        role = message.role
        run: list[dict[str, Any]] = []  # content of the message item being built
        for part in message.parts:
            if isinstance(part, Text):
                if role == "assistant":
                    run.append({"type": "output_text", "text": part.text, "annotations": []})
                else:
                    run.append(_input_part(part))
            elif isinstance(part, Image):
                if role == "assistant":
                    dropped.append("assistant image")
                else:
                    run.append(_input_part(part))
            elif isinstance(part, ToolCall):
                _flush(items, role, run)
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.id,
                        "name": part.name,
                        "arguments": part.arguments,
                    }
                )
            elif isinstance(part, ToolResult):
                _flush(items, role, run)
                items.append(_tool_output(part, dropped))
            else:
                _flush(items, role, run)
                reasoning = _reasoning_input(part)
                if reasoning is None:
                    dropped.append("thinking")
                else:
                    items.append(reasoning)
        _flush(items, role, run)
    return items


def _tool_output(part: ToolResult, dropped: list[str]) -> dict[str, Any]:
    if part.is_error:
        dropped.append("tool_result.is_error")
    output: str | list[dict[str, Any]]
    if all(isinstance(p, Text) for p in part.content):
        output = "".join(p.text for p in part.content if isinstance(p, Text))
    else:
        output = [_input_part(p) for p in part.content]
    return {"type": "function_call_output", "call_id": part.tool_call_id, "output": output}


def _reasoning_input(part: Thinking) -> dict[str, Any] | None:
    """An earlier reasoning item to send back; ``None`` for another provider's reasoning
    (a signature or redacted data OpenAI cannot verify, or no item id)."""
    if part.id is None or part.signature is not None or part.redacted:
        return None
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": part.id,
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
    }
    if part.data is not None:
        item["encrypted_content"] = part.data
    return item


# -- response: Responses <-> model ----------------------------------------------------------


def _response_id(raw: str | None) -> str:
    if raw and raw.startswith("resp_"):
        return raw
    if raw:
        core = "".join(c for c in raw if c.isalnum())
        if core:
            return "resp_" + core
    return "resp_" + uuid.uuid4().hex


def _item_id(response_id: str, kind: str, index: int) -> str:
    return f"{kind}_{response_id.removeprefix('resp_')}_{index}"


def _status(finish: FinishReason) -> tuple[str, dict[str, Any] | None]:
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    if finish == "error":
        return "failed", None
    return "completed", None


def _response_doc(
    response_id: str,
    model: str,
    created: int,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None,
    incomplete: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Response object as the API returns it (fields a stateless gateway cannot know
    take the API's defaults)."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": (
            {"code": "server_error", "message": "the provider ended the answer with an error"}
            if status == "failed"
            else None
        ),
        "incomplete_details": incomplete,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": _usage_doc(usage),
        "user": None,
        "metadata": {},
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _reasoning_item(item_id: str, thinking: Thinking | None, text: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text else [],
    }
    opaque = _opaque(thinking) if thinking is not None else None
    if opaque is not None:
        item["encrypted_content"] = opaque
    return item


def _output_items(response: ChatResponse, response_id: str) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    status = "incomplete" if response.finish in ("length", "content_filter") else "completed"
    for part in response.parts:
        index = len(output)
        if isinstance(part, Text):
            if message is None:
                message = {
                    "id": _item_id(response_id, "msg", index),
                    "type": "message",
                    "status": status,
                    "content": [],
                    "role": "assistant",
                }
                output.append(message)
            message["content"].append(_text_part(part.text))
            continue
        message = None
        if isinstance(part, ToolCall):
            output.append(
                {
                    "id": _item_id(response_id, "fc", index),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": part.arguments,
                    "call_id": part.id,
                    "name": part.name,
                }
            )
        elif isinstance(part, Thinking):
            output.append(_reasoning_item(_item_id(response_id, "rs", index), part, part.text))
    return output


def _decode_output(doc: dict[str, Any]) -> tuple[list[Part], bool]:
    parts: list[Part] = []
    calls = False
    for item in doc.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for content in item.get("content") or []:
                if not isinstance(content, dict):
                    continue
                if content.get("type") == "output_text":
                    parts.append(Text(str(content.get("text") or "")))
                elif content.get("type") == "refusal":
                    parts.append(Text(str(content.get("refusal") or "")))
        elif kind == "function_call":
            calls = True
            arguments = item.get("arguments")
            parts.append(
                ToolCall(
                    str(item.get("call_id") or item.get("id") or ""),
                    str(item.get("name") or ""),
                    arguments if isinstance(arguments, str) else "{}",
                )
            )
        elif kind == "reasoning":
            parts.append(_thinking(item))
    return parts, calls


# -- streams --------------------------------------------------------------------------------


class ResponsesStreamDecoder:
    """The Responses API's SSE events to stream events."""

    def __init__(self) -> None:
        self._sse = SSEReader()
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
            usage = _usage(response.get("usage"))
            if usage is not None:
                out.append(UsageUpdate(usage))
            if kind == "response.incomplete":
                finish: FinishReason = _incomplete_finish(response)
            else:
                finish = "tool_calls" if self._calls else "stop"
            out.append(Finish(finish))
            out.append(StreamEnd())
            self._ended = True
        elif kind == "response.failed":
            raise UpstreamStreamError(
                _error_message(doc.get("response"), "the provider's response failed")
            )
        elif kind == "error":
            raise UpstreamStreamError(_error_message(doc, "the provider's stream failed"))

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
            incomplete = _status(self._finish)[1]
        usage = self._usage if status != "in_progress" else None
        return _response_doc(
            self._id, self._model, self._created, status, self._output, usage, incomplete
        )

    def _start(self, event: StreamStart | None = None) -> bytes:
        if self._id is not None:
            return b""
        if event is not None and event.model:
            self._model = event.model
        self._id = _response_id(event.id if event is not None else None)
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
                {**self._item_fields(), "content_index": 0, "part": _text_part("")},
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
            part = _text_part(text)
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
        return _item_id(self._id, kind, len(self._output))

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
                out += self._open_item(event.block, _reasoning_item(self._new_id("rs"), None, ""))
            if event.signature is not None and self._open is not None:
                self._open["encrypted_content"] = _SIGNED + event.signature
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
        status, _ = _status(self._finish)
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


# -- codecs ---------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class ResponsesInbound:
    """Clients speaking the Responses API to ``/v1/responses``."""

    format: WireFormat = FORMAT

    def decode_request(self, doc: dict[str, Any]) -> ChatRequest:
        for key, why in _STATEFUL.items():
            if doc.get(key) is not None:
                raise Untranslatable(why + _STATELESS_HINT)
        model = doc.get("model")
        request = ChatRequest(model=model if isinstance(model, str) else "")
        dropped = request.dropped
        instructions = doc.get("instructions")
        if isinstance(instructions, str) and instructions:
            request.system.append(instructions)
        elif instructions is not None and not isinstance(instructions, str):
            raise Untranslatable("instructions must be a string")
        _InputReader(request).read(doc.get("input", []))
        request.tools = [_tool(t) for t in doc.get("tools") or []]
        request.tool_choice = _tool_choice(doc.get("tool_choice"), dropped)
        parallel = doc.get("parallel_tool_calls")
        request.parallel_tool_calls = parallel if isinstance(parallel, bool) else None
        request.max_tokens = as_int(doc.get("max_output_tokens"))
        request.temperature = as_number(doc.get("temperature"))
        request.top_p = as_number(doc.get("top_p"))
        request.response_format = _response_format(doc.get("text"), dropped)
        request.reasoning = _reasoning(doc.get("reasoning"), dropped)
        user = doc.get("user")
        request.user = user if isinstance(user, str) else None
        metadata = doc.get("metadata")
        request.metadata = metadata if isinstance(metadata, dict) and metadata else None
        request.stream = doc.get("stream") is True
        dropped.extend(k for k, v in doc.items() if k not in _HANDLED and v is not None)
        return request

    def encode_response(self, response: ChatResponse) -> dict[str, Any]:
        response_id = _response_id(response.id)
        status, incomplete = _status(response.finish)
        return _response_doc(
            response_id,
            response.model,
            response.created or int(time.time()),
            status,
            _output_items(response, response_id),
            response.usage,
            incomplete,
        )

    def stream_encoder(self, model: str) -> ResponsesStreamEncoder:
        return ResponsesStreamEncoder(model)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _ERROR_TYPES.get(
            status, ("server_error", None) if status >= 500 else ("invalid_request_error", None)
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class ResponsesOutbound:
    """The ``openai`` provider's Responses API (``{base}/responses``)."""

    format: WireFormat = FORMAT

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model}
        if request.system:
            body["instructions"] = "\n\n".join(request.system)
        body["input"] = _input_items(request)
        if request.tools:
            body["tools"] = [
                {
                    "type": "function",
                    "name": t.name,
                    **({"description": t.description} if t.description is not None else {}),
                    "parameters": t.parameters,
                    # the Responses API defaults to strict schemas; other formats do not
                    "strict": bool(t.strict),
                }
                for t in request.tools
            ]
        choice = request.tool_choice
        if choice is not None:
            body["tool_choice"] = (
                {"type": "function", "name": choice.name} if choice.mode == "tool" else choice.mode
            )
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.top_p is not None:
            body["top_p"] = request.top_p
        fmt = request.response_format
        if fmt is not None:
            if fmt.type == "json_schema":
                spec: dict[str, Any] = {
                    "type": "json_schema",
                    "name": fmt.name or "response",
                    "schema": fmt.schema or {"type": "object"},
                }
                if fmt.strict is not None:
                    spec["strict"] = fmt.strict
                body["text"] = {"format": spec}
            else:
                body["text"] = {"format": {"type": fmt.type}}
        if request.reasoning is not None:
            effort = _effort(request.reasoning)
            if effort is not None:
                # ``summary`` asks for the reasoning text the other formats return
                body["reasoning"] = {"effort": effort, "summary": "auto"}
        if request.user is not None:
            body["user"] = request.user
        if request.metadata:
            body["metadata"] = request.metadata
        if request.stream:
            body["stream"] = True
        for name in ("top_k", "seed", "presence_penalty", "frequency_penalty"):
            if getattr(request, name) is not None:
                request.dropped.append(name)
        if request.stop:
            request.dropped.append("stop")
        return body

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        parts, calls = _decode_output(doc)
        status = doc.get("status")
        finish: FinishReason
        if status == "incomplete":
            finish = _incomplete_finish(doc)
        elif status == "failed":
            finish = "error"
        else:
            finish = "tool_calls" if calls else "stop"
        created = as_number(doc.get("created_at"))
        return ChatResponse(
            id=str(doc.get("id") or ""),
            model=str(doc.get("model") or ""),
            parts=parts,
            finish=finish,
            usage=_usage(doc.get("usage")),
            created=int(created) if created is not None else 0,
        )

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace").strip()
            return text[:500] or f"the provider answered {status}"
        return _error_message(doc, f"the provider answered {status}")


# -- pass-through usage ---------------------------------------------------------------------

_USAGE_KEY = b'"usage"'
_TERMINAL = (
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
    b"event: error\n",
    b'"type":"response.completed"',
    b'"type":"response.incomplete"',
    b'"type":"response.failed"',
    b'"type": "response.completed"',
    b'"type": "response.incomplete"',
    b'"type": "response.failed"',
)


def _last_usage(buf: bytes) -> Usage | None:
    """The last non-null ``"usage": {...}`` object in ``buf`` (decoding only that)."""
    return _usage(json_object_after(buf, _USAGE_KEY, last=True))


class ResponsesUsage:
    """Usage of a same-format exchange: the Response's ``usage``, or that of the stream's
    ``response.completed`` / ``response.incomplete`` (its last event)."""

    def from_body(self, body: bytes) -> Usage | None:
        return _last_usage(body)

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        return _last_usage(tail)

    def stream_complete(self, tail: bytes) -> bool:
        return any(marker in tail for marker in _TERMINAL)


INBOUND_CODEC = ResponsesInbound()
OUTBOUND_CODEC = ResponsesOutbound()
USAGE_READER = ResponsesUsage()
