"""Anthropic's Messages API (``POST /v1/messages``), spoken by clients and to providers.

Wire shapes follow Anthropic's API reference and the official ``anthropic`` SDK's types
(``MessageCreateParams``, ``Message``, ``RawMessageStreamEvent``): a request with
``model``, ``max_tokens`` (required), ``system`` (a string or text blocks), ``messages``
of content blocks (``text``, ``image``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``), ``tools`` (``input_schema``), ``tool_choice`` (``auto`` | ``any`` |
``tool`` | ``none`` with ``disable_parallel_tool_use``), ``thinking`` (``enabled`` with
``budget_tokens``) and the sampling fields; an answer of content blocks with a
``stop_reason`` and ``usage`` whose ``input_tokens`` excludes cache reads and writes
(reported apart); a stream of named SSE events ``message_start``, then per block
``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, then
``message_delta`` (stop reason, cumulative usage) and ``message_stop``, with ``ping``
anywhere and ``error`` as the failure event.

Translation choices (the docs' table lists the drops):
- a canonical request without ``max_tokens`` gets ``DEFAULT_MAX_TOKENS`` (Anthropic
  requires one);
- an OpenAI-style reasoning ``effort`` becomes a thinking budget (``EFFORT_BUDGETS``);
  with thinking on, ``temperature`` and ``top_k`` are dropped (Anthropic refuses them);
- unsigned thinking (another format's reasoning text) is dropped: Anthropic only takes
  thinking blocks back with the signature it made;
- consecutive turns of one role are merged and tool results go first in a user turn, as
  Anthropic requires;
- ``pause_turn`` (a server tool paused the turn) reads as ``stop``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats.base import UpstreamStreamError, WireFormat
from trustgate_proxy.domain.formats.common import (
    arguments_json,
    as_int,
    as_number,
    data_url,
    error_message,
    json_object_after,
    note,
    tool_arguments,
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

DEFAULT_MAX_TOKENS = 4096
# An OpenAI-style reasoning effort as an Anthropic thinking budget (and back: the nearest).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
MIN_THINKING_BUDGET = 1024

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# Request fields this codec reads; any other top-level field is named in ``dropped``.
_KNOWN = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "metadata",
        "output_config",
    }
)


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def _num(value: Any, name: str) -> float | None:
    number = as_number(value)
    if number is None and value is not None:
        raise InvalidRequest(f"{name}: a number is expected")
    return number


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Anthropic's usage (input excludes cache reads/writes) normalised."""
    read = as_int(raw.get("cache_read_input_tokens"))
    write = as_int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=(as_int(raw.get("input_tokens")) or 0) + (read or 0) + (write or 0),
        output_tokens=as_int(raw.get("output_tokens")) or 0,
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def usage_to(usage: Usage | None) -> dict[str, Any]:
    """Normalised usage back in Anthropic's shape."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    read = usage.cached_input_tokens or 0
    write = usage.cache_write_tokens or 0
    out: dict[str, Any] = {
        "input_tokens": max(0, usage.input_tokens - read - write),
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_write_tokens is not None:
        out["cache_creation_input_tokens"] = write
    if usage.cached_input_tokens is not None:
        out["cache_read_input_tokens"] = read
    return out


def _input(call: ToolCall) -> dict[str, Any]:
    return tool_arguments(call, "Anthropic")


def _finish(stop_reason: Any) -> FinishReason:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


# -- content blocks ------------------------------------------------------------------------


def _decode_image(block: Mapping[str, Any], dropped: list[str]) -> Image:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise InvalidRequest("image: a source is required")
    if block.get("cache_control") is not None:
        note(dropped, "cache_control")
    kind = source.get("type")
    if kind == "base64":
        data, media = source.get("data"), source.get("media_type")
        if not isinstance(data, str) or not isinstance(media, str):
            raise InvalidRequest("image: a base64 source needs data and media_type")
        return Image(data=data, media_type=media)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequest("image: a url source needs a url")
        return Image(url=url)
    raise Untranslatable(f"image source '{kind}' cannot be translated to another format")


def _decode_text(block: Mapping[str, Any], dropped: list[str]) -> Text:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest("text block: text must be a string")
    if block.get("cache_control") is not None:
        note(dropped, "cache_control")
    if block.get("citations"):
        note(dropped, "citations")
    return Text(text)


def _decode_result_content(content: Any, dropped: list[str]) -> list[Text | Image]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise InvalidRequest("tool_result: content must be a string or a list of blocks")
    out: list[Text | Image] = []
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            out.append(_decode_text(block, dropped))
        elif kind == "image":
            out.append(_decode_image(block, dropped))
        else:
            raise Untranslatable(f"tool_result block '{kind}' cannot be translated")
    return out


def _decode_block(block: Any, dropped: list[str]) -> Part:
    if not isinstance(block, Mapping):
        raise InvalidRequest("a content block must be an object")
    kind = block.get("type")
    if kind == "text":
        return _decode_text(block, dropped)
    if kind == "image":
        return _decode_image(block, dropped)
    if kind == "tool_use":
        call_id, name = block.get("id"), block.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidRequest("tool_use: id and name are required")
        if block.get("cache_control") is not None:
            note(dropped, "cache_control")
        return ToolCall(call_id, name, arguments_json(block.get("input")))
    if kind == "tool_result":
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str):
            raise InvalidRequest("tool_result: tool_use_id is required")
        if block.get("cache_control") is not None:
            note(dropped, "cache_control")
        return ToolResult(
            call_id,
            _decode_result_content(block.get("content"), dropped),
            is_error=block.get("is_error") is True,
        )
    if kind == "thinking":
        text, signature = block.get("thinking"), block.get("signature")
        return Thinking(
            text if isinstance(text, str) else "",
            signature=signature if isinstance(signature, str) else None,
        )
    if kind == "redacted_thinking":
        data = block.get("data")
        return Thinking(redacted=True, data=data if isinstance(data, str) else None)
    raise Untranslatable(f"content block '{kind}' cannot be translated to another format")


def _encode_image(image: Image, dropped: list[str]) -> dict[str, Any]:
    if image.detail is not None:
        note(dropped, "image.detail")
    if image.data is not None:
        source: dict[str, Any] = {
            "type": "base64",
            "media_type": image.media_type or "image/png",
            "data": image.data,
        }
    elif image.url is not None and image.url.startswith("data:"):
        inline = data_url(image.url)
        if inline is None:
            raise Untranslatable("image: only base64 data URLs can be translated")
        source = {"type": "base64", "media_type": inline[0] or "image/png", "data": inline[1]}
    elif image.url is not None:
        source = {"type": "url", "url": image.url}
    else:
        raise Untranslatable("image: neither a URL nor data")
    return {"type": "image", "source": source}


def _encode_result(result: ToolResult, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.tool_call_id}
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        out["content"] = result.content[0].text
    elif result.content:
        out["content"] = [
            {"type": "text", "text": p.text} if isinstance(p, Text) else _encode_image(p, dropped)
            for p in result.content
            if not (isinstance(p, Text) and not p.text)
        ]
    if result.is_error:
        out["is_error"] = True
    return out


def _encode_part(part: Part, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, Image):
        return _encode_image(part, dropped)
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": _input(part)}
    if isinstance(part, ToolResult):
        return _encode_result(part, dropped)
    if part.redacted:
        if part.data is None:
            return None
        return {"type": "redacted_thinking", "data": part.data}
    if part.signature is None:
        note(dropped, "thinking (unsigned)")
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def _encode_messages(messages: list[Message], dropped: list[str]) -> list[dict[str, Any]]:
    """Anthropic's turns: one role at a time (consecutive ones merged), tool results first
    in a user turn, empty text blocks left out."""
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks = [b for p in message.parts if (b := _encode_part(p, dropped)) is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": message.role, "content": blocks})
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            content.sort(key=lambda b: b["type"] != "tool_result")  # stable
        elif len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return out


def _response_parts(content: Any) -> list[Part]:
    parts: list[Part] = []
    if not isinstance(content, list):
        return parts
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(Text(block["text"]))
        elif kind == "tool_use":
            parts.append(
                ToolCall(
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    arguments_json(block.get("input")),
                )
            )
        elif kind == "thinking":
            sig = block.get("signature")
            parts.append(
                Thinking(
                    str(block.get("thinking", "")), signature=sig if isinstance(sig, str) else None
                )
            )
        elif kind == "redacted_thinking":
            data = block.get("data")
            parts.append(Thinking(redacted=True, data=data if isinstance(data, str) else None))
        # server tool blocks (server_tool_use, web_search_tool_result, ...) have no
        # canonical form: left out of a translated answer
    return parts


def _response_content(parts: list[Part]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            try:
                value = _input(part)
            except Untranslatable:
                value = {}
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": value})
        elif isinstance(part, Thinking):
            if part.redacted:
                content.append({"type": "redacted_thinking", "data": part.data or ""})
            else:
                content.append(
                    {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
                )
    return content


def _message_id(value: str | None) -> str:
    if value and value.startswith("msg_"):
        return value
    return f"msg_{value}" if value else f"msg_{time.time_ns():x}"


# -- inbound: clients speaking Anthropic Messages -------------------------------------------


class AnthropicInbound:
    format: WireFormat = "anthropic"

    def decode_request(self, doc: dict[str, Any]) -> ChatRequest:
        model = doc.get("model")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("model: a string is required")
        raw_messages = doc.get("messages")
        if not isinstance(raw_messages, list):
            raise InvalidRequest("messages: a list is required")
        dropped = [k for k in doc if k not in _KNOWN]
        req = ChatRequest(model=model, dropped=dropped, stream=doc.get("stream") is True)
        req.system = self._system(doc.get("system"), dropped)
        for raw in raw_messages:
            if not isinstance(raw, Mapping) or raw.get("role") not in ("user", "assistant"):
                raise InvalidRequest("messages: each needs a role of user or assistant")
            content = raw.get("content")
            if isinstance(content, str):
                parts: list[Part] = [Text(content)]
            elif isinstance(content, list):
                parts = [_decode_block(b, dropped) for b in content]
            else:
                raise InvalidRequest("messages: content must be a string or a list of blocks")
            req.messages.append(Message(raw["role"], parts))
        for message in req.messages:
            for part in message.parts:
                if isinstance(part, ToolResult):
                    part.name = req.tool_name(part.tool_call_id)
        self._tools(doc, req, dropped)
        max_tokens = doc.get("max_tokens")
        if max_tokens is not None and as_int(max_tokens) is None:
            raise InvalidRequest("max_tokens: an integer is required")
        req.max_tokens = as_int(max_tokens)
        req.temperature = _num(doc.get("temperature"), "temperature")
        req.top_p = _num(doc.get("top_p"), "top_p")
        top_k = doc.get("top_k")
        if top_k is not None and as_int(top_k) is None:
            raise InvalidRequest("top_k: an integer is required")
        req.top_k = as_int(top_k)
        stop = doc.get("stop_sequences")
        if stop is not None:
            if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
                raise InvalidRequest("stop_sequences: a list of strings is required")
            req.stop = list(stop)
        self._thinking(doc, req, dropped)
        metadata = doc.get("metadata")
        if isinstance(metadata, Mapping):
            if isinstance(metadata.get("user_id"), str):
                req.user = metadata["user_id"]
            if any(k != "user_id" for k in metadata):
                note(dropped, "metadata")
        return req

    @staticmethod
    def _system(system: Any, dropped: list[str]) -> list[str]:
        if system is None:
            return []
        if isinstance(system, str):
            return [system] if system else []
        if not isinstance(system, list):
            raise InvalidRequest("system: a string or a list of text blocks is required")
        out: list[str] = []
        for block in system:
            if not isinstance(block, Mapping) or block.get("type") != "text":
                raise InvalidRequest("system: only text blocks are allowed")
            out.append(_decode_text(block, dropped).text)
        return out

    @staticmethod
    def _tools(doc: dict[str, Any], req: ChatRequest, dropped: list[str]) -> None:
        tools = doc.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                raise InvalidRequest("tools: a list is required")
            for tool in tools:
                if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
                    raise InvalidRequest("tools: each needs a name")
                if tool.get("type") not in (None, "custom"):
                    raise Untranslatable(
                        f"tool '{tool['name']}' of type '{tool.get('type')}' is Anthropic's own "
                        "and cannot be translated"
                    )
                schema = tool.get("input_schema")
                if not isinstance(schema, Mapping):
                    raise InvalidRequest(f"tool '{tool['name']}': input_schema is required")
                for extra in tool:
                    if extra not in ("name", "description", "input_schema", "type", "strict"):
                        note(dropped, f"tools.{extra}")
                description = tool.get("description")
                strict = tool.get("strict")
                req.tools.append(
                    Tool(
                        tool["name"],
                        description if isinstance(description, str) else None,
                        dict(schema),
                        strict if isinstance(strict, bool) else None,
                    )
                )
        choice = doc.get("tool_choice")
        if choice is None:
            return
        if not isinstance(choice, Mapping):
            raise InvalidRequest("tool_choice: an object is required")
        kind = choice.get("type")
        if kind == "auto":
            req.tool_choice = ToolChoice("auto")
        elif kind == "any":
            req.tool_choice = ToolChoice("required")
        elif kind == "none":
            req.tool_choice = ToolChoice("none")
        elif kind == "tool" and isinstance(choice.get("name"), str):
            req.tool_choice = ToolChoice("tool", choice["name"])
        else:
            raise InvalidRequest("tool_choice: type auto, any, tool (with a name) or none")
        if isinstance(choice.get("disable_parallel_tool_use"), bool):
            req.parallel_tool_calls = not choice["disable_parallel_tool_use"]

    @staticmethod
    def _thinking(doc: dict[str, Any], req: ChatRequest, dropped: list[str]) -> None:
        thinking = doc.get("thinking")
        if isinstance(thinking, Mapping):
            kind = thinking.get("type")
            if kind == "enabled":
                budget = as_int(thinking.get("budget_tokens"))
                if budget is None:
                    raise InvalidRequest("thinking: budget_tokens is required")
                req.reasoning = Reasoning(budget_tokens=budget)
            elif kind == "adaptive":
                req.reasoning = Reasoning(effort="medium")
            if thinking.get("display") is not None:
                note(dropped, "thinking.display")
        config = doc.get("output_config")
        if not isinstance(config, Mapping):
            return
        effort = config.get("effort")
        if isinstance(effort, str):
            if req.reasoning is None:
                req.reasoning = Reasoning(effort=effort)
            else:
                req.reasoning.effort = effort
        fmt = config.get("format")
        if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
            schema = fmt.get("schema")
            req.response_format = ResponseFormat(
                "json_schema", dict(schema) if isinstance(schema, Mapping) else None
            )
        for extra in config:
            if extra not in ("effort", "format"):
                note(dropped, f"output_config.{extra}")

    def encode_response(self, response: ChatResponse) -> dict[str, Any]:
        return {
            "id": _message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": _response_content(response.parts),
            "stop_reason": FINISH_REASONS[response.finish],
            "stop_sequence": None,
            "usage": usage_to(response.usage),
        }

    def stream_encoder(self, model: str) -> AnthropicStreamEncoder:
        return AnthropicStreamEncoder(model)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error_type(status), "message": message}}


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
            "id": _message_id(self._id),
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


# -- outbound: providers speaking Anthropic Messages ----------------------------------------


class AnthropicOutbound:
    format: WireFormat = "anthropic"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        dropped = request.dropped
        max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
        doc: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens}
        if request.system:
            systems = [s for s in request.system if s]
            if len(systems) == 1:
                doc["system"] = systems[0]
            elif systems:
                doc["system"] = [{"type": "text", "text": s} for s in systems]
        doc["messages"] = _encode_messages(request.messages, dropped)
        if request.tools:
            tools = []
            for tool in request.tools:
                entry: dict[str, Any] = {"name": tool.name}
                if tool.description:
                    entry["description"] = tool.description
                entry["input_schema"] = tool.parameters or {"type": "object"}
                if tool.strict is not None:
                    entry["strict"] = tool.strict
                tools.append(entry)
            doc["tools"] = tools
            choice = self._tool_choice(request)
            if choice is not None:
                doc["tool_choice"] = choice
        elif request.tool_choice is not None and request.tool_choice.mode != "none":
            note(dropped, "tool_choice")
        thinking = self._thinking(request, doc)
        if request.temperature is not None:
            if thinking and request.temperature != 1:
                note(dropped, "temperature")
            else:
                doc["temperature"] = request.temperature
        if request.top_p is not None:
            doc["top_p"] = request.top_p
        if request.top_k is not None:
            if thinking:
                note(dropped, "top_k")
            else:
                doc["top_k"] = request.top_k
        if request.stop:
            doc["stop_sequences"] = list(request.stop)
        if request.user:
            doc["metadata"] = {"user_id": request.user}
        if request.metadata:
            note(dropped, "metadata")
        for name in ("seed", "presence_penalty", "frequency_penalty"):
            if getattr(request, name) is not None:
                note(dropped, name)
        fmt = request.response_format
        if fmt is not None and fmt.type == "json_schema" and fmt.schema is not None:
            doc.setdefault("output_config", {})["format"] = {
                "type": "json_schema",
                "schema": fmt.schema,
            }
        elif fmt is not None and fmt.type != "text":
            note(dropped, "response_format")
        if request.stream:
            doc["stream"] = True
        return doc

    @staticmethod
    def _tool_choice(request: ChatRequest) -> dict[str, Any] | None:
        choice = request.tool_choice
        out: dict[str, Any] | None = None
        if choice is not None:
            if choice.mode == "required":
                out = {"type": "any"}
            elif choice.mode == "tool" and choice.name:
                out = {"type": "tool", "name": choice.name}
            else:
                out = {"type": choice.mode if choice.mode in ("auto", "none") else "auto"}
        if request.parallel_tool_calls is False and (out is None or out["type"] != "none"):
            out = out or {"type": "auto"}
            out["disable_parallel_tool_use"] = True
        return out

    @staticmethod
    def _thinking(request: ChatRequest, doc: dict[str, Any]) -> bool:
        reasoning = request.reasoning
        if reasoning is None:
            return False
        budget = reasoning.budget_tokens
        if budget is None and reasoning.effort is not None:
            if reasoning.effort == "none":
                return False
            budget = EFFORT_BUDGETS.get(reasoning.effort, EFFORT_BUDGETS["medium"])
        if budget is None:
            return False
        budget = max(budget, MIN_THINKING_BUDGET)
        if budget >= doc["max_tokens"]:
            if request.max_tokens is None:
                doc["max_tokens"] = budget + DEFAULT_MAX_TOKENS
            elif doc["max_tokens"] > MIN_THINKING_BUDGET:
                budget = doc["max_tokens"] - 1
            else:
                note(request.dropped, "reasoning")
                return False
        doc["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return True

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        usage = doc.get("usage")
        return ChatResponse(
            id=str(doc.get("id") or ""),
            model=str(doc.get("model") or ""),
            parts=_response_parts(doc.get("content")),
            finish=_finish(doc.get("stop_reason")),
            usage=usage_from(usage) if isinstance(usage, Mapping) else None,
        )

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        message = error_message(doc)
        if message is not None:
            return message
        text = body.decode("utf-8", "replace").strip()
        return text[:500] if text else f"upstream error {status}"


class AnthropicStreamDecoder:
    """Anthropic's SSE stream, in any chunking, to canonical events."""

    __slots__ = ("_blocks", "_sse", "_usage")

    def __init__(self) -> None:
        self._sse = SSEReader()
        self._blocks: dict[int, int] = {}  # Anthropic index -> canonical block
        self._usage: dict[str, Any] = {}

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for data in self._sse.feed(chunk):
            self._event(data, out)
        return out

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
                out.append(Finish(_finish(delta["stop_reason"])))
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


