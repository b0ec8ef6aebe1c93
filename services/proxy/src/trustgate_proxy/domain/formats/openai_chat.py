"""OpenAI Chat Completions, both ways: what clients send to ``/v1/chat/completions``
(inbound) and what the OpenAI family of providers (``openai``, ``azure``, ``groq``,
``mistral``, ``deepseek``, ``openai_compatible``, …) is sent (outbound), plus the usage
reader a pass-through call uses.

Only translated calls come here: a Chat client routed to a Chat provider passes through
untouched (unknown fields survive). So a field this module cannot carry into the internal
model is *dropped* (named in ``ChatRequest.dropped``), and ``n`` > 1 — several answers,
which no other format gives — is refused with a 400.

Choices made (the docs' table lists them):
- ``system`` and ``developer`` messages become ``ChatRequest.system`` (their place among the
  other messages is lost); outbound, system text is one ``system`` message per entry;
- consecutive ``tool`` messages become one user message of ``ToolResult`` parts, and back;
- outbound, the token limit is sent as ``max_tokens`` (every OpenAI-compatible server
  knows it) unless reasoning is asked for, then as ``max_completion_tokens`` (what OpenAI's
  reasoning models accept); a reasoning token budget becomes an effort;
- reasoning text of OpenAI-compatible servers (``reasoning_content``, ``reasoning``) is read
  as ``Thinking``; Chat has no field for thinking, so it is not sent back out.
"""

from __future__ import annotations

from time import time
from typing import Any

import orjson

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats.base import UpstreamStreamError, WireFormat
from trustgate_proxy.domain.formats.common import (
    as_int,
    as_number,
    data_url,
    error_message,
    image_url,
    note,
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
from trustgate_proxy.domain.formats.sse import SSEReader, sse_data
from trustgate_proxy.domain.usage import find_usage

# Request fields the internal model carries (everything else is dropped by name).
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "reasoning_effort",
        "user",
        "metadata",
        "stream",
        "stream_options",
        "n",
    }
)
_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def image_from_url(url: str, detail: str | None = None) -> Image:
    """An ``image_url``'s URL as an ``Image``: a ``data:`` URL is split into its media type
    and base64 data (what providers with inline images need), other URLs are kept."""
    inline = data_url(url)
    if inline is not None and inline[0]:
        return Image(data=inline[1], media_type=inline[0], detail=detail)
    return Image(url=url, detail=detail)


# -- inbound: request -----------------------------------------------------------------------


