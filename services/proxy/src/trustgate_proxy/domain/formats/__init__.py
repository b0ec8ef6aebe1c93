"""Wire formats and the translation between them (see ``model`` and ``base``).

``INBOUND`` maps a client format to its codec, ``OUTBOUND`` a provider format to its
codec, ``USAGE`` a format to its pass-through usage reader. Each format's module adds
itself below (one line each).
"""

from __future__ import annotations

from trustgate_proxy.domain.formats import anthropic, bedrock, gemini, openai_chat, openai_responses
from trustgate_proxy.domain.formats.base import (
    InboundCodec,
    OutboundCodec,
    StreamDecoder,
    StreamEncoder,
    UpstreamStreamError,
    UsageReader,
    WireFormat,
)
from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse, Untranslatable

INBOUND: dict[WireFormat, InboundCodec] = {}
OUTBOUND: dict[WireFormat, OutboundCodec] = {}
USAGE: dict[WireFormat, UsageReader] = {}
INBOUND["openai_chat"] = openai_chat.INBOUND_CODEC
OUTBOUND["openai_chat"] = openai_chat.OUTBOUND_CODEC
USAGE["openai_chat"] = openai_chat.USAGE_READER
INBOUND["openai_responses"] = openai_responses.INBOUND_CODEC
OUTBOUND["openai_responses"] = openai_responses.OUTBOUND_CODEC
USAGE["openai_responses"] = openai_responses.USAGE_READER
OUTBOUND["gemini"] = gemini.GEMINI
USAGE["gemini"] = gemini.GEMINI
OUTBOUND["bedrock"] = bedrock.CODEC
USAGE["bedrock"] = bedrock.USAGE_READER
INBOUND["anthropic"] = anthropic.INBOUND
OUTBOUND["anthropic"] = anthropic.OUTBOUND
USAGE["anthropic"] = anthropic.USAGE

__all__ = [
    "INBOUND",
    "OUTBOUND",
    "USAGE",
    "ChatRequest",
    "ChatResponse",
    "InboundCodec",
    "OutboundCodec",
    "StreamDecoder",
    "StreamEncoder",
    "Untranslatable",
    "UpstreamStreamError",
    "UsageReader",
    "WireFormat",
]
