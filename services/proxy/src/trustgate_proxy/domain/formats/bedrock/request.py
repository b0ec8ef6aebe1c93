"""The canonical request as a Converse body: messages of content blocks (images as bytes,
tool use and results, signed reasoning), the tool config Converse insists on, inference
config, and the model family's own fields (``additionalModelRequestFields``).
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.common import append_turn, data_url, note, tool_arguments
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    Image,
    Message,
    Text,
    Thinking,
    ToolCall,
    ToolResult,
    Untranslatable,
)

IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}


# An OpenAI-style effort as a thinking budget, for models that take only a budget.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}


_PROFILE_PREFIXES = frozenset({"apac", "global", "us-gov"})


def model_family(model: str) -> str:
    """``anthropic``, ``amazon``, ``meta``, … from a model id, an inference profile
    (``us.anthropic.claude-…``) or an ARN ending in either."""
    name = model.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) > 2 and (len(parts[0]) == 2 or parts[0] in _PROFILE_PREFIXES):
        parts = parts[1:]  # an inference-profile prefix: us., eu., apac., global., ...
    return parts[0] if len(parts) > 1 else ""


def _image_block(image: Image) -> dict[str, Any]:
    data, media_type = image.data, image.media_type
    if data is None and image.url and image.url.startswith("data:"):
        inline = data_url(image.url)
        if inline is None:
            raise Untranslatable("a data: image URL must be base64 encoded")
        media_type, data = inline
    if data is None:
        raise Untranslatable(
            "Bedrock takes images as bytes, not URLs: send the image inline (base64)"
        )
    fmt = IMAGE_FORMATS.get((media_type or "").lower())
    if fmt is None:
        raise Untranslatable(f"Bedrock accepts png, jpeg, gif or webp images, not {media_type}")
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def _tool_result(result: ToolResult) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in result.content:
        if isinstance(part, Text):
            content.append({"text": part.text})
        else:
            content.append(_image_block(part))
    if not content:
        content.append({"text": ""})
    block: dict[str, Any] = {"toolUseId": result.tool_call_id, "content": content}
    if result.is_error:
        block["status"] = "error"
    return {"toolResult": block}


def _blocks(message: Message, dropped: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, Text):
            if part.text:
                out.append({"text": part.text})
        elif isinstance(part, Image):
            if part.detail is not None:
                note(dropped, "image.detail")
            out.append(_image_block(part))
        elif isinstance(part, ToolCall):
            out.append(
                {
                    "toolUse": {
                        "toolUseId": part.id,
                        "name": part.name,
                        "input": tool_arguments(part, "Bedrock"),
                    }
                }
            )
        elif isinstance(part, ToolResult):
            out.append(_tool_result(part))
        elif isinstance(part, Thinking):
            if part.redacted and part.data:
                out.append({"reasoningContent": {"redactedContent": part.data}})
            elif part.signature:
                out.append(
                    {
                        "reasoningContent": {
                            "reasoningText": {"text": part.text, "signature": part.signature}
                        }
                    }
                )
            else:
                note(dropped, "thinking (unsigned)")
    return out


def _messages(request: ChatRequest) -> tuple[list[dict[str, Any]], set[str]]:
    """Converse messages (one role per turn, alternating), and the tool names used."""
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for message in request.messages:
        content = _blocks(message, request.dropped)
        for part in message.parts:
            if isinstance(part, ToolCall):
                used.add(part.name)
        if not content:
            continue
        append_turn(out, message.role, content)
    return out, used


def _tool_config(request: ChatRequest, used: set[str]) -> dict[str, Any] | None:
    choice = request.tool_choice
    tools = [
        {
            "toolSpec": {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "inputSchema": {"json": t.parameters},
            }
        }
        for t in request.tools
    ]
    if any(t.strict is not None for t in request.tools):
        request.dropped.append("tools.strict")
    if not tools and used:  # Converse rejects toolUse blocks without a toolConfig
        tools = [
            {"toolSpec": {"name": n, "inputSchema": {"json": {"type": "object"}}}}
            for n in sorted(used)
        ]
    if choice is not None and choice.mode == "none":
        request.dropped.append("tool_choice")
        if not used:
            return None
        choice = None
    if not tools:
        return None
    config: dict[str, Any] = {"tools": tools}
    if choice is not None and choice.mode == "required":
        config["toolChoice"] = {"any": {}}
    elif choice is not None and choice.mode == "tool" and choice.name:
        config["toolChoice"] = {"tool": {"name": choice.name}}
    elif choice is not None:
        config["toolChoice"] = {"auto": {}}
    return config


def _additional_fields(request: ChatRequest, family: str) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    budget: int | None = None
    if request.reasoning is not None:
        budget = request.reasoning.budget_tokens
        if budget is None and request.reasoning.effort is not None:
            budget = EFFORT_BUDGETS.get(request.reasoning.effort)
    if family == "anthropic":
        if request.top_k is not None:
            extra["top_k"] = request.top_k
        if budget:
            extra["thinking"] = {"type": "enabled", "budget_tokens": budget}
    else:
        if request.top_k is not None:
            if family == "amazon":
                extra["inferenceConfig"] = {"topK": request.top_k}
            else:
                request.dropped.append("top_k")
        if request.reasoning is not None:
            request.dropped.append("reasoning")
    return extra


def encode_request(request: ChatRequest) -> dict[str, Any]:
    messages, used = _messages(request)
    doc: dict[str, Any] = {"messages": messages}
    system = [{"text": s} for s in request.system if s]
    if system:
        doc["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens is not None:
        inference["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        inference["temperature"] = request.temperature
    if request.top_p is not None:
        inference["topP"] = request.top_p
    if request.stop:
        inference["stopSequences"] = list(request.stop)
    if inference:
        doc["inferenceConfig"] = inference
    tool_config = _tool_config(request, used)
    if tool_config is not None:
        doc["toolConfig"] = tool_config
    extra = _additional_fields(request, model_family(request.model))
    if extra:
        doc["additionalModelRequestFields"] = extra
    if request.metadata:
        meta = {k: v for k, v in request.metadata.items() if isinstance(v, str)}
        if len(meta) != len(request.metadata):
            request.dropped.append("metadata (non-string values)")
        if meta:
            doc["requestMetadata"] = meta
    for name in (
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "parallel_tool_calls",
        "user",
    ):
        if getattr(request, name) is not None:
            request.dropped.append(name)
    if request.response_format is not None and request.response_format.type != "text":
        request.dropped.append("response_format")
    return doc
