"""OpenAI Chat's shapes shared by its codecs: finish reasons both ways, usage both ways,
chunk ids, image URLs, reasoning text of OpenAI-compatible servers, error messages.
"""

from __future__ import annotations

from time import time
from typing import Any

from trustgate_proxy.domain.formats.common import as_int, data_url
from trustgate_proxy.domain.formats.model import FinishReason, Image, ToolCall, Usage

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def image_from_url(url: str, detail: str | None = None) -> Image:
    """An ``image_url``'s URL as an ``Image``: a ``data:`` URL is split into its media type
    and base64 data (what providers with inline images need), other URLs are kept."""
    inline = data_url(url)
    if inline is not None and inline[0]:
        return Image(data=inline[1], media_type=inline[0], detail=detail)
    return Image(url=url, detail=detail)


def usage_doc(usage: Usage) -> dict[str, Any]:
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


def client_finish(reason: FinishReason) -> str:
    """Chat's word for a finish: its own, except ``error``, which it lacks (→ ``stop``)."""
    return "stop" if reason == "error" else reason


def chat_id(raw: str | None) -> str:
    if not raw:
        return f"chatcmpl-{int(time() * 1000):x}"
    return raw


def tool_call_doc(call: ToolCall) -> dict[str, Any]:
    """A tool call as an assistant message's ``tool_calls`` entry."""
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments},
    }


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


def finish_reason(raw: Any, calls: bool) -> FinishReason:
    reason = FINISH_REASONS.get(raw) if isinstance(raw, str) else None
    if reason is None:
        return "tool_calls" if calls else "stop"
    return reason


def reasoning_text(delta: dict[str, Any]) -> str | None:
    for key in ("reasoning_content", "reasoning"):
        value = delta.get(key)
        if isinstance(value, str) and value:
            return value
    return None
