"""OpenAI's Responses API (``POST /v1/responses``): spoken by clients (inbound) and by the
``openai`` provider when its registry asks for it (outbound).

Shapes follow the API reference and the ``openai`` SDK's types
(``openai/types/responses/``: ``Response``, ``ResponseInputItemParam``, the
``Response*Event`` stream events) and its stream accumulator
(``openai/lib/streaming/responses/_responses.py``), which the encoder's output must satisfy.

What cannot cross to another format:
- ``previous_response_id``, ``conversation`` and ``prompt`` name state stored at OpenAI: a
  request using them cannot be served by another provider (400, says why);
- built-in tools (``web_search``, ``file_search``, ``computer_use_preview``, …) run inside
  OpenAI: 400 naming the tool type; so do images and files given by ``file_id``;
- ``store``, ``include``, ``truncation``, ``background`` and the other knobs of OpenAI's
  own service are dropped and listed in ``ChatRequest.dropped``.
"""

from __future__ import annotations

from trustgate_proxy.domain.formats.openai_responses.inbound import ResponsesInbound
from trustgate_proxy.domain.formats.openai_responses.outbound import ResponsesOutbound
from trustgate_proxy.domain.formats.openai_responses.passthrough import ResponsesUsage
from trustgate_proxy.domain.formats.openai_responses.stream import (
    ResponsesStreamDecoder,
    ResponsesStreamEncoder,
)
from trustgate_proxy.domain.formats.openai_responses.wire import FORMAT

INBOUND_CODEC = ResponsesInbound()
OUTBOUND_CODEC = ResponsesOutbound()
USAGE_READER = ResponsesUsage()

__all__ = [
    "FORMAT",
    "INBOUND_CODEC",
    "OUTBOUND_CODEC",
    "USAGE_READER",
    "ResponsesInbound",
    "ResponsesOutbound",
    "ResponsesStreamDecoder",
    "ResponsesStreamEncoder",
    "ResponsesUsage",
]