def _text_of(content: Any, where: str) -> str:
    """The text of a system/developer/tool message's content (a string or text parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequest(f"{where}: only text parts are allowed")
            texts.append(str(part.get("text") or ""))
        return "".join(texts)
    raise InvalidRequest(f"{where}: 'content' must be a string or a list of parts")


def _user_parts(content: Any, where: str, dropped: list[str]) -> list[Part]:
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: 'content' must be a string or a list of parts")
    parts: list[Part] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append(Text(str(part.get("text") or "")))
        elif kind == "image_url":
            raw = part.get("image_url")
            url = raw.get("url") if isinstance(raw, dict) else raw
            if not isinstance(url, str) or not url:
                raise InvalidRequest(f"{where}: an image_url part needs a url")
            detail = raw.get("detail") if isinstance(raw, dict) else None
            parts.append(image_from_url(url, detail if isinstance(detail, str) else None))
        elif isinstance(kind, str):
            note(dropped, f"messages[].content[].{kind}")
        else:
            raise InvalidRequest(f"{where}: a content part needs a 'type'")
    return parts


def _assistant_parts(msg: dict[str, Any], where: str, dropped: list[str]) -> list[Part]:
    parts: list[Part] = []
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(Thinking(text=reasoning))
    content = msg.get("content")
    if isinstance(content, str):
        if content:
            parts.append(Text(content))
    elif isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                parts.append(Text(str(part.get("text") or "")))
            elif kind == "refusal":
                parts.append(Text(str(part.get("refusal") or "")))
            else:
                note(dropped, f"messages[].content[].{kind}")
    elif content is not None:
        raise InvalidRequest(f"{where}: 'content' must be a string, a list of parts or null")
    calls = msg.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise InvalidRequest(f"{where}: 'tool_calls' must be a list")
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise InvalidRequest(f"{where}: a tool call needs function.name")
            args = fn.get("arguments")
            parts.append(
                ToolCall(
                    id=str(call.get("id") or ""),
                    name=fn["name"],
                    arguments=args if isinstance(args, str) and args else "{}",
                )
            )
    if msg.get("function_call") is not None:
        note(dropped, "messages[].function_call")
    if msg.get("audio") is not None:
        note(dropped, "messages[].audio")
    return parts


def _messages(raw: Any, request: ChatRequest) -> None:
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("'messages' must be a non-empty list")
    dropped = request.dropped
    out = request.messages
    for i, msg in enumerate(raw):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise InvalidRequest(f"{where} must be an object")
        role = msg.get("role")
        if msg.get("name") is not None:
            note(dropped, "messages[].name")
        if role in ("system", "developer"):
            request.system.append(_text_of(msg.get("content"), where))
        elif role == "user":
            out.append(Message("user", _user_parts(msg.get("content"), where, dropped)))
        elif role == "assistant":
            out.append(Message("assistant", _assistant_parts(msg, where, dropped)))
        elif role == "tool":
            call_id = msg.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise InvalidRequest(f"{where}: a tool message needs 'tool_call_id'")
            result = ToolResult(
                call_id,
                [Text(_text_of(msg.get("content"), where))],
                name=request.tool_name(call_id),
            )
            last = out[-1] if out else None
            if (
                last is not None
                and last.role == "user"
                and last.parts
                and all(isinstance(p, ToolResult) for p in last.parts)
            ):
                last.parts.append(result)
            else:
                out.append(Message("user", [result]))
        elif role == "function":
            raise InvalidRequest(f"{where}: the 'function' role is deprecated; use 'tool'")
        else:
            raise InvalidRequest(f"{where}: unknown role {role!r}")


def _tools(raw: Any, dropped: list[str]) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequest("'tools' must be a list")
    tools: list[Tool] = []
    for tool in raw:
        if not isinstance(tool, dict):
            raise InvalidRequest("a tool must be an object")
        if tool.get("type", "function") != "function":
            note(dropped, f"tools[].{tool.get('type')}")
            continue
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise InvalidRequest("a function tool needs function.name")
        params = fn.get("parameters")
        strict = fn.get("strict")
        tools.append(
            Tool(
                name=fn["name"],
                description=fn.get("description")
                if isinstance(fn.get("description"), str)
                else None,
                parameters=params if isinstance(params, dict) else {"type": "object"},
                strict=strict if isinstance(strict, bool) else None,
            )
        )
    return tools


def _tool_choice(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw)
    if isinstance(raw, dict):
        fn = raw.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return ToolChoice("tool", fn["name"])
    raise InvalidRequest("'tool_choice' must be auto, none, required or a named function")


def _response_format(raw: Any) -> ResponseFormat | None:
    if raw is None:
        return None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind == "text":
        return ResponseFormat("text")
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequest("response_format.json_schema must be an object")
        schema = spec.get("schema")
        strict = spec.get("strict")
        name = spec.get("name")
        return ResponseFormat(
            "json_schema",
            schema=schema if isinstance(schema, dict) else None,
            name=name if isinstance(name, str) else None,
            strict=strict if isinstance(strict, bool) else None,
        )
    raise InvalidRequest("response_format.type must be text, json_object or json_schema")


def _stop(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        return list(raw)
    raise InvalidRequest("'stop' must be a string or a list of strings")


def include_usage(doc: dict[str, Any]) -> bool:
    """Whether a Chat client asked for the usage chunk (``stream_options.include_usage``)."""
    opts = doc.get("stream_options")
    return isinstance(opts, dict) and opts.get("include_usage") is True


# -- inbound: answer ------------------------------------------------------------------------


def _usage_doc(usage: Usage) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_input_tokens is not None:
        doc["prompt_tokens_details"] = {"cached_tokens": usage.cached_input_tokens}
    if usage.reasoning_tokens is not None:
        doc["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return doc


def _client_finish(reason: FinishReason) -> str:
    """Chat's word for a finish: its own, except ``error``, which it lacks (→ ``stop``)."""
    return "stop" if reason == "error" else reason


