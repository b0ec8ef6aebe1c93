"""A Converse answer read back: content blocks to parts, stop reasons, usage (cache reads
and writes added into the input count) and error messages.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson

from trustgate_proxy.domain.formats.common import arguments_json, as_int
from trustgate_proxy.domain.formats.model import (
    ChatResponse,
    FinishReason,
    Part,
    Text,
    Thinking,
    ToolCall,
    Usage,
)

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}


MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}


def decode_response(doc: dict[str, Any]) -> ChatResponse:
    message = (doc.get("output") or {}).get("message") or {}
    parts: list[Part] = []
    for block in message.get("content") or []:
        if "text" in block:
            parts.append(Text(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            parts.append(
                ToolCall(
                    use.get("toolUseId", ""),
                    use.get("name", ""),
                    arguments_json(use.get("input")),
                )
            )
        elif "reasoningContent" in block:
            parts.append(_thinking(block["reasoningContent"]))
    stop = doc.get("stopReason")
    return ChatResponse(
        id=f"bedrock-{uuid4().hex}",
        model="",  # Converse answers name no model: the forwarder knows which it sent
        parts=parts,
        finish=STOP_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop",
        usage=usage_of(doc.get("usage")),
    )


def error_message(status: int, body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("Message")
        if isinstance(msg, str) and msg:
            return msg
    return f"Bedrock answered {status}"


def _thinking(content: dict[str, Any]) -> Thinking:
    if "redactedContent" in content:
        return Thinking(redacted=True, data=content["redactedContent"])
    text = content.get("reasoningText") or {}
    return Thinking(text=text.get("text", ""), signature=text.get("signature"))


def _int(value: Any) -> int:
    return as_int(value) or 0


def usage_of(raw: Any) -> Usage | None:
    """Bedrock's ``TokenUsage``: ``inputTokens`` excludes cache reads and writes (as
    Anthropic's), so they are added back into the normalised input count."""
    if not isinstance(raw, dict):
        return None
    read = raw.get("cacheReadInputTokens")
    write = raw.get("cacheWriteInputTokens")
    return Usage(
        input_tokens=_int(raw.get("inputTokens")) + _int(read) + _int(write),
        output_tokens=_int(raw.get("outputTokens")),
        cached_input_tokens=_int(read) if read is not None else None,
        cache_write_tokens=_int(write) if write is not None else None,
    )
