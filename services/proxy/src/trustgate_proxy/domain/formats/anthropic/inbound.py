"""Clients speaking Anthropic Messages to ``/v1/messages``: their request to the canonical
model, and the canonical answer and errors back in Anthropic's shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats.anthropic.content import (
    decode_block,
    decode_text,
    response_content,
)
from trustgate_proxy.domain.formats.anthropic.stream import AnthropicStreamEncoder
from trustgate_proxy.domain.formats.anthropic.wire import (
    FINISH_REASONS,
    error_type,
    message_id,
    usage_to,
)
from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_int, as_number, note
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Message,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Tool,
    ToolChoice,
    ToolResult,
    Untranslatable,
)

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


def _num(value: Any, name: str) -> float | None:
    number = as_number(value)
    if number is None and value is not None:
        raise InvalidRequest(f"{name}: a number is expected")
    return number


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
                parts = [decode_block(b, dropped) for b in content]
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
            out.append(decode_text(block, dropped).text)
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
            "id": message_id(response.id),
            "type": "message",
            "role": "assistant",
            "model": response.model,
            "content": response_content(response.parts),
            "stop_reason": FINISH_REASONS[response.finish],
            "stop_sequence": None,
            "usage": usage_to(response.usage),
        }

    def stream_encoder(
        self, model: str, include_usage: bool = True
    ) -> AnthropicStreamEncoder:  # usage always travels in message_delta
        return AnthropicStreamEncoder(model)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error_type(status), "message": message}}
