"""Providers speaking Anthropic Messages: the canonical request as Anthropic's body
(defaults, thinking budget, dropped fields), and its answer and errors read back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_proxy.domain.formats.anthropic.content import encode_messages, response_parts
from trustgate_proxy.domain.formats.anthropic.stream import AnthropicStreamDecoder
from trustgate_proxy.domain.formats.anthropic.wire import (
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    MIN_THINKING_BUDGET,
    finish_reason,
    usage_from,
)
from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import note, upstream_message
from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse


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
        doc["messages"] = encode_messages(request.messages, dropped)
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
            parts=response_parts(doc.get("content")),
            finish=finish_reason(doc.get("stop_reason")),
            usage=usage_from(usage) if isinstance(usage, Mapping) else None,
        )

    def stream_decoder(self) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        return upstream_message(body, f"upstream error {status}")