def _chat_id(raw: str | None) -> str:
    if not raw:
        return f"chatcmpl-{int(time() * 1000):x}"
    return raw


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
        self._id = _chat_id(event.id if event else None)
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
                "usage": _usage_doc(self._usage or Usage()),
            }
            out += sse_data(doc)
        return out + b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        return error_event(message)


def error_event(message: str) -> bytes:
    """The reference's mid-stream error event (the OpenAI SDK raises ``APIError`` on it)."""
    return sse_data({"error": {"message": message, "type": "upstream_error"}})


class OpenAIChatInbound:
    format: WireFormat = "openai_chat"

    def decode_request(self, doc: dict[str, Any]) -> ChatRequest:
        model = doc.get("model")
        n = doc.get("n")
        if n is not None and n != 1:
            raise Untranslatable("'n' > 1 (several answers) cannot be served by this provider")
        request = ChatRequest(model=model if isinstance(model, str) else "")
        dropped = request.dropped
        _messages(doc.get("messages"), request)
        request.tools = _tools(doc.get("tools"), dropped)
        request.tool_choice = _tool_choice(doc.get("tool_choice"))
        ptc = doc.get("parallel_tool_calls")
        request.parallel_tool_calls = ptc if isinstance(ptc, bool) else None
        limit = doc.get("max_completion_tokens")
        request.max_tokens = as_int(limit if limit is not None else doc.get("max_tokens"))
        request.temperature = as_number(doc.get("temperature"))
        request.top_p = as_number(doc.get("top_p"))
        request.stop = _stop(doc.get("stop"))
        request.seed = as_int(doc.get("seed"))
        request.presence_penalty = as_number(doc.get("presence_penalty"))
        request.frequency_penalty = as_number(doc.get("frequency_penalty"))
        request.response_format = _response_format(doc.get("response_format"))
        effort = doc.get("reasoning_effort")
        if isinstance(effort, str):
            request.reasoning = Reasoning(effort=effort)
        user = doc.get("user")
        request.user = user if isinstance(user, str) else None
        metadata = doc.get("metadata")
        request.metadata = metadata if isinstance(metadata, dict) else None
        request.stream = doc.get("stream") is True
        for key in doc:
            if key not in _HANDLED:
                note(dropped, key)
        return request

    def encode_response(self, response: ChatResponse) -> dict[str, Any]:
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in response.parts:
            if isinstance(part, Text):
                texts.append(part.text)
            elif isinstance(part, ToolCall):
                calls.append(
                    {
                        "id": part.id,
                        "type": "function",
                        "function": {"name": part.name, "arguments": part.arguments},
                    }
                )
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        doc: dict[str, Any] = {
            "id": _chat_id(response.id),
            "object": "chat.completion",
            "created": response.created or int(time()),
            "model": response.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _client_finish(response.finish),
                }
            ],
        }
        if response.usage is not None:
            doc["usage"] = _usage_doc(response.usage)
        return doc

    def stream_encoder(self, model: str, include_usage: bool = False) -> ChatStreamEncoder:
        return ChatStreamEncoder(model, include_usage)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# -- outbound: request ----------------------------------------------------------------------

_BUDGET_EFFORT = ((2048, "low"), (16384, "medium"))


