"""The canonical request as a ``generateContent`` body: contents and parts (images,
function calls and responses, thought signatures), tools, tool config, generation and
thinking config, and what had to be dropped.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from trustgate_proxy.domain.formats.common import data_url, tool_arguments
from trustgate_proxy.domain.formats.gemini.schema import gemini_schema
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    Image,
    Message,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    Untranslatable,
)

# An effort (OpenAI's vocabulary) as a thinking budget in tokens.
EFFORT_BUDGET = {"none": 0, "minimal": 512, "low": 1024, "medium": 8192, "high": 24576}


MAX_STOP_SEQUENCES = 5


_FILE_URI = re.compile(r"^(gs://|https://generativelanguage\.googleapis\.com/.*/files/)")


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


def encode_request(request: ChatRequest) -> dict[str, Any]:
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
