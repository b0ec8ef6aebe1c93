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

from trustgate_proxy.domain.formats.gemini.codec import GeminiCodec
from trustgate_proxy.domain.formats.gemini.request import EFFORT_BUDGET, MAX_STOP_SEQUENCES
from trustgate_proxy.domain.formats.gemini.response import usage_of
from trustgate_proxy.domain.formats.gemini.schema import SCHEMA_KEYS, gemini_schema
from trustgate_proxy.domain.formats.gemini.stream import GeminiStreamDecoder

GEMINI = GeminiCodec()

__all__ = [
    "EFFORT_BUDGET",
    "GEMINI",
    "MAX_STOP_SEQUENCES",
    "SCHEMA_KEYS",
    "GeminiCodec",
    "GeminiStreamDecoder",
    "gemini_schema",
    "usage_of",
]
