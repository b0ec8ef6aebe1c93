"""Usage and completeness of a same-format (pass-through) Chat exchange, read from the raw
bytes without decoding all of them.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.common import json_object_after
from trustgate_proxy.domain.formats.model import Usage

_USAGE_KEY = b'"usage"'


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _detail(raw: dict[str, Any], block: str, key: str) -> int | None:
    details = raw.get(block)
    return _int(details.get(key)) if isinstance(details, dict) else None


def _usage(raw: dict[str, Any] | None) -> Usage | None:
    """OpenAI's ``usage`` block (``prompt_tokens``, ``completion_tokens``, their details)."""
    if raw is None:
        return None
    return Usage(
        input_tokens=_int(raw.get("prompt_tokens")) or 0,
        output_tokens=_int(raw.get("completion_tokens")) or 0,
        cached_input_tokens=_detail(raw, "prompt_tokens_details", "cached_tokens"),
        reasoning_tokens=_detail(raw, "completion_tokens_details", "reasoning_tokens"),
    )


class OpenAIChatUsage:
    """Usage is the last ``"usage"`` object of a body or a stream's tail (with
    ``include_usage``, the last chunk carries it); ``[DONE]`` ends a stream."""

    head_bytes = 0

    def from_body(self, body: bytes) -> Usage | None:
        return _usage(json_object_after(body, _USAGE_KEY, last=True))

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        return _usage(json_object_after(tail, _USAGE_KEY, last=True))

    def stream_complete(self, tail: bytes) -> bool:
        return b"data: [DONE]" in tail
