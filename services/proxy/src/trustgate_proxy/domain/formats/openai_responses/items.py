"""Conversation items both ways: a request's ``input`` items to canonical messages and
messages to ``input`` items, a Response's ``output`` items to canonical parts and an
answer's parts to ``output`` items.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.common import data_url, image_url
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Image,
    Message,
    Part,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    Untranslatable,
)
from trustgate_proxy.domain.formats.openai_responses.wire import (
    STATELESS_HINT,
    item_id_for,
    reasoning_item,
    text_part,
    thinking_of,
)


class InputReader:
    """``input`` items to messages (consecutive items of one role share a message)."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.names: dict[str, str] = {}

    def _message(self, role: str) -> Message:
        messages = self.request.messages
        if messages and messages[-1].role == role:
            return messages[-1]
        message = Message("user" if role == "user" else "assistant")
        messages.append(message)
        return message

    def read(self, value: Any) -> None:
        if isinstance(value, str):
            self._message("user").parts.append(Text(value))
            return
        if not isinstance(value, list):
            raise Untranslatable("input must be a string or a list of items")
        for item in value:
            if not isinstance(item, dict):
                raise Untranslatable("input items must be objects")
            self.item(item)

    def item(self, item: dict[str, Any]) -> None:
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            self.message(item)
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise Untranslatable("a function_call item needs call_id and name")
            arguments = item.get("arguments")
            self.names[call_id] = name
            self._message("assistant").parts.append(
                ToolCall(call_id, name, arguments if isinstance(arguments, str) else "{}")
            )
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str):
                raise Untranslatable("a function_call_output item needs call_id")
            content = self.tool_output(item.get("output"))
            result = ToolResult(call_id, content, name=self.names.get(call_id))
            self._message("user").parts.append(result)
        elif kind == "reasoning":
            self._message("assistant").parts.append(thinking_of(item))
        elif kind == "item_reference":
            raise Untranslatable(
                "an item_reference names an item stored by OpenAI" + STATELESS_HINT
            )
        else:
            raise Untranslatable(
                f"input items of type '{kind}' belong to OpenAI's built-in tools and cannot "
                "be sent to another provider"
            )

    def message(self, item: dict[str, Any]) -> None:
        role = item.get("role")
        content = item.get("content")
        parts = self.content(content)
        if role in ("system", "developer"):
            texts = [p.text for p in parts if isinstance(p, Text)]
            if len(texts) != len(parts):
                raise Untranslatable(f"a {role} message may only hold text")
            self.request.system.append("\n".join(texts))
        elif role in ("user", "assistant"):
            self._message(role).parts.extend(parts)
        else:
            raise Untranslatable(f"unknown message role '{role}'")

    def content(self, content: Any) -> list[Text | Image]:
        if isinstance(content, str):
            return [Text(content)]
        if not isinstance(content, list):
            raise Untranslatable("message content must be a string or a list of parts")
        return [self.part(p) for p in content]

    def part(self, part: Any) -> Text | Image:
        if not isinstance(part, dict):
            raise Untranslatable("content parts must be objects")
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text"):
            return Text(str(part.get("text") or ""))
        if kind == "refusal":
            return Text(str(part.get("refusal") or ""))
        if kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise Untranslatable(
                    "input_image by file_id refers to OpenAI's file store and cannot be "
                    "sent to another provider: pass image_url (https or a data URL)"
                )
            detail = part.get("detail")
            detail = detail if isinstance(detail, str) and detail != "auto" else None
            inline = data_url(url)
            if inline is not None:
                media = inline[0] or "application/octet-stream"
                return Image(data=inline[1], media_type=media, detail=detail)
            return Image(url=url, detail=detail)
        raise Untranslatable(f"content parts of type '{kind}' cannot be sent to another provider")

    def tool_output(self, output: Any) -> list[Text | Image]:
        if isinstance(output, str):
            return [Text(output)]
        if isinstance(output, list):
            return [self.part(p) for p in output]
        raise Untranslatable("function_call_output.output must be a string or a list of parts")


def _input_part(part: Text | Image) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"type": "input_text", "text": part.text}
    return {"type": "input_image", "image_url": image_url(part), "detail": part.detail or "auto"}


