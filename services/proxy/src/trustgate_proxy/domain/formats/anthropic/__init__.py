"""Anthropic's Messages API (``POST /v1/messages``), spoken by clients and to providers.

Wire shapes follow Anthropic's API reference and the official ``anthropic`` SDK's types
(``MessageCreateParams``, ``Message``, ``RawMessageStreamEvent``): a request with
``model``, ``max_tokens`` (required), ``system`` (a string or text blocks), ``messages``
of content blocks (``text``, ``image``, ``tool_use``, ``tool_result``, ``thinking``,
``redacted_thinking``), ``tools`` (``input_schema``), ``tool_choice`` (``auto`` | ``any`` |
``tool`` | ``none`` with ``disable_parallel_tool_use``), ``thinking`` (``enabled`` with
``budget_tokens``) and the sampling fields; an answer of content blocks with a
``stop_reason`` and ``usage`` whose ``input_tokens`` excludes cache reads and writes
(reported apart); a stream of named SSE events ``message_start``, then per block
``content_block_start`` / ``content_block_delta`` / ``content_block_stop``, then
``message_delta`` (stop reason, cumulative usage) and ``message_stop``, with ``ping``
anywhere and ``error`` as the failure event.

Translation choices (the docs' table lists the drops):
- a canonical request without ``max_tokens`` gets ``DEFAULT_MAX_TOKENS`` (Anthropic
  requires one);
- an OpenAI-style reasoning ``effort`` becomes a thinking budget (``EFFORT_BUDGETS``);
  with thinking on, ``temperature`` and ``top_k`` are dropped (Anthropic refuses them);
- unsigned thinking (another format's reasoning text) is dropped: Anthropic only takes
  thinking blocks back with the signature it made;
- consecutive turns of one role are merged and tool results go first in a user turn, as
  Anthropic requires;
- ``pause_turn`` (a server tool paused the turn) reads as ``stop``.
"""

from __future__ import annotations

from trustgate_proxy.domain.formats.anthropic.inbound import AnthropicInbound
from trustgate_proxy.domain.formats.anthropic.outbound import AnthropicOutbound
from trustgate_proxy.domain.formats.anthropic.passthrough import AnthropicUsage
from trustgate_proxy.domain.formats.anthropic.stream import (
    AnthropicStreamDecoder,
    AnthropicStreamEncoder,
)
from trustgate_proxy.domain.formats.anthropic.wire import (
    DEFAULT_MAX_TOKENS,
    EFFORT_BUDGETS,
    ERROR_TYPES,
    FINISH_REASONS,
    MIN_THINKING_BUDGET,
    STOP_REASONS,
    error_type,
    usage_from,
    usage_to,
)

INBOUND = AnthropicInbound()
OUTBOUND = AnthropicOutbound()
USAGE = AnthropicUsage()

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "EFFORT_BUDGETS",
    "ERROR_TYPES",
    "FINISH_REASONS",
    "INBOUND",
    "MIN_THINKING_BUDGET",
    "OUTBOUND",
    "STOP_REASONS",
    "USAGE",
    "AnthropicInbound",
    "AnthropicOutbound",
    "AnthropicStreamDecoder",
    "AnthropicStreamEncoder",
    "AnthropicUsage",
    "error_type",
    "usage_from",
    "usage_to",
]
