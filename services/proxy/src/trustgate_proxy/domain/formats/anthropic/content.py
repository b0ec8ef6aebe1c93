"""Anthropic content blocks to canonical parts and back: request blocks (text, image,
tool_use, tool_result, thinking, redacted_thinking), a conversation as Anthropic's
alternating turns, and an answer's content.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats.common import (
    append_turn,
    arguments_json,
    data_url,
    note,
    tool_arguments,
)
from trustgate_proxy.domain.formats.model import (
    Image,
    Message,
    Part,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    Untranslatable,
)


def _input(call: ToolCall) -> dict[str, Any]:
    return tool_arguments(call, "Anthropic")


def _decode_image(block: Mapping[str, Any], dropped: list[str]) -> Image:
    source = block.get("source")
    if not isinstance(source, Mapping):
        raise InvalidRequest("image: a source is required")
    if block.get("cache_control") is not None:
        note(dropped, "cache_control")
    kind = source.get("type")
    if kind == "base64":
        data, media = source.get("data"), source.get("media_type")
        if not isinstance(data, str) or not isinstance(media, str):
            raise InvalidRequest("image: a base64 source needs data and media_type")
        return Image(data=data, media_type=media)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str):
            raise InvalidRequest("image: a url source needs a url")
        return Image(url=url)
    raise Untranslatable(f"image source '{kind}' cannot be translated to another format")


def decode_text(block: Mapping[str, Any], dropped: list[str]) -> Text:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequest("text block: text must be a string")
    if block.get("cache_control") is not None:
        note(dropped, "cache_control")
    if block.get("citations"):
        note(dropped, "citations")
    return Text(text)


def _decode_result_content(content: Any, dropped: list[str]) -> list[Text | Image]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Text(content)]
    if not isinstance(content, list):
        raise InvalidRequest("tool_result: content must be a string or a list of blocks")
    out: list[Text | Image] = []
    for block in content:
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind == "text":
            out.append(decode_text(block, dropped))
        elif kind == "image":
            out.append(_decode_image(block, dropped))
        else:
            raise Untranslatable(f"tool_result block '{kind}' cannot be translated")
    return out


def decode_block(block: Any, dropped: list[str]) -> Part:
    if not isinstance(block, Mapping):
        raise InvalidRequest("a content block must be an object")
    kind = block.get("type")
    if kind == "text":
        return decode_text(block, dropped)
    if kind == "image":
        return _decode_image(block, dropped)
    if kind == "tool_use":
        call_id, name = block.get("id"), block.get("name")
        if not isinstance(call_id, str) or not isinstance(name, str):
            raise InvalidRequest("tool_use: id and name are required")
        if block.get("cache_control") is not None:
            note(dropped, "cache_control")
        return ToolCall(call_id, name, arguments_json(block.get("input")))
    if kind == "tool_result":
        call_id = block.get("tool_use_id")
        if not isinstance(call_id, str):
            raise InvalidRequest("tool_result: tool_use_id is required")
        if block.get("cache_control") is not None:
            note(dropped, "cache_control")
        return ToolResult(
            call_id,
            _decode_result_content(block.get("content"), dropped),
            is_error=block.get("is_error") is True,
        )
    if kind == "thinking":
        text, signature = block.get("thinking"), block.get("signature")
        return Thinking(
            text if isinstance(text, str) else "",
            signature=signature if isinstance(signature, str) else None,
        )
    if kind == "redacted_thinking":
        data = block.get("data")
        return Thinking(redacted=True, data=data if isinstance(data, str) else None)
    raise Untranslatable(f"content block '{kind}' cannot be translated to another format")


def _encode_image(image: Image, dropped: list[str]) -> dict[str, Any]:
    if image.detail is not None:
        note(dropped, "image.detail")
    if image.data is not None:
        source: dict[str, Any] = {
            "type": "base64",
            "media_type": image.media_type or "image/png",
            "data": image.data,
        }
    elif image.url is not None and image.url.startswith("data:"):
        inline = data_url(image.url)
        if inline is None:
            raise Untranslatable("image: only base64 data URLs can be translated")
        source = {"type": "base64", "media_type": inline[0] or "image/png", "data": inline[1]}
    elif image.url is not None:
        source = {"type": "url", "url": image.url}
    else:
        raise Untranslatable("image: neither a URL nor data")
    return {"type": "image", "source": source}


def _encode_result(result: ToolResult, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "tool_result", "tool_use_id": result.tool_call_id}
    if len(result.content) == 1 and isinstance(result.content[0], Text):
        out["content"] = result.content[0].text
    elif result.content:
        out["content"] = [
            {"type": "text", "text": p.text} if isinstance(p, Text) else _encode_image(p, dropped)
            for p in result.content
            if not (isinstance(p, Text) and not p.text)
        ]
    if result.is_error:
        out["is_error"] = True
    return out


def _encode_part(part: Part, dropped: list[str]) -> dict[str, Any] | None:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, Image):
        return _encode_image(part, dropped)
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": _input(part)}
    if isinstance(part, ToolResult):
        return _encode_result(part, dropped)
    if part.redacted:
        if part.data is None:
            return None
        return {"type": "redacted_thinking", "data": part.data}
    if part.signature is None:
        note(dropped, "thinking (unsigned)")
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}


def encode_messages(messages: list[Message], dropped: list[str]) -> list[dict[str, Any]]:
    """Anthropic's turns: one role at a time (consecutive ones merged), tool results first
    in a user turn, empty text blocks left out."""
    out: list[dict[str, Any]] = []
    for message in messages:
        blocks = [b for p in message.parts if (b := _encode_part(p, dropped)) is not None]
        if not blocks:
            continue
        append_turn(out, message.role, blocks)
    for turn in out:
        content = turn["content"]
        if turn["role"] == "user" and any(b["type"] == "tool_result" for b in content):
            content.sort(key=lambda b: b["type"] != "tool_result")  # stable
        elif len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
    return out


def response_parts(content: Any) -> list[Part]:
    parts: list[Part] = []
    if not isinstance(content, list):
        return parts
    for block in content:
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            parts.append(Text(block["text"]))
        elif kind == "tool_use":
            parts.append(
                ToolCall(
                    str(block.get("id", "")),
                    str(block.get("name", "")),
                    arguments_json(block.get("input")),
                )
            )
        elif kind == "thinking":
            sig = block.get("signature")
            parts.append(
                Thinking(
                    str(block.get("thinking", "")), signature=sig if isinstance(sig, str) else None
                )
            )
        elif kind == "redacted_thinking":
            data = block.get("data")
            parts.append(Thinking(redacted=True, data=data if isinstance(data, str) else None))
        # server tool blocks (server_tool_use, web_search_tool_result, ...) have no
        # canonical form: left out of a translated answer
    return parts


def response_content(parts: list[Part]) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            try:
                value = _input(part)
            except Untranslatable:
                value = {}
            content.append({"type": "tool_use", "id": part.id, "name": part.name, "input": value})
        elif isinstance(part, Thinking):
            if part.redacted:
                content.append({"type": "redacted_thinking", "data": part.data or ""})
            else:
                content.append(
                    {"type": "thinking", "thinking": part.text, "signature": part.signature or ""}
                )
    return content