def _effort(reasoning: Reasoning) -> str | None:
    if reasoning.effort:
        return reasoning.effort
    budget = reasoning.budget_tokens
    if budget is None:
        return None
    for limit, effort in _BUDGET_EFFORT:
        if budget <= limit:
            return effort
    return "high"


def _content(parts: list[Text | Image]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, Text) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, Text))
    out: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        else:
            image: dict[str, Any] = {"url": image_url(part)}
            if part.detail:
                image["detail"] = part.detail
            out.append({"type": "image_url", "image_url": image})
    return out


def _out_messages(request: ChatRequest) -> list[dict[str, Any]]:
    dropped = request.dropped
    out: list[dict[str, Any]] = [{"role": "system", "content": s} for s in request.system]
    for message in request.messages:
        if message.role == "user":
            run: list[Text | Image] = []
            for part in message.parts:
                if isinstance(part, ToolResult):
                    result = [p.text for p in part.content if isinstance(p, Text)]
                    if len(result) < len(part.content):
                        note(dropped, "tool_result.image")
                    if part.is_error:
                        note(dropped, "tool_result.is_error")
                    out.append(
                        {
                            "role": "tool",
                            "tool_call_id": part.tool_call_id,
                            "content": "".join(result),
                        }
                    )
                elif isinstance(part, (Text, Image)):
                    run.append(part)
                else:
                    note(dropped, f"user.{type(part).__name__.lower()}")
            if run:
                out.append({"role": "user", "content": _content(run)})
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, Text):
                texts.append(part.text)
            elif isinstance(part, ToolCall):
                calls.append(
                    {
                        "id": part.id,
                        "type": "function",
                        "function": {"name": part.name, "arguments": part.arguments},
                    }
                )
            elif isinstance(part, Thinking):
                note(dropped, "assistant.thinking")
            else:
                note(dropped, f"assistant.{type(part).__name__.lower()}")
        doc: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            doc["tool_calls"] = calls
        out.append(doc)
    return out


def _out_tool(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name, "parameters": tool.parameters}
    if tool.description is not None:
        fn["description"] = tool.description
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def _out_tool_choice(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name or ""}}
    return choice.mode


