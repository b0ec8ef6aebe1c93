"""OpenAI Chat Completions, both ways: what clients send to ``/v1/chat/completions``
(inbound) and what the OpenAI family of providers (``openai``, ``azure``, ``groq``,
``mistral``, ``deepseek``, ``openai_compatible``, …) is sent (outbound), plus the usage
reader a pass-through call uses.

Only translated calls come here: a Chat client routed to a Chat provider passes through
untouched (unknown fields survive). So a field this module cannot carry into the internal
model is *dropped* (named in ``ChatRequest.dropped``), and ``n`` > 1 — several answers,
which no other format gives — is refused with a 400.

Choices made (the docs' table lists them):
- ``system`` and ``developer`` messages become ``ChatRequest.system`` (their place among the
  other messages is lost); outbound, system text is one ``system`` message per entry;
- consecutive ``tool`` messages become one user message of ``ToolResult`` parts, and back;
- outbound, the token limit is sent as ``max_tokens`` (every OpenAI-compatible server
  knows it) unless reasoning is asked for, then as ``max_completion_tokens`` (what OpenAI's
  reasoning models accept); a reasoning token budget becomes an effort;
- reasoning text of OpenAI-compatible servers (``reasoning_content``, ``reasoning``) is read
  as ``Thinking``; Chat has no field for thinking, so it is not sent back out.
"""

from __future__ import annotations

from trustgate_proxy.domain.formats.openai_chat.inbound import OpenAIChatInbound, include_usage
from trustgate_proxy.domain.formats.openai_chat.outbound import OpenAIChatOutbound
from trustgate_proxy.domain.formats.openai_chat.passthrough import OpenAIChatUsage
from trustgate_proxy.domain.formats.openai_chat.stream import (
    ChatStreamDecoder,
    ChatStreamEncoder,
    error_event,
)
from trustgate_proxy.domain.formats.openai_chat.wire import image_from_url, usage_of

INBOUND_CODEC = OpenAIChatInbound()
OUTBOUND_CODEC = OpenAIChatOutbound()
USAGE_READER = OpenAIChatUsage()

__all__ = [
    "INBOUND_CODEC",
    "OUTBOUND_CODEC",
    "USAGE_READER",
    "ChatStreamDecoder",
    "ChatStreamEncoder",
    "OpenAIChatInbound",
    "OpenAIChatOutbound",
    "OpenAIChatUsage",
    "error_event",
    "image_from_url",
    "include_usage",
    "usage_of",
]
