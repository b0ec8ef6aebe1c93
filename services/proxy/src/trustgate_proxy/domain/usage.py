"""Token usage from an OpenAI-format body or the tail of its SSE stream, cheaply.

Instead of decoding a whole (possibly large) body, find the last ``"usage"`` object and
decode only that. In a stream asked with ``stream_options.include_usage`` the last chunk
carries it; earlier chunks carry ``"usage":null``, which is skipped.
"""

from __future__ import annotations

from typing import Any

import orjson

_USAGE = b'"usage"'
_WS = b" \t\r\n"
_MAX_TRIES = 8


def find_usage(buf: bytes) -> dict[str, Any] | None:
    """The last non-null ``"usage": {...}`` object in ``buf``, normalised, or None."""
    end = len(buf)
    n = end
    while True:
        at = buf.rfind(_USAGE, 0, end)
        if at < 0:
            return None
        i = at + len(_USAGE)
        while i < n and buf[i] in _WS:
            i += 1
        if i < n and buf[i] == 0x3A:  # ':'
            i += 1
            while i < n and buf[i] in _WS:
                i += 1
            if i < n and buf[i] == 0x7B:  # '{'
                raw = _object_at(buf, i)
                return normalise_usage(raw) if raw is not None else None
        end = at


def _object_at(buf: bytes, start: int) -> dict[str, Any] | None:
    """The JSON object starting at ``start``: try each following ``}`` as its end (a usage
    block nests at most a level or two), letting orjson do the scanning."""
    close = start
    for _ in range(_MAX_TRIES):
        close = buf.find(b"}", close + 1)
        if close < 0:
            return None
        try:
            raw = orjson.loads(buf[start : close + 1])
        except orjson.JSONDecodeError:
            continue
        return raw if isinstance(raw, dict) else None
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def normalise_usage(raw: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage block in the request event's shape."""
    prompt = _int(raw.get("prompt_tokens")) or 0
    completion = _int(raw.get("completion_tokens")) or 0
    total = _int(raw.get("total_tokens"))
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
    }
    details = raw.get("prompt_tokens_details")
    if isinstance(details, dict) and _int(details.get("cached_tokens")) is not None:
        out["cached_input_tokens"] = details["cached_tokens"]
    details = raw.get("completion_tokens_details")
    if isinstance(details, dict) and _int(details.get("reasoning_tokens")) is not None:
        out["reasoning_output_tokens"] = details["reasoning_tokens"]
    return out
