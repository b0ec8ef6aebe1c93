"""One internal model of a conversation, its answer and its stream, shared by every wire
format (OpenAI Chat, OpenAI Responses, Anthropic Messages, Gemini, Bedrock Converse).

Translation always goes *client format → this model → provider format* (and back for the
answer), so N formats need N codecs, not N² translators. When the client's format and the
provider's are the same, none of this runs: the body passes through untouched.

Rules every codec follows:
- a field the other side cannot express is *dropped deliberately* and named in
  ``ChatRequest.dropped`` (the docs' table lists them); never guessed or garbled;
- a request that cannot be served at all raises ``Untranslatable`` (400, says why);
- roles are only ``user`` and ``assistant``: system text lives in ``ChatRequest.system``,
  tool results are ``ToolResult`` parts of a user message (OpenAI's ``tool`` role becomes
  that, and back);
- tool-call arguments are kept as the JSON *text* the model produced (``arguments``), so a
  round trip never re-serialises them.

Pure data: no I/O, no framework imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from trustgate_core.errors import InvalidRequest

Role = Literal["user", "assistant"]
# Finish reasons, in OpenAI Chat's vocabulary (the most widely understood one).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class Untranslatable(InvalidRequest):
    """The request cannot be expressed in the provider's format (400 invalid_request)."""


# -- content parts --------------------------------------------------------------------------


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image: a URL (``https:`` or a ``data:`` URL) or inline base64 ``data`` with its
    ``media_type``. ``detail`` is OpenAI's hint (low|high|auto), dropped elsewhere."""

    url: str | None = None
    data: str | None = None  # base64, no data: prefix
    media_type: str | None = None  # image/png, image/jpeg, ...
    detail: str | None = None


@dataclass(slots=True)
class ToolCall:
    """A model's request to call a tool. ``arguments`` is JSON text (may be partial while
    streaming, complete here)."""

    id: str
    name: str
    arguments: str = "{}"


@dataclass(slots=True)
class ToolResult:
    """A tool's answer to ``tool_call_id``. ``content`` is text or text/image parts.
    ``name`` is the tool's name when known (Gemini needs it; codecs that need it and don't
    get it look it up from the conversation's earlier ``ToolCall``)."""

    tool_call_id: str
    content: list[Text | Image] = field(default_factory=list)
    is_error: bool = False
    name: str | None = None


@dataclass(slots=True)
class Thinking:
    """A reasoning block. ``signature`` (Anthropic, Bedrock) must round-trip unchanged;
    ``redacted`` blocks carry only opaque ``data``. OpenAI Responses reasoning items carry
    their summary as ``text``, ``encrypted_content`` as ``data`` and their item ``id``
    (needed to send the item back)."""

    text: str = ""
    signature: str | None = None
    redacted: bool = False
    data: str | None = None
    id: str | None = None  # the provider's id of the block (OpenAI Responses: ``rs_…``)


Part = Text | Image | ToolCall | ToolResult | Thinking


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part] = field(default_factory=list)


# -- request ------------------------------------------------------------------------------


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object"})
    strict: bool | None = None


@dataclass(slots=True)
class ToolChoice:
    """``auto`` | ``none`` | ``required`` (any tool) | ``tool`` (the one named)."""

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None


@dataclass(slots=True)
class ResponseFormat:
    """``text`` | ``json_object`` (JSON mode) | ``json_schema`` (structured output)."""

    type: Literal["text", "json_object", "json_schema"] = "text"
    schema: dict[str, Any] | None = None
    name: str | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Reasoning:
    """Reasoning/thinking asked for: an OpenAI-style ``effort`` (minimal|low|medium|high)
    and/or an Anthropic/Gemini-style token ``budget``. Codecs convert one into the other
    when their side has only one of them."""

    effort: str | None = None
    budget_tokens: int | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message] = field(default_factory=list)
    system: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    stream: bool = False
    # Whether the client wants usage in its stream (OpenAI Chat only with
    # ``stream_options.include_usage``; the other formats always carry it).
    stream_usage: bool = True
    # Fields of the client's format with no place in this model (names, for the event and
    # the docs); and those the provider's codec had to drop.
    dropped: list[str] = field(default_factory=list)

    def tool_name(self, call_id: str) -> str | None:
        """The name of the tool an earlier assistant ``ToolCall`` with ``call_id`` named."""
        for message in self.messages:
            for part in message.parts:
                if isinstance(part, ToolCall) and part.id == call_id:
                    return part.name
        return None


# -- response -----------------------------------------------------------------------------


@dataclass(slots=True)
class Usage:
    """Tokens, normalised: ``input_tokens`` counts every prompt token, cached ones
    included (Anthropic reports cache reads/writes apart: its codec adds them in);
    ``cached_input_tokens`` is the part read from a cache."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_event(self) -> dict[str, Any]:
        """The request event's ``usage`` shape (``trustgate_core.events.RequestUsage``)."""
        out: dict[str, Any] = {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.cached_input_tokens is not None:
            out["cached_input_tokens"] = self.cached_input_tokens
        if self.reasoning_tokens is not None:
            out["reasoning_output_tokens"] = self.reasoning_tokens
        if self.cache_write_tokens is not None:
            out["cache_write_tokens"] = self.cache_write_tokens
        return out


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part] = field(default_factory=list)  # Text, ToolCall, Thinking
    finish: FinishReason = "stop"
    usage: Usage | None = None
    created: int = 0  # epoch seconds; 0: the encoder uses "now"


# -- stream events --------------------------------------------------------------------------
# A decoder turns a provider's stream into these; an encoder turns them into the client's
# stream. ``block`` numbers the answer's content blocks from 0 in order of appearance (one
# text run, one tool call, one thinking block each); events of a block come in order, and a
# new block index means the previous block is complete (decoders need not say so).


@dataclass(slots=True)
class StreamStart:
    id: str | None = None
    model: str | None = None


@dataclass(slots=True)
class TextDelta:
    block: int
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    block: int
    text: str = ""
    signature: str | None = None  # arrives once, at the block's end (Anthropic)


@dataclass(slots=True)
class ToolCallStart:
    block: int
    id: str
    name: str


@dataclass(slots=True)
class ToolArgsDelta:
    block: int
    delta: str


@dataclass(slots=True)
class UsageUpdate:
    """Usage so far (a later update replaces an earlier one)."""

    usage: Usage


@dataclass(slots=True)
class Finish:
    reason: FinishReason


@dataclass(slots=True)
class StreamEnd:
    """The provider said the stream is complete (``[DONE]``, ``message_stop``, …)."""


StreamEvent = (
    StreamStart
    | TextDelta
    | ThinkingDelta
    | ToolCallStart
    | ToolArgsDelta
    | UsageUpdate
    | Finish
    | StreamEnd
)
