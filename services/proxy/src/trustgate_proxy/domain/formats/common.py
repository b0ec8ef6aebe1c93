"""Small pieces every codec needs the same way: reading loosely typed JSON values,
naming dropped fields, image data URLs, tool-call arguments as JSON, provider error
messages, and a ``"usage": {...}`` object found in raw bytes without decoding the rest.

Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_proxy.domain.formats.model import Image, Tool, ToolCall, Untranslatable

_WS = b" \t\r\n"
_MAX_CLOSES = 8  # a usage object nests a level or two: try this many ``}`` as its end


def json_object(data: bytes) -> dict[str, Any] | None:
    """``data`` decoded if it is a JSON object, else ``None`` (not JSON, or another value)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def as_int(value: Any) -> int | None:
    """``value`` if it is a JSON integer (not a bool), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a JSON number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def note(dropped: list[str], name: str) -> None:
    """Name a dropped field once."""
    if name not in dropped:
        dropped.append(name)


def append_turn(turns: list[dict[str, Any]], role: str, content: list[Any]) -> None:
    """Add a turn to a conversation whose roles must alternate (Anthropic, Converse): a
    turn of the same role as the last one is merged into it."""
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(content)
    else:
        turns.append({"role": role, "content": content})


def function_tool(name: str, spec: dict[str, Any]) -> Tool:
    """A function tool from an OpenAI-style spec (``description``, ``parameters`` JSON
    Schema, ``strict``); values of the wrong type are left out."""
    description, params, strict = (
        spec.get("description"),
        spec.get("parameters"),
        spec.get("strict"),
    )
    return Tool(
        name=name,
        description=description if isinstance(description, str) else None,
        parameters=params if isinstance(params, dict) else {"type": "object"},
        strict=strict if isinstance(strict, bool) else None,
    )


# -- images ---------------------------------------------------------------------------------


def data_url(url: str) -> tuple[str, str] | None:
    """``(media_type, base64 data)`` of a base64 ``data:`` URL (the media type without
    parameters, ``""`` when the URL names none); ``None`` for any other URL, a non-base64
    ``data:`` URL included."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")].split(";", 1)[0], data


def image_url(image: Image) -> str:
    """An image as one URL: inline data as a base64 ``data:`` URL, else its URL."""
    if image.data is not None:
        return f"data:{image.media_type or 'image/png'};base64,{image.data}"
    return image.url or ""


# -- tool-call arguments --------------------------------------------------------------------


def tool_arguments(call: ToolCall, provider: str) -> dict[str, Any]:
    """A call's arguments (canonical JSON text) as the object ``provider`` takes; blank
    arguments are ``{}``. Raises ``Untranslatable`` when they are not a JSON object."""
    text = call.arguments.strip()
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise Untranslatable(
            f"tool call {call.id!r}: its arguments are not valid JSON, and {provider} "
            "takes only a JSON object (what is not JSON cannot be sent)"
        ) from None
    if not isinstance(value, dict):
        raise Untranslatable(
            f"tool call {call.id!r}: its arguments are not a JSON object, which {provider} needs"
        )
    return value


def arguments_json(value: Any) -> str:
    """A provider's arguments object as canonical JSON text (anything else: ``{}``)."""
    return orjson.dumps(value if isinstance(value, dict) else {}).decode()


# -- errors ---------------------------------------------------------------------------------


def error_message(doc: Any) -> str | None:
    """The message of an error document: ``error.message`` (OpenAI, Anthropic, the live
    Responses API), ``error`` as a string, or a flat ``message``."""
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    if isinstance(doc.get("message"), str):
        return str(doc["message"])
    return None


def upstream_message(body: bytes, default: str) -> str:
    """The human message of a provider's error body: its JSON error message, else the body
    as text (cut to 500 characters), else ``default``."""
    try:
        message = error_message(orjson.loads(body))
    except orjson.JSONDecodeError:
        message = None
    if message:
        return message
    return body.decode("utf-8", "replace").strip()[:500] or default


# -- usage in raw bytes ---------------------------------------------------------------------


def json_object_after(buf: bytes, key: bytes, *, last: bool) -> dict[str, Any] | None:
    """The first (or last) ``<key>: {...}`` object in ``buf`` (``key`` with its quotes),
    decoding only that object: orjson finds its end by trying each following ``}``. A key
    whose value is not an object (``"usage": null``) is passed over."""
    lo, hi = 0, len(buf)
    n = len(buf)
    while True:
        at = buf.rfind(key, 0, hi) if last else buf.find(key, lo)
        if at < 0:
            return None
        i = at + len(key)
        while i < n and buf[i] in _WS:
            i += 1
        if i < n and buf[i] == 0x3A:  # ':'
            i += 1
            while i < n and buf[i] in _WS:
                i += 1
            if i < n and buf[i] == 0x7B:  # '{'
                close = i
                for _ in range(_MAX_CLOSES):
                    close = buf.find(b"}", close + 1)
                    if close < 0:
                        break
                    try:
                        raw = orjson.loads(buf[i : close + 1])
                    except orjson.JSONDecodeError:
                        continue
                    return raw if isinstance(raw, dict) else None
        if last:
            hi = at
        else:
            lo = at + 1