def _flush(items: list[dict[str, Any]], role: str, run: list[dict[str, Any]]) -> None:
    """The message item of ``role`` holding the content parts gathered in ``run``."""
    if run:
        items.append({"type": "message", "role": role, "content": list(run)})
        run.clear()


def input_items(request: ChatRequest) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    dropped = request.dropped
    for message in request.messages:
        role = message.role
        run: list[dict[str, Any]] = []  # content of the message item being built
        for part in message.parts:
            if isinstance(part, Text):
                if role == "assistant":
                    run.append({"type": "output_text", "text": part.text, "annotations": []})
                else:
                    run.append(_input_part(part))
            elif isinstance(part, Image):
                if role == "assistant":
                    dropped.append("assistant image")
                else:
                    run.append(_input_part(part))
            elif isinstance(part, ToolCall):
                _flush(items, role, run)
                items.append(
                    {
                        "type": "function_call",
                        "call_id": part.id,
                        "name": part.name,
                        "arguments": part.arguments,
                    }
                )
            elif isinstance(part, ToolResult):
                _flush(items, role, run)
                items.append(_tool_output(part, dropped))
            else:
                _flush(items, role, run)
                reasoning = _reasoning_input(part)
                if reasoning is None:
                    dropped.append("thinking")
                else:
                    items.append(reasoning)
        _flush(items, role, run)
    return items


def _tool_output(part: ToolResult, dropped: list[str]) -> dict[str, Any]:
    if part.is_error:
        dropped.append("tool_result.is_error")
    output: str | list[dict[str, Any]]
    if all(isinstance(p, Text) for p in part.content):
        output = "".join(p.text for p in part.content if isinstance(p, Text))
    else:
        output = [_input_part(p) for p in part.content]
    return {"type": "function_call_output", "call_id": part.tool_call_id, "output": output}


def _reasoning_input(part: Thinking) -> dict[str, Any] | None:
    """An earlier reasoning item to send back; ``None`` for another provider's reasoning
    (a signature or redacted data OpenAI cannot verify, or no item id)."""
    if part.id is None or part.signature is not None or part.redacted:
        return None
    item: dict[str, Any] = {
        "type": "reasoning",
        "id": part.id,
        "summary": [{"type": "summary_text", "text": part.text}] if part.text else [],
    }
    if part.data is not None:
        item["encrypted_content"] = part.data
    return item


def output_items(response: ChatResponse, response_id: str) -> list[dict[str, Any]]:
    output: list[dict[str, Any]] = []
    message: dict[str, Any] | None = None
    status = "incomplete" if response.finish in ("length", "content_filter") else "completed"
    for part in response.parts:
        index = len(output)
        if isinstance(part, Text):
            if message is None:
                message = {
                    "id": item_id_for(response_id, "msg", index),
                    "type": "message",
                    "status": status,
                    "content": [],
                    "role": "assistant",
                }
                output.append(message)
            message["content"].append(text_part(part.text))
            continue
        message = None
        if isinstance(part, ToolCall):
            output.append(
                {
                    "id": item_id_for(response_id, "fc", index),
                    "type": "function_call",
                    "status": "completed",
                    "arguments": part.arguments,
                    "call_id": part.id,
                    "name": part.name,
                }
            )
        elif isinstance(part, Thinking):
            output.append(reasoning_item(item_id_for(response_id, "rs", index), part, part.text))
    return output


def decode_output(doc: dict[str, Any]) -> tuple[list[Part], bool]:
    parts: list[Part] = []
    calls = False
    for item in doc.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            for content in item.get("content") or []:
                if not isinstance(content, dict):
                    continue
                if content.get("type") == "output_text":
                    parts.append(Text(str(content.get("text") or "")))
                elif content.get("type") == "refusal":
                    parts.append(Text(str(content.get("refusal") or "")))
        elif kind == "function_call":
            calls = True
            arguments = item.get("arguments")
            parts.append(
                ToolCall(
                    str(item.get("call_id") or item.get("id") or ""),
                    str(item.get("name") or ""),
                    arguments if isinstance(arguments, str) else "{}",
                )
            )
        elif kind == "reasoning":
            parts.append(thinking_of(item))
    return parts, calls
