"""Usage and completeness of a same-format (pass-through) Anthropic exchange, read from
the raw bytes without decoding all of them.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.anthropic.wire import usage_from
from trustgate_proxy.domain.formats.common import json_object_after
from trustgate_proxy.domain.formats.model import Usage

_USAGE_KEY = b'"usage"'


class AnthropicUsage:
    """Usage of a pass-through exchange: in a plain body, the (last) ``usage``; in a
    stream, input counts in ``message_start`` (the head) and cumulative output counts in
    the last ``message_delta`` (the tail). A stream is complete when ``message_stop``
    arrived."""

    head_bytes = 4096

    def from_body(self, body: bytes) -> Usage | None:
        raw = json_object_after(body, _USAGE_KEY, last=True)
        return usage_from(raw) if raw is not None else None

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        start = json_object_after(head, _USAGE_KEY, last=False)
        end = json_object_after(tail, _USAGE_KEY, last=True)
        if start is None and end is None:
            return None
        merged: dict[str, Any] = dict(start or {})
        merged.update({k: v for k, v in (end or {}).items() if v is not None})
        return usage_from(merged)

    def stream_complete(self, tail: bytes) -> bool:
        return (
            b"\nevent: message_stop" in tail
            or tail.startswith(b"event: message_stop")
            or b'\ndata: {"type":"message_stop"' in tail
            or b'\ndata: {"type": "message_stop"' in tail
        )
