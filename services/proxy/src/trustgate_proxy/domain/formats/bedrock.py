"""AWS Bedrock Runtime's Converse / ConverseStream format (outbound only: no client
speaks it to the proxy).

Request: ``system: [{text}]``, ``messages: [{role, content: [block]}]`` with blocks
``text``, ``image {format, source: {bytes: base64}}``, ``toolUse {toolUseId, name,
input}``, ``toolResult {toolUseId, content: [{text}|{image}], status}``,
``reasoningContent {reasoningText {text, signature}} | {redactedContent}``; ``toolConfig
{tools: [{toolSpec: {name, description, inputSchema: {json}}}], toolChoice}``;
``inferenceConfig {maxTokens, temperature, topP, stopSequences}``; model-specific knobs in
``additionalModelRequestFields``. The model id goes in the URL (the target's business),
never in the body.

Deliberate choices (listed in docs/translation.md):
- an image by URL cannot be sent (Bedrock takes bytes or S3 locations and does not fetch
  URLs): ``Untranslatable`` (400), rather than answering about a picture it never saw;
  ``data:`` URLs are inlined;
- ``tool_choice: none`` has no Converse equivalent: the tools are left out (the model
  then cannot call one); when the conversation already holds tool calls, Converse needs
  ``toolConfig``, so the tools stay and only the choice is dropped;
- a conversation with tool calls but no tools declared gets minimal tool specs (name,
  ``{"type":"object"}``) because Converse rejects ``toolUse`` blocks without ``toolConfig``;
- ``top_k`` and the reasoning budget go in ``additionalModelRequestFields`` for Anthropic
  models (``top_k``, ``thinking: {type: enabled, budget_tokens}``) and Amazon Nova
  (``inferenceConfig.topK``); for other model families they are dropped;
- ``toolResult.status`` is sent only as ``error`` (only Claude models accept the field);
- consecutive messages of one role are merged (Converse requires alternation; OpenAI's
  separate ``tool`` messages become one user turn);
- thinking blocks without a signature are dropped from the history (Bedrock rejects them);
- ``metadata`` (string values) becomes ``requestMetadata``.

Stream: the AWS event-stream binary framing (``application/vnd.amazon.eventstream``),
decoded by botocore's ``EventStreamBuffer`` (prelude and message CRC32s checked). Each
``event`` frame carries one JSON event named by ``:event-type``; an ``exception`` frame
(``:exception-type``) or a corrupt frame ends the stream with ``UpstreamStreamError``.
"""

from __future__ import annotations

import struct
from binascii import crc32
from typing import Any
from uuid import uuid4

import orjson
from botocore.eventstream import EventStreamBuffer, ParserError

from trustgate_proxy.domain.formats.base import StreamDecoder, UpstreamStreamError, WireFormat
from trustgate_proxy.domain.formats.common import (
    arguments_json,
    as_int,
    data_url,
    note,
    tool_arguments,
)
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    FinishReason,
    Image,
    Message,
    Part,
    StreamEnd,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    Untranslatable,
    Usage,
    UsageUpdate,
)

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}
# An OpenAI-style effort as a thinking budget, for models that take only a budget.
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
CORRUPT = "corrupt event-stream frame"
# What botocore's parser raises on a frame it cannot read (bad CRCs and lengths are
# ParserErrors; an unknown header type or a truncated header slips out as the others).
_MALFORMED = (ParserError, KeyError, IndexError, ValueError, struct.error)
_PROFILE_PREFIXES = frozenset({"apac", "global", "us-gov"})


def model_family(model: str) -> str:
    """``anthropic``, ``amazon``, ``meta``, … from a model id, an inference profile
    (``us.anthropic.claude-…``) or an ARN ending in either."""
    name = model.rsplit("/", 1)[-1]
    parts = name.split(".")
    if len(parts) > 2 and (len(parts[0]) == 2 or parts[0] in _PROFILE_PREFIXES):
        parts = parts[1:]  # an inference-profile prefix: us., eu., apac., global., ...
    return parts[0] if len(parts) > 1 else ""


