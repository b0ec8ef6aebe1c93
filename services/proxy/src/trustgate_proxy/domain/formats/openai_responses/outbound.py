"""The ``openai`` provider's Responses API (``{base}/responses``): the canonical request as
its body, and its answer and errors read back.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import as_number, upstream_message
from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse, FinishReason, Reasoning
from trustgate_proxy.domain.formats.openai_responses.items import decode_output, input_items
from trustgate_proxy.domain.formats.openai_responses.stream import ResponsesStreamDecoder
from trustgate_proxy.domain.formats.openai_responses.wire import (
    FORMAT,
    incomplete_finish,
    usage_from,
)


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


class ResponsesOutbound:
    """The ``openai`` provider's Responses API (``{base}/responses``)."""

    format: WireFormat = FORMAT

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model}
        if request.system:
            body["instructions"] = "\n\n".join(request.system)
        body["input"] = input_items(request)
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
        parts, calls = decode_output(doc)
        status = doc.get("status")
        finish: FinishReason
        if status == "incomplete":
            finish = incomplete_finish(doc)
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
            usage=usage_from(doc.get("usage")),
            created=int(created) if created is not None else 0,
        )

    def stream_decoder(self) -> ResponsesStreamDecoder:
        return ResponsesStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        return upstream_message(body, f"the provider answered {status}")
