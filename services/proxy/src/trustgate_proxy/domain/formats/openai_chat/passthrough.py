"""Usage and completeness of a same-format (pass-through) Chat exchange, read from the raw
bytes without decoding all of them.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.model import Usage
from trustgate_proxy.domain.usage import find_usage


def _from_event(raw: dict[str, Any] | None) -> Usage | None:
    if raw is None:
        return None
    return Usage(
        input_tokens=raw["prompt_tokens"],
        output_tokens=raw["completion_tokens"],
        cached_input_tokens=raw.get("cached_input_tokens"),
        reasoning_tokens=raw.get("reasoning_output_tokens"),
    )


class OpenAIChatUsage:
    """Usage is the last ``"usage"`` object of a body or a stream's tail (with
    ``include_usage``, the last chunk carries it); ``[DONE]`` ends a stream."""

    def from_body(self, body: bytes) -> Usage | None:
        return _from_event(find_usage(body))

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        return _from_event(find_usage(tail))

    def stream_complete(self, tail: bytes) -> bool:
        return b"data: [DONE]" in tail