# -- request ------------------------------------------------------------------------------


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
        if out and out[-1]["role"] == message.role:
            out[-1]["content"].extend(content)
        else:
            out.append({"role": message.role, "content": content})
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


class BedrockCodec:
    """The Converse format, spoken to Bedrock Runtime."""

    format: WireFormat = "bedrock"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
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

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        message = (doc.get("output") or {}).get("message") or {}
        parts: list[Part] = []
        for block in message.get("content") or []:
            if "text" in block:
                parts.append(Text(block["text"]))
            elif "toolUse" in block:
                use = block["toolUse"]
                parts.append(
                    ToolCall(
                        use.get("toolUseId", ""),
                        use.get("name", ""),
                        arguments_json(use.get("input")),
                    )
                )
            elif "reasoningContent" in block:
                parts.append(_thinking(block["reasoningContent"]))
        stop = doc.get("stopReason")
        return ChatResponse(
            id=f"bedrock-{uuid4().hex}",
            model="",  # Converse answers name no model: the forwarder knows which it sent
            parts=parts,
            finish=STOP_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop",
            usage=usage_of(doc.get("usage")),
        )

    def stream_decoder(self) -> StreamDecoder:
        return ConverseStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if isinstance(doc, dict):
            msg = doc.get("message") or doc.get("Message")
            if isinstance(msg, str) and msg:
                return msg
        return f"Bedrock answered {status}"


def _thinking(content: dict[str, Any]) -> Thinking:
    if "redactedContent" in content:
        return Thinking(redacted=True, data=content["redactedContent"])
    text = content.get("reasoningText") or {}
    return Thinking(text=text.get("text", ""), signature=text.get("signature"))


def _int(value: Any) -> int:
    return as_int(value) or 0


def usage_of(raw: Any) -> Usage | None:
    """Bedrock's ``TokenUsage``: ``inputTokens`` excludes cache reads and writes (as
    Anthropic's), so they are added back into the normalised input count."""
    if not isinstance(raw, dict):
        return None
    read = raw.get("cacheReadInputTokens")
    write = raw.get("cacheWriteInputTokens")
    return Usage(
        input_tokens=_int(raw.get("inputTokens")) + _int(read) + _int(write),
        output_tokens=_int(raw.get("outputTokens")),
        cached_input_tokens=_int(read) if read is not None else None,
        cache_write_tokens=_int(write) if write is not None else None,
    )


# -- stream -------------------------------------------------------------------------------