# -- pass-through usage ---------------------------------------------------------------------

_USAGE_KEY = b'"usage"'


class AnthropicUsage:
    """Usage of a pass-through exchange: in a plain body, the (last) ``usage``; in a
    stream, input counts in ``message_start`` (the head) and cumulative output counts in
    the last ``message_delta`` (the tail). A stream is complete when ``message_stop``
    arrived."""

    def from_body(self, body: bytes) -> Usage | None:
        raw = json_object_after(body, _USAGE_KEY, last=True)
        return usage_from(raw) if raw is not None else None

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        start = json_object_after(head, _USAGE_KEY, last=False)
        end = json_object_after(tail, _USAGE_KEY, last=True)
        if start is None and end is None:
            return None
        merged: dict[str, Any] = dict(start or {})
        merged.update({k: v for k, v in (end or {}).items() if v is not None})
        return usage_from(merged)

    def stream_complete(self, tail: bytes) -> bool:
        return (
            b"\nevent: message_stop" in tail
            or tail.startswith(b"event: message_stop")
            or b'\ndata: {"type":"message_stop"' in tail
            or b'\ndata: {"type": "message_stop"' in tail
        )


INBOUND = AnthropicInbound()
OUTBOUND = AnthropicOutbound()
USAGE = AnthropicUsage()
