"""The OutboundCodec for Bedrock's Converse: the request, answer and stream modules
behind one object.
"""

from __future__ import annotations

from typing import Any

from trustgate_proxy.domain.formats.base import StreamDecoder, WireFormat
from trustgate_proxy.domain.formats.bedrock.request import encode_request
from trustgate_proxy.domain.formats.bedrock.response import decode_response, error_message
from trustgate_proxy.domain.formats.bedrock.stream import ConverseStreamDecoder
from trustgate_proxy.domain.formats.model import ChatRequest, ChatResponse


class BedrockCodec:
    """The Converse format, spoken to Bedrock Runtime."""

    format: WireFormat = "bedrock"

    def encode_request(self, request: ChatRequest) -> dict[str, Any]:
        return encode_request(request)

    def decode_response(self, doc: dict[str, Any]) -> ChatResponse:
        return decode_response(doc)

    def stream_decoder(self) -> StreamDecoder:
        return ConverseStreamDecoder()

    def error_message(self, status: int, body: bytes) -> str:
        return error_message(status, body)