class ConverseStreamDecoder:
    """ConverseStream's event-stream frames, in any chunking, to stream events. A broken
    frame (corrupt, or an exception) arriving in the same chunk as good ones: the good
    ones' events are returned first, and the error is raised by the next ``feed`` or by
    ``close``; once broken, it stays broken."""

    __slots__ = ("_blocks", "_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = EventStreamBuffer()
        self._blocks: dict[int, int] = {}  # Bedrock's contentBlockIndex -> our block
        self._broken: str | None = None

    def _block(self, payload: dict[str, Any]) -> int:
        index = payload.get("contentBlockIndex", 0)
        block = self._blocks.get(index)
        if block is None:
            block = self._blocks[index] = len(self._blocks)
        return block

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        if self._broken is not None:
            raise UpstreamStreamError(self._broken)
        self._buffer.add_data(chunk)
        out: list[StreamEvent] = []
        try:
            for message in self._buffer:
                self._event(message.headers, message.payload, out)
        except _MALFORMED:
            self._broken = CORRUPT
        except UpstreamStreamError as exc:
            self._broken = exc.message
        if self._broken is not None and not out:
            raise UpstreamStreamError(self._broken)
        return out

    def _event(self, headers: dict[str, Any], payload: bytes, out: list[StreamEvent]) -> None:
        kind = headers.get(":message-type")
        if kind == "exception":
            name = headers.get(":exception-type", "exception")
            raise UpstreamStreamError(f"{name}: {_message_of(payload)}")
        if kind == "error":
            code = headers.get(":error-code", "error")
            raise UpstreamStreamError(f"{code}: {headers.get(':error-message', '')}".rstrip(": "))
        if kind != "event":
            return
        try:
            doc = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamStreamError("malformed event-stream payload") from None
        if not isinstance(doc, dict):
            raise UpstreamStreamError("malformed event-stream payload")
        event = headers.get(":event-type")
        if event == "contentBlockDelta":
            delta = doc.get("delta") or {}
            block = self._block(doc)
            if "text" in delta:
                out.append(TextDelta(block, delta["text"]))
            elif "toolUse" in delta:
                out.append(ToolArgsDelta(block, (delta["toolUse"] or {}).get("input", "")))
            elif "reasoningContent" in delta:
                reasoning = delta["reasoningContent"] or {}
                if "text" in reasoning:
                    out.append(ThinkingDelta(block, reasoning["text"]))
                if "signature" in reasoning:
                    out.append(ThinkingDelta(block, "", reasoning["signature"]))
        elif event == "contentBlockStart":
            use = (doc.get("start") or {}).get("toolUse")
            if isinstance(use, dict):
                out.append(
                    ToolCallStart(self._block(doc), use.get("toolUseId", ""), use.get("name", ""))
                )
        elif event == "messageStart":
            out.append(StreamStart())
        elif event == "messageStop":
            stop = doc.get("stopReason")
            out.append(Finish(STOP_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop"))
        elif event == "metadata":
            usage = usage_of(doc.get("usage"))
            if usage is not None:
                out.append(UsageUpdate(usage))
            out.append(StreamEnd())

    def close(self) -> list[StreamEvent]:
        if self._broken is not None:
            raise UpstreamStreamError(self._broken)
        return []


def _message_of(payload: bytes) -> str:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode("utf-8", "replace")
    if isinstance(doc, dict):
        msg = doc.get("message") or doc.get("Message")
        if isinstance(msg, str):
            return msg
    return ""


# -- pass-through usage -------------------------------------------------------------------

_PRELUDE = struct.Struct(">III")


def _last_frame(tail: bytes) -> tuple[dict[str, Any], bytes] | None:
    """The frame ending exactly at the end of ``tail`` (headers, payload), if one does:
    found by its prelude (total length reaching the end, prelude CRC valid) and checked by
    botocore's parser."""
    end = len(tail)
    for start in range(max(0, end - 65536), end - 15):
        total, _headers_len, prelude_crc = _PRELUDE.unpack_from(tail, start)
        if start + total != end or crc32(tail[start : start + 8]) != prelude_crc:
            continue
        buffer = EventStreamBuffer()
        buffer.add_data(tail[start:])
        try:
            message = next(buffer)
        except (*_MALFORMED, StopIteration):
            return None
        return message.headers, message.payload
    return None


class BedrockUsage:
    """Usage and completeness of a Converse exchange without decoding all of it."""

    def from_body(self, body: bytes) -> Usage | None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return usage_of(doc.get("usage")) if isinstance(doc, dict) else None

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        frame = _last_frame(tail)
        if frame is None or frame[0].get(":event-type") != "metadata":
            return None
        try:
            doc = orjson.loads(frame[1])
        except orjson.JSONDecodeError:
            return None
        return usage_of(doc.get("usage")) if isinstance(doc, dict) else None

    def stream_complete(self, tail: bytes) -> bool:
        frame = _last_frame(tail)
        return (
            frame is not None
            and frame[0].get(":message-type") == "event"
            and frame[0].get(":event-type") == "metadata"
        )


CODEC = BedrockCodec()
USAGE_READER = BedrockUsage()
