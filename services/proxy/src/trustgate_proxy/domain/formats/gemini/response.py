"""A ``GenerateContentResponse`` read back: parts (thoughts, signatures, function calls with
synthesised ids, text), finish reasons, usage, and error messages.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from trustgate_proxy.domain.formats.common import arguments_json
from trustgate_proxy.domain.formats.model import (
    ChatResponse,
    FinishReason,
    Part,
    Text,
    Thinking,
    ToolCall,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "OTHER": "error",
}


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def decode_response(doc: dict[str, Any]) -> ChatResponse:
    response_id = str(doc.get("responseId") or "")
    candidate = candidate_of(doc)
    parts: list[Part] = []
    calls = 0
    for raw in raw_parts(candidate):
        signature = raw.get("thoughtSignature")
        if raw.get("thought") is True:
            parts.append(Thinking(text=str(raw.get("text") or ""), signature=signature))
            continue
        if isinstance(signature, str):
            parts.append(Thinking(signature=signature))
        call = raw.get("functionCall")
        if isinstance(call, dict):
            parts.append(tool_call(call, response_id, calls))
            calls += 1
        elif isinstance(raw.get("text"), str) and raw["text"]:
            if parts and isinstance(parts[-1], Text):
                parts[-1].text += raw["text"]
            else:
                parts.append(Text(raw["text"]))
    return ChatResponse(
        id=response_id or "gemini",
        model=str(doc.get("modelVersion") or ""),
        parts=parts,
        finish=finish_reason(doc, candidate, calls > 0) or "stop",
        usage=usage_of(doc.get("usageMetadata")),
    )


def error_message(status: int, body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
    if isinstance(doc, list) and doc:
        doc = doc[0]
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        return error_text(doc["error"])
    return f"upstream status {status}"


def error_text(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "upstream error")
    status = error.get("status")
    return f"{status}: {message}" if status else message


def candidate_of(doc: dict[str, Any]) -> dict[str, Any]:
    candidates = doc.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def raw_parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def finish_reason(
    doc: dict[str, Any], candidate: dict[str, Any], calls: bool
) -> FinishReason | None:
    reason = candidate.get("finishReason")
    if reason is None:
        feedback = doc.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            return "content_filter"
        return None
    if calls and reason == "STOP":
        return "tool_calls"
    return _FINISH.get(str(reason), "stop")


def _call_id(call: dict[str, Any], response_id: str, n: int) -> str:
    given = call.get("id")
    if isinstance(given, str) and given:
        return given
    rid = _ID_UNSAFE.sub("", response_id)
    return f"call_{rid}_{n}" if rid else f"call_{n}"


def tool_call(call: dict[str, Any], response_id: str, n: int) -> ToolCall:
    return ToolCall(
        id=_call_id(call, response_id, n),
        name=str(call.get("name") or ""),
        arguments=arguments_json(call.get("args")),
    )


def usage_of(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = meta.get("thoughtsTokenCount")
    cached = meta.get("cachedContentTokenCount")
    return Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + int(thoughts or 0),
        cached_input_tokens=int(cached) if cached is not None else None,
        reasoning_tokens=int(thoughts) if thoughts is not None else None,
    )
