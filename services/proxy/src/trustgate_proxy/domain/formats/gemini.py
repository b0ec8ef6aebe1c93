"""Google's Gemini wire format (``generateContent`` / ``streamGenerateContent?alt=sse``),
spoken to the Gemini API (generativelanguage.googleapis.com) and to Vertex AI alike.

Outbound only (the proxy speaks it to providers) plus its pass-through usage reader.

Mapping (the rows of docs/translation.md, "Gemini / Vertex"):
- ``system`` → ``systemInstruction.parts[].text``; roles user/assistant → user/model.
- Images: inline base64 and ``data:`` URLs → ``inlineData {mimeType, data}``; ``gs://``
  URIs and Gemini Files API URIs → ``fileData {mimeType, fileUri}``; any other http(s)
  URL is *refused* (400): Gemini does not fetch arbitrary URLs and the proxy does not
  fetch them for it. ``detail`` is dropped.
- Tool calls → ``functionCall {name, args}`` (the canonical JSON text is parsed; invalid
  JSON → 400). Tool results → ``functionResponse {name, response}`` with ``response``
  ``{"content": text}`` (``{"error": text}`` when ``is_error``); images in a tool result
  follow it as ``inlineData`` parts. The name comes from ``ToolResult.name`` or the
  earlier call with that id. Gemini has no call ids (or leaves them out): answers get
  ``call_<responseId>_<n>`` (``call_<n>`` without a responseId), an id Gemini sends wins.
- Tools → ``tools[0].functionDeclarations``; ``parameters`` are cut down to Gemini's
  OpenAPI-subset Schema (``SCHEMA_KEYS``): other keys (``additionalProperties``,
  ``$schema``, ``strict``, ``oneOf``→``anyOf`` aside, …) are stripped and named in
  ``dropped``; local ``$ref`` are inlined; ``type: [T, "null"]`` → ``type: T,
  nullable: true``; ``const`` → one-value ``enum``.
- Tool choice → ``toolConfig.functionCallingConfig.mode`` AUTO/NONE/ANY
  (+ ``allowedFunctionNames`` for a named tool). ``parallel_tool_calls`` is dropped.
- Sampling → ``generationConfig`` (maxOutputTokens, temperature, topP, topK,
  stopSequences (at most 5: the rest dropped), seed, presencePenalty, frequencyPenalty);
  JSON mode → ``responseMimeType: application/json`` (+ ``responseSchema``).
- Reasoning → ``thinkingConfig {thinkingBudget, includeThoughts: true}``; an effort
  without a budget maps to ``EFFORT_BUDGET``. Thought parts (``thought: true``) come
  back as ``Thinking``; a ``thoughtSignature`` on a part comes back as a ``Thinking``
  block with only that signature just before it, and goes out again on the part that
  follows it (Gemini needs it back on function calls). Thinking text is not sent back.
- ``user``, ``metadata`` are dropped.
- Finish: STOP → stop (tool_calls when the answer holds function calls), MAX_TOKENS →
  length, SAFETY/RECITATION/BLOCKLIST/PROHIBITED_CONTENT/SPII/IMAGE_SAFETY/LANGUAGE →
  content_filter, MALFORMED_FUNCTION_CALL/OTHER/… → error (unknown reasons → stop);
  a blocked prompt (``promptFeedback.blockReason``, no candidates) → content_filter.
- Usage: input = promptTokenCount (+ toolUsePromptTokenCount), cached =
  cachedContentTokenCount (part of the prompt count), output = candidatesTokenCount +
  thoughtsTokenCount (thoughts are billed as output), reasoning = thoughtsTokenCount.

Streams: ``data: {GenerateContentResponse}`` SSE events, each a slice of the answer. There
is no end marker: the chunk carrying ``finishReason`` ends the answer, and ``close()``
then yields ``StreamEnd``; a stream that closes without one was interrupted. An ``error``
object in the stream raises ``UpstreamStreamError``.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import orjson

from trustgate_proxy.domain.formats.base import UpstreamStreamError, WireFormat
from trustgate_proxy.domain.formats.common import arguments_json, data_url, tool_arguments
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
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    Untranslatable,
    Usage,
    UsageUpdate,
)
from trustgate_proxy.domain.formats.sse import SSEReader

# An effort (OpenAI's vocabulary) as a thinking budget in tokens.
EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
MAX_STOP_SEQUENCES = 5
# The keys of Gemini's Schema object (an OpenAPI 3.0 subset); everything else is stripped.
SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "minimum",
        "maximum",
    }
)
_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
    "TOO_MANY_TOOL_CALLS": "error",
    "OTHER": "error",
}
_FILE_URI = re.compile(r"^(gs://|https://generativelanguage\.googleapis\.com/.*/files/)")
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


# -- request ---------------------------------------------------------------------------------


def _schema(node: Any, path: str, defs: dict[str, Any], dropped: set[str], depth: int = 0) -> Any:
    """JSON Schema → Gemini's Schema: unknown keys stripped (their paths added to
    ``dropped``), local ``$ref`` inlined, nullable unions and ``const`` rewritten."""
    if not isinstance(node, dict):
        return node
    if depth > 32:
        raise Untranslatable("the JSON schema nests too deep for Gemini")
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if not ref.startswith("#/") or name not in defs:
            raise Untranslatable(f"Gemini cannot resolve the schema reference {ref!r}")
        merged = {**defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        return _schema(merged, path, defs, dropped, depth + 1)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type":
            types = value if isinstance(value, list) else [value]
            real = [t for t in types if t != "null"]
            if len(real) < len(types):
                out["nullable"] = True
            if len(real) == 1 and isinstance(real[0], str) and real[0] in _TYPES:
                out["type"] = real[0].upper()
            elif len(real) > 1:
                out["anyOf"] = [{"type": str(t).upper()} for t in real]
            elif real:
                dropped.add(f"{path}.type")
        elif key == "const":
            out["enum"] = [value]
        elif key == "oneOf" and isinstance(value, list):
            out["anyOf"] = [_schema(v, f"{path}.oneOf", defs, dropped, depth + 1) for v in value]
        elif key == "anyOf" and isinstance(value, list):
            branches = [b for b in value if not (isinstance(b, dict) and b.get("type") == "null")]
            if len(branches) < len(value):
                out["nullable"] = True
            mapped = [_schema(v, f"{path}.anyOf", defs, dropped, depth + 1) for v in branches]
            if len(mapped) == 1 and isinstance(mapped[0], dict):
                out.update(mapped[0])
            else:
                out["anyOf"] = mapped
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                name: _schema(sub, f"{path}.properties", defs, dropped, depth + 1)
                for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = _schema(value, f"{path}.items", defs, dropped, depth + 1)
        elif key == "enum" and isinstance(value, list):
            out["enum"] = [v if isinstance(v, str) else orjson.dumps(v).decode() for v in value]
            if out.get("type", "STRING") != "STRING":
                out["format"] = "enum"
                out["type"] = "STRING"
        elif key in SCHEMA_KEYS:
            out[key] = value
        elif key not in ("$defs", "definitions"):
            dropped.add(f"{path}.{key}")
    if "enum" in out and "type" not in out:
        out["type"] = "STRING"
    return out


def gemini_schema(schema: dict[str, Any], path: str, dropped: set[str]) -> dict[str, Any]:
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    if ("$defs" in schema or "definitions" in schema) and not defs:
        dropped.add(f"{path}.$defs")
    out = _schema(schema, path, defs, dropped)
    return out if isinstance(out, dict) else {}


def _image(image: Image) -> dict[str, Any]:
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type or "image/png", "data": image.data}}
    url = image.url or ""
    if url.startswith("data:"):
        inline = data_url(url)
        if inline is None:
            raise Untranslatable("Gemini needs base64 image data; the data: URL is not base64")
        return {"inlineData": {"mimeType": inline[0] or "image/png", "data": inline[1]}}
    if _FILE_URI.match(url):
        media = image.media_type or mimetypes.guess_type(url)[0] or "image/jpeg"
        return {"fileData": {"mimeType": media, "fileUri": url}}
    raise Untranslatable(
        "Gemini needs images inline (base64 or a data: URL) or as a gs:// or Files API URI; "
        "it does not fetch image URLs"
    )


def _text_of(parts: list[Text | Image]) -> str:
    return "".join(p.text for p in parts if isinstance(p, Text))


def _tool_name(request: ChatRequest, upto: int, call_id: str) -> str | None:
    """The name of the latest call ``call_id`` at or before message ``upto`` (ids Gemini
    answers with repeat across turns when it sent none)."""
    for message in reversed(request.messages[: upto + 1]):
        for part in message.parts:
            if isinstance(part, ToolCall) and part.id == call_id:
                return part.name
    return request.tool_name(call_id)


def _parts(request: ChatRequest, index: int, message: Message, dropped: set[str]) -> list[Any]:
    out: list[dict[str, Any]] = []
    signature: str | None = None
    for part in message.parts:
        item: dict[str, Any] | None = None
        extra: list[dict[str, Any]] = []
        if isinstance(part, Text):
            item = {"text": part.text}
        elif isinstance(part, Image):
            if part.detail is not None:
                dropped.add("image.detail")
            item = _image(part)
        elif isinstance(part, ToolCall):
            item = {"functionCall": {"name": part.name, "args": tool_arguments(part, "Gemini")}}
        elif isinstance(part, ToolResult):
            name = part.name or _tool_name(request, index, part.tool_call_id)
            if name is None:
                raise Untranslatable(
                    f"Gemini needs the tool's name for the result of {part.tool_call_id!r}, "
                    "and no earlier tool call has that id"
                )
            key = "error" if part.is_error else "content"
            item = {"functionResponse": {"name": name, "response": {key: _text_of(part.content)}}}
            extra = [_image(p) for p in part.content if isinstance(p, Image)]
        elif isinstance(part, Thinking):
            if part.redacted:
                dropped.add("thinking.redacted")
            elif part.text:
                dropped.add("thinking.text")
            if part.signature and not part.redacted:
                signature = part.signature
            continue
        if item is not None:
            if signature is not None:
                item["thoughtSignature"] = signature
                signature = None
            out.append(item)
            out.extend(extra)
    if signature is not None:  # a signature with nothing after it: it signs an empty part
        out.append({"text": "", "thoughtSignature": signature})
    return out


def _tools(tools: list[Tool], dropped: set[str]) -> list[dict[str, Any]]:
    declarations = []
    for tool in tools:
        decl: dict[str, Any] = {"name": tool.name}
        if tool.description:
            decl["description"] = tool.description
        params = gemini_schema(tool.parameters, "tools[].parameters", dropped)
        if params and not (params.get("type") == "OBJECT" and not params.get("properties")):
            decl["parameters"] = params
        if tool.strict is not None:
            dropped.add("tools[].strict")
        declarations.append(decl)
    return [{"functionDeclarations": declarations}]


class GeminiCodec:
    """OutboundCodec and UsageReader for Gemini's generateContent."""

    format: WireFormat = "gemini"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        dropped: set[str] = set()
        contents = []
        for index, message in enumerate(request.messages):
            parts = _parts(request, index, message, dropped)
            if parts:
                contents.append(
                    {"role": "model" if message.role == "assistant" else "user", "parts": parts}
                )
        if not contents:
            raise Untranslatable("Gemini needs at least one message with content")
        doc: dict[str, Any] = {"contents": contents}
        if request.system:
            doc["systemInstruction"] = {"parts": [{"text": s} for s in request.system]}
        if request.tools:
            doc["tools"] = _tools(request.tools, dropped)
        choice = request.tool_choice
        if choice is not None:
            mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[choice.mode]
            config: dict[str, Any] = {"mode": mode}
            if choice.mode == "tool" and choice.name:
                config["allowedFunctionNames"] = [choice.name]
            doc["toolConfig"] = {"functionCallingConfig": config}
        gen: dict[str, Any] = {}
        for key, value in (
            ("maxOutputTokens", request.max_tokens),
            ("temperature", request.temperature),
            ("topP", request.top_p),
            ("topK", request.top_k),
            ("seed", request.seed),
            ("presencePenalty", request.presence_penalty),
            ("frequencyPenalty", request.frequency_penalty),
        ):
            if value is not None:
                gen[key] = value
        if request.stop:
            gen["stopSequences"] = request.stop[:MAX_STOP_SEQUENCES]
            if len(request.stop) > MAX_STOP_SEQUENCES:
                dropped.add("stop[5:]")
        fmt = request.response_format
        if fmt is not None and fmt.type != "text":
            gen["responseMimeType"] = "application/json"
            if fmt.type == "json_schema" and fmt.schema:
                gen["responseSchema"] = gemini_schema(fmt.schema, "response_format.schema", dropped)
            if fmt.name is not None:
                dropped.add("response_format.name")
            if fmt.strict is not None:
                dropped.add("response_format.strict")
        reasoning = request.reasoning
        if reasoning is not None:
            budget = reasoning.budget_tokens
            if budget is None and reasoning.effort is not None:
                budget = EFFORT_BUDGET.get(reasoning.effort)
                if budget is None:
                    dropped.add("reasoning.effort")
            thinking: dict[str, Any] = {"includeThoughts": budget != 0}
            if budget is not None:
                thinking["thinkingBudget"] = budget
            gen["thinkingConfig"] = thinking
        if gen:
            doc["generationConfig"] = gen
        if request.parallel_tool_calls is not None:
            dropped.add("parallel_tool_calls")
        if request.user is not None:
            dropped.add("user")
        if request.metadata:
            dropped.add("metadata")
        request.dropped.extend(sorted(dropped))
        return doc

    # -- response --------------------------------------------------------------------------

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        response_id = str(doc.get("responseId") or "")
        candidate = _candidate(doc)
        parts: list[Part] = []
        calls = 0
        for raw in _raw_parts(candidate):
            signature = raw.get("thoughtSignature")
            if raw.get("thought") is True:
                parts.append(Thinking(text=str(raw.get("text") or ""), signature=signature))
                continue
            if isinstance(signature, str):
                parts.append(Thinking(signature=signature))
            call = raw.get("functionCall")
            if isinstance(call, dict):
                parts.append(_tool_call(call, response_id, calls))
                calls += 1
            elif isinstance(raw.get("text"), str) and raw["text"]:
                if parts and isinstance(parts[-1], Text):
                    parts[-1].text += raw["text"]
                else:
                    parts.append(Text(raw["text"]))
        return ChatResponse(
            id=response_id or "gemini",
            model=str(doc.get("modelVersion") or ""),
            parts=parts,
            finish=_finish(doc, candidate, calls > 0) or "stop",
            usage=usage_of(doc.get("usageMetadata")),
        )

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body.decode("utf-8", "replace")[:500] or f"upstream status {status}"
        if isinstance(doc, list) and doc:
            doc = doc[0]
        if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
            return _error_text(doc["error"])
        return f"upstream status {status}"

    # -- UsageReader -----------------------------------------------------------------------

    def from_body(self, body: bytes) -> Usage | None:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return usage_of(doc.get("usageMetadata")) if isinstance(doc, dict) else None

    def from_stream(self, head: bytes, tail: bytes) -> Usage | None:
        for line in reversed(tail.splitlines()):
            if b'"usageMetadata"' not in line or not line.startswith(b"data:"):
                continue
            try:
                doc = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue  # the tail's first line may be cut
            if isinstance(doc, dict):
                return usage_of(doc.get("usageMetadata"))
        return None

    def stream_complete(self, tail: bytes) -> bool:
        end = tail.rstrip()
        last = end[end.rfind(b"data:") :] if b"data:" in end else b""
        return b'"finishReason"' in last and b'"error"' not in last[:16]


