"""The OpenAI family of providers: the canonical request as a Chat Completions body, and
its answer and errors read back.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_int, image_url, note, upstream_message
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Image,
    Part,
    Reasoning,
    ResponseFormat,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from trustgate_proxy.domain.formats.openai_chat.stream import ChatStreamDecoder
from trustgate_proxy.domain.formats.openai_chat.wire import (
    finish_reason,
    reasoning_text,
    tool_call_doc,
    usage_of,
)

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
                calls.append(tool_call_doc(part))
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
            thinking = reasoning_text(message)
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
            finish=finish_reason(
                choice.get("finish_reason") if isinstance(choice, dict) else None, calls
            ),
            usage=usage_of(doc.get("usage")),
            created=created or 0,
        )

    def stream_decoder(self) -> ChatStreamDecoder:
        return ChatStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        return upstream_message(body, f"the provider answered {status}")
