"""Usage and completeness of a same-format (pass-through) Responses exchange, read from
the raw bytes without decoding all of them.
"""

from __future__ import annotations

from trustgate_proxy.domain.formats.common import json_object_after
from trustgate_proxy.domain.formats.model import Usage
from trustgate_proxy.domain.formats.openai_responses.wire import usage_from

_USAGE_KEY = b'"usage"'


_TERMINAL = (
    b"event: response.completed",
    b"event: response.incomplete",
    b"event: response.failed",
    b"event: error\n",
    b'"type":"response.completed"',
    b'"type":"response.incomplete"',
    b'"type":"response.failed"',
    b'"type": "response.completed"',
    b'"type": "response.incomplete"',
    b'"type": "response.failed"',
)


def _last_usage(buf: bytes) -> Usage | None:
    """The last non-null ``"usage": {...}`` object in ``buf`` (decoding only that)."""
    return usage_from(json_object_after(buf, _USAGE_KEY, last=True))


class ResponsesUsage:
    """Usage of a same-format exchange: the Response's ``usage``, or that of the stream's
    ``response.completed`` / ``response.incomplete`` (its last event)."""

    head_bytes = 0

    def from_body(self, body: bytes) -> Usage | None:
        return _last_usage(body)

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        return _last_usage(tail)

    def stream_complete(self, tail: bytes) -> bool:
        return any(marker in tail for marker in _TERMINAL)
