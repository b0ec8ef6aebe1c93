"""Clients speaking the Responses API to ``/v1/responses``: the request (refusing stateful
and built-in features that cannot cross to another provider), and the answer and
errors back in the API's shapes.
"""

from __future__ import annotations

import time
from typing import Any

from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_int, as_number, function_tool
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Reasoning,
    ResponseFormat,
    Tool,
    ToolChoice,
    Untranslatable,
)
from trustgate_proxy.domain.formats.openai_responses.items import InputReader, output_items
from trustgate_proxy.domain.formats.openai_responses.stream import ResponsesStreamEncoder
from trustgate_proxy.domain.formats.openai_responses.wire import (
    FORMAT,
    STATELESS_HINT,
    response_doc,
    response_id_of,
    status_of,
)

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
    return function_tool(name, raw)


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
                raise Untranslatable(why + STATELESS_HINT)
        model = doc.get("model")
        request = ChatRequest(model=model if isinstance(model, str) else "")
        dropped = request.dropped
        instructions = doc.get("instructions")
        if isinstance(instructions, str) and instructions:
            request.system.append(instructions)
        elif instructions is not None and not isinstance(instructions, str):
            raise Untranslatable("instructions must be a string")
        InputReader(request).read(doc.get("input", []))
        tools = doc.get("tools") or []
        if not isinstance(tools, list):
            raise Untranslatable("tools must be a list")
        request.tools = [_tool(t) for t in tools]
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
        response_id = response_id_of(response.id)
        status, incomplete = status_of(response.finish)
        return response_doc(
            response_id,
            response.model,
            response.created or int(time.time()),
            status,
            output_items(response, response_id),
            response.usage,
            incomplete,
        )

    def stream_encoder(
        self, model: str, include_usage: bool = True
    ) -> ResponsesStreamEncoder:  # usage always travels in response.completed
        return ResponsesStreamEncoder(model)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _ERROR_TYPES.get(
            status, ("server_error", None) if status >= 500 else ("invalid_request_error", None)
        )
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