def _out_response_format(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type != "json_schema":
        return {"type": fmt.type}
    spec: dict[str, Any] = {"name": fmt.name or "response", "schema": fmt.schema or {}}
    if fmt.strict is not None:
        spec["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": spec}


# -- outbound: answer -----------------------------------------------------------------------


def usage_of(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    usage = Usage(
        input_tokens=as_int(raw.get("prompt_tokens")) or 0,
        output_tokens=as_int(raw.get("completion_tokens")) or 0,
    )
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict):
        usage.cached_input_tokens = as_int(details.get("cached_tokens"))
    details = raw.get("completion_tokens_details")
    if isinstance(details, dict):
        usage.reasoning_tokens = as_int(details.get("reasoning_tokens"))
    return usage


def _finish(raw: Any, calls: bool) -> FinishReason:
    reason = _FINISH.get(raw) if isinstance(raw, str) else None
    if reason is None:
        return "tool_calls" if calls else "stop"
    return reason


def _reasoning_text(delta: dict[str, Any]) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _error_text(doc: Any, default: str) -> str:
    return error_message(doc) or default


class ChatStreamDecoder:
    """``chat.completion.chunk`` events to stream events. ``[DONE]`` is the end marker."""

    __slots__ = ("_blocks", "_calls", "_ended", "_kind", "_sse", "_started")

    def __init__(self) -> None:
        self._sse = SSEReader()
        self._started = False
        self._ended = False
        self._blocks = 0  # blocks opened so far
        self._kind: str | None = None  # the open block: "text", "thinking", "tool"
        self._calls: dict[int, int] = {}  # tool call index -> block

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
            raise UpstreamStreamError(_error_text(doc, "the provider reported an error"))
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
                out.append(Finish(_finish(reason, bool(self._calls))))
        usage = usage_of(doc.get("usage"))
        if usage is not None:
            out.append(UsageUpdate(usage))

    def _delta(self, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        thinking = _reasoning_text(delta)
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


class OpenAIChatOutbound:
    format: WireFormat = "openai_chat"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        doc: dict[str, Any] = {"model": request.model, "messages": _out_messages(request)}
        if request.tools:
            doc["tools"] = [_out_tool(t) for t in request.tools]
        if request.tool_choice is not None:
            doc["tool_choice"] = _out_tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None and request.tools:
            doc["parallel_tool_calls"] = request.parallel_tool_calls
        effort = _effort(request.reasoning) if request.reasoning else None
        if request.max_tokens is not None:
            doc["max_completion_tokens" if effort else "max_tokens"] = request.max_tokens
        if effort:
            doc["reasoning_effort"] = effort
        for key, value in (
            ("temperature", request.temperature),
            ("top_p", request.top_p),
            ("seed", request.seed),
            ("presence_penalty", request.presence_penalty),
            ("frequency_penalty", request.frequency_penalty),
            ("user", request.user),
        ):
            if value is not None:
                doc[key] = value
        if request.top_k is not None:
            note(request.dropped, "top_k")
        if request.stop:
            doc["stop"] = request.stop
        if request.response_format is not None:
            doc["response_format"] = _out_response_format(request.response_format)
        if request.metadata:
            if all(isinstance(v, str) for v in request.metadata.values()):
                doc["metadata"] = request.metadata
            else:
                note(request.dropped, "metadata")
        if request.stream:
            doc["stream"] = True
            doc["stream_options"] = {"include_usage": True}
        return doc

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        choices = doc.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else {}
        message = choice.get("message") if isinstance(choice, dict) else None
        parts: list[Part] = []
        calls = False
        if isinstance(message, dict):
            thinking = _reasoning_text(message)
            if thinking:
                parts.append(Thinking(text=thinking))
            for key in ("content", "refusal"):
                value = message.get(key)
                if isinstance(value, str) and value:
                    parts.append(Text(value))
            for call in message.get("tool_calls") or []:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict):
                    calls = True
                    args = fn.get("arguments")
                    parts.append(
                        ToolCall(
                            str(call.get("id") or ""),
                            str(fn.get("name") or ""),
                            args if isinstance(args, str) and args else "{}",
                        )
                    )
        created = as_int(doc.get("created"))
        return ChatResponse(
            id=str(doc.get("id") or ""),
            model=str(doc.get("model") or ""),
            parts=parts,
            finish=_finish(
                choice.get("finish_reason") if isinstance(choice, dict) else None, calls
            ),
            usage=usage_of(doc.get("usage")),
            created=created or 0,
        )

    def stream_decoder(self) -> ChatStreamDecoder:
        return ChatStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            text = body.decode("utf-8", "replace").strip()
            return text[:500] or f"the provider answered {status}"
        return _error_text(doc, f"the provider answered {status}")


# -- pass-through usage ---------------------------------------------------------------------


def _from_event(raw: dict[str, Any] | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(
        input_tokens=raw["prompt_tokens"],
        output_tokens=raw["completion_tokens"],
        cached_input_tokens=raw.get("cached_input_tokens"),
        reasoning_tokens=raw.get("reasoning_output_tokens"),
    )


class OpenAIChatUsage:
    """Usage is the last ``"usage"`` object of a body or a stream's tail (with
    ``include_usage``, the last chunk carries it); ``[DONE]`` ends a stream."""

    def from_body(self, body: bytes) -> Usage | None:
        return _from_event(find_usage(body))

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        return _from_event(find_usage(tail))

    def stream_complete(self, tail: bytes) -> bool:
        return b"data: [DONE]" in tail


INBOUND_CODEC = OpenAIChatInbound()
OUTBOUND_CODEC = OpenAIChatOutbound()
USAGE_READER = OpenAIChatUsage()
