"""Clients speaking OpenAI Chat to ``/v1/chat/completions``: their request to the canonical
model (``system``/``developer`` messages to ``system``, ``tool`` messages to tool results),
and the answer and errors back in Chat's shapes.
"""

from __future__ import annotations

from time import time
from typing import Any

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_int, as_number, function_tool, note
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
    Untranslatable,
)
from trustgate_proxy.domain.formats.openai_chat.stream import ChatStreamEncoder
from trustgate_proxy.domain.formats.openai_chat.wire import (
    chat_id,
    client_finish,
    image_from_url,
    tool_call_doc,
    usage_doc,
)

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


_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


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
        tools.append(function_tool(fn["name"], fn))
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
        request.stream_usage = include_usage(doc)
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
                calls.append(tool_call_doc(part))
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not calls else None,
            "refusal": None,
        }
        if calls:
            message["tool_calls"] = calls
        doc: dict[str, Any] = {
            "id": chat_id(response.id),
            "object": "chat.completion",
            "created": response.created or int(time()),
            "model": response.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": client_finish(response.finish),
                }
            ],
        }
        if response.usage is not None:
            doc["usage"] = usage_doc(response.usage)
        return doc

    def stream_encoder(self, model: str, include_usage: bool = False) -> ChatStreamEncoder:
        return ChatStreamEncoder(model, include_usage)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