def _error_text(error: dict[str, Any]) -> str:
    message = str(error.get("message") or "upstream error")
    status = error.get("status")
    return f"{status}: {message}" if status else message


def _candidate(doc: dict[str, Any]) -> dict[str, Any]:
    candidates = doc.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return {}


def _raw_parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _finish(doc: dict[str, Any], candidate: dict[str, Any], calls: bool) -> FinishReason | None:
    reason = candidate.get("finishReason")
    if reason is None:
        feedback = doc.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            return "content_filter"
        return None
    if calls and reason == "STOP":
        return "tool_calls"
    return _FINISH.get(str(reason), "stop")


def _call_id(call: dict[str, Any], response_id: str, n: int) -> str:
    given = call.get("id")
    if isinstance(given, str) and given:
        return given
    rid = _ID_UNSAFE.sub("", response_id)
    return f"call_{rid}_{n}" if rid else f"call_{n}"


def _tool_call(call: dict[str, Any], response_id: str, n: int) -> ToolCall:
    return ToolCall(
        id=_call_id(call, response_id, n),
        name=str(call.get("name") or ""),
        arguments=arguments_json(call.get("args")),
    )


def usage_of(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    thoughts = meta.get("thoughtsTokenCount")
    cached = meta.get("cachedContentTokenCount")
    return Usage(
        input_tokens=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        output_tokens=int(meta.get("candidatesTokenCount") or 0) + int(thoughts or 0),
        cached_input_tokens=int(cached) if cached is not None else None,
        reasoning_tokens=int(thoughts) if thoughts is not None else None,
    )


# -- stream ----------------------------------------------------------------------------------


class GeminiStreamDecoder:
    """``data: {GenerateContentResponse}`` SSE events (any chunking) → stream events."""

    __slots__ = ("_block", "_calls", "_finished", "_kind", "_sse", "_started", "_usage")

    def __init__(self) -> None:
        self._sse = SSEReader()
        self._started = False
        self._finished = False
        self._block = -1
        self._kind = ""  # the open block's kind: text | thinking | tool
        self._calls = 0
        self._usage: Usage | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for data in self._sse.feed(chunk):
            self._event(data, events)
        return events

    def close(self) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for data in self._sse.close():
            try:
                orjson.loads(data)
            except orjson.JSONDecodeError:
                continue  # an event cut short: the stream was interrupted (or is over)
            self._event(data, events)
        if self._finished:
            events.append(StreamEnd())
        return events

    def _open(self, kind: str) -> int:
        if self._kind != kind or kind == "tool":
            self._block += 1
            self._kind = kind
        return self._block

    def _event(self, data: bytes, events: list[StreamEvent]) -> None:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamStreamError("malformed event in the Gemini stream") from None
        if isinstance(doc, list) and doc:
            doc = doc[0]
        if not isinstance(doc, dict):
            raise UpstreamStreamError("malformed event in the Gemini stream")
        if isinstance(doc.get("error"), dict):
            raise UpstreamStreamError(_error_text(doc["error"]))
        response_id = str(doc.get("responseId") or "")
        if not self._started:
            self._started = True
            events.append(StreamStart(id=response_id or None, model=doc.get("modelVersion")))
        candidate = _candidate(doc)
        for raw in _raw_parts(candidate):
            signature = raw.get("thoughtSignature")
            if raw.get("thought") is True:
                block = self._open("thinking")
                text = str(raw.get("text") or "")
                if text:
                    events.append(ThinkingDelta(block, text))
                if isinstance(signature, str):
                    events.append(ThinkingDelta(block, "", signature))
                    self._kind = ""  # the signature closes the block
                continue
            if isinstance(signature, str):
                self._open("signature")
                events.append(ThinkingDelta(self._block, "", signature))
            call = raw.get("functionCall")
            if isinstance(call, dict):
                tool = _tool_call(call, response_id, self._calls)
                self._calls += 1
                block = self._open("tool")
                events.append(ToolCallStart(block, tool.id, tool.name))
                events.append(ToolArgsDelta(block, tool.arguments))
            elif isinstance(raw.get("text"), str) and raw["text"]:
                events.append(TextDelta(self._open("text"), raw["text"]))
        usage = usage_of(doc.get("usageMetadata"))
        if usage is not None:
            self._usage = usage
        finish = _finish(doc, candidate, self._calls > 0)
        if self._finished and usage is not None:
            events.append(UsageUpdate(usage))  # usage after the finishing chunk
        elif finish is not None and self._usage is not None:
            events.append(UsageUpdate(self._usage))
        if finish is not None and not self._finished:
            self._finished = True
            events.append(Finish(finish))


GEMINI = GeminiCodec()
