"""The OutboundCodec and UsageReader for Gemini (and Vertex AI): the request, answer and
stream modules behind one object, plus pass-through usage read from the raw bytes.
"""

from __future__ import annotations

from typing import Any

import orjson

from trustgate_proxy.domain.formats.base import WireFormat
from trustgate_proxy.domain.formats.common import json_object
from trustgate_proxy.domain.formats.gemini.request import encode_request
from trustgate_proxy.domain.formats.gemini.response import decode_response, error_message, usage_of
from trustgate_proxy.domain.formats.gemini.stream import GeminiStreamDecoder
from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse, Usage


class GeminiCodec:
    """OutboundCodec and UsageReader for Gemini's generateContent."""

    format: WireFormat = "gemini"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        return encode_request(request)

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        return decode_response(doc)

    def stream_decoder(self) -> GeminiStreamDecoder:
        return GeminiStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)

    # -- UsageReader -----------------------------------------------------------------------
    head_bytes = 0

    def from_body(self, body: bytes) -> Usage | None:
        doc = json_object(body)
        return usage_of(doc.get("usageMetadata")) if doc is not None else None

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
