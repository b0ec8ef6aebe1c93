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

from trustgate_proxy.domain.formats.bedrock.codec import BedrockCodec
from trustgate_proxy.domain.formats.bedrock.passthrough import BedrockUsage
from trustgate_proxy.domain.formats.bedrock.request import (
    EFFORT_BUDGETS,
    IMAGE_FORMATS,
    model_family,
)
from trustgate_proxy.domain.formats.bedrock.response import MEDIA_TYPES, STOP_REASONS, usage_of
from trustgate_proxy.domain.formats.bedrock.stream import CORRUPT, ConverseStreamDecoder

CODEC = BedrockCodec()
USAGE_READER = BedrockUsage()

__all__ = [
    "CODEC",
    "CORRUPT",
    "EFFORT_BUDGETS",
    "IMAGE_FORMATS",
    "MEDIA_TYPES",
    "STOP_REASONS",
    "USAGE_READER",
    "BedrockCodec",
    "BedrockUsage",
    "ConverseStreamDecoder",
    "model_family",
    "usage_of",
]
