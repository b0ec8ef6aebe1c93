"""Anthropic Messages' vocabulary: the stop-reason and error-type tables, the thinking
budgets, usage in Anthropic's shape (input excludes cache reads/writes) and message ids.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from trustgate_proxy.domain.formats.common import as_int
from trustgate_proxy.domain.formats.model import FinishReason, Usage

DEFAULT_MAX_TOKENS = 4096


# An OpenAI-style reasoning effort as an Anthropic thinking budget (and back: the nearest).
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


MIN_THINKING_BUDGET = 1024


STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


FINISH_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "error": "end_turn",
}


ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error ``type`` for an HTTP status."""
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "api_error" if status >= 500 else "invalid_request_error"


def usage_from(raw: Mapping[str, Any]) -> Usage:
    """Anthropic's usage (input excludes cache reads/writes) normalised."""
    read = as_int(raw.get("cache_read_input_tokens"))
    write = as_int(raw.get("cache_creation_input_tokens"))
    return Usage(
        input_tokens=(as_int(raw.get("input_tokens")) or 0) + (read or 0) + (write or 0),
        output_tokens=as_int(raw.get("output_tokens")) or 0,
        cached_input_tokens=read,
        cache_write_tokens=write,
    )


def usage_to(usage: Usage | None) -> dict[str, Any]:
    """Normalised usage back in Anthropic's shape."""
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0}
    read = usage.cached_input_tokens or 0
    write = usage.cache_write_tokens or 0
    out: dict[str, Any] = {
        "input_tokens": max(0, usage.input_tokens - read - write),
        "output_tokens": usage.output_tokens,
    }
    if usage.cache_write_tokens is not None:
        out["cache_creation_input_tokens"] = write
    if usage.cached_input_tokens is not None:
        out["cache_read_input_tokens"] = read
    return out


def finish_reason(stop_reason: Any) -> FinishReason:
    return STOP_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def message_id(value: str | None) -> str:
    if value and value.startswith("msg_"):
        return value
    return f"msg_{value}" if value else f"msg_{time.time_ns():x}"
