"""Golden tables for the Anthropic Messages codec, both directions, and its streams.

Fixtures' provenance: request, answer and stream documents are written in the shapes of
Anthropic's API reference (Messages, Streaming Messages, Errors) and the ``anthropic``
SDK's types (``MessageCreateParams``, ``Message``, ``RawMessageStreamEvent``).
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, USAGE
from trustgate_proxy.domain.formats.anthropic import (
    DEFAULT_MAX_TOKENS,
    AnthropicInbound,
    AnthropicOutbound,
    AnthropicUsage,
)
from trustgate_proxy.domain.formats.base import UpstreamStreamError
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
    ChatResponse,
    Finish,
    Image,
    Message,
    Reasoning,
    ResponseFormat,
    StreamEnd,
    StreamEvent,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Untranslatable,
    Usage,
    UsageUpdate,
)
from trustgate_testkit.proxy import mock_base
from trustgate_testkit.proxy.format_checks import (
    chunks_of,
    decode_chunks,
    encode_events,
    feed_bytewise,
    random_chunks,
    sse_frames,
)

inbound = AnthropicInbound()
outbound = AnthropicOutbound()
usage_reader = AnthropicUsage()

WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}


def test_the_codecs_are_registered_for_the_anthropic_format() -> None:
    assert INBOUND["anthropic"].format == "anthropic"
    assert OUTBOUND["anthropic"].format == "anthropic"
    assert "anthropic" in USAGE


# -- Anthropic request → canonical ----------------------------------------------------------

DECODE_CASES: list[tuple[str, dict[str, Any], ChatRequest]] = [
    (
        "plain string content and system string",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 256,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
        },
        ChatRequest(
            model="claude-sonnet-4-5",
            system=["Be brief."],
            messages=[Message("user", [Text("Hi")])],
            max_tokens=256,
        ),
    ),
    (
        "system text blocks with cache_control (dropped), sampling, stop, metadata",
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "system": [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Long context", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "temperature": 0.2,
            "top_p": 0.9,
            "top_k": 40,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-42"},
            "stream": True,
            "service_tier": "auto",
        },
        ChatRequest(
            model="claude-sonnet-4-5",
            system=["You are terse.", "Long context"],
            messages=[Message("user", [Text("Hi")])],
            max_tokens=100,
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop=["END"],
            user="u-42",
            stream=True,
            dropped=["service_tier", "cache_control"],
        ),
    ),
    (
        "images by base64 and url",
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                        },
                        {
                            "type": "image",
                            "source": {"type": "url", "url": "https://example.com/cat.jpg"},
                        },
                        {"type": "text", "text": "What are these?"},
                    ],
                }
            ],
        },
        ChatRequest(
            model="m",
            max_tokens=10,
            messages=[
                Message(
                    "user",
                    [
                        Image(data="iVBO", media_type="image/png"),
                        Image(url="https://example.com/cat.jpg"),
                        Text("What are these?"),
                    ],
                )
            ],
        ),
    ),
    (
        "tools, tool_choice, a tool round trip with string and block results",
        {
            "model": "m",
            "max_tokens": 10,
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Weather by city",
                    "input_schema": WEATHER_SCHEMA,
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
            "messages": [
                {"role": "user", "content": "Weather in Paris and Rome?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {
                            "type": "tool_use",
                            "id": "toolu_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        },
                        {
                            "type": "tool_use",
                            "id": "toolu_2",
                            "name": "get_weather",
                            "input": {"city": "Rome"},
                        },
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_2",
                            "content": [{"type": "text", "text": "no data"}],
                            "is_error": True,
                        },
                    ],
                },
            ],
        },
        ChatRequest(
            model="m",
            max_tokens=10,
            tools=[Tool("get_weather", "Weather by city", WEATHER_SCHEMA)],
            tool_choice=ToolChoice("required"),
            parallel_tool_calls=False,
            messages=[
                Message("user", [Text("Weather in Paris and Rome?")]),
                Message(
                    "assistant",
                    [
                        Text("Let me check."),
                        ToolCall("toolu_1", "get_weather", '{"city":"Paris"}'),
                        ToolCall("toolu_2", "get_weather", '{"city":"Rome"}'),
                    ],
                ),
                Message(
                    "user",
                    [
                        ToolResult("toolu_1", [Text("sunny")], name="get_weather"),
                        ToolResult("toolu_2", [Text("no data")], is_error=True, name="get_weather"),
                    ],
                ),
            ],
            dropped=["tools.cache_control"],
        ),
    ),
    (
        "a named tool choice, thinking with signature and redacted thinking",
        {
            "model": "m",
            "max_tokens": 8000,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "tools": [{"name": "t", "input_schema": {"type": "object"}, "strict": True}],
            "tool_choice": {"type": "tool", "name": "t"},
            "messages": [
                {"role": "user", "content": "Go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig=="},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "Done"},
                    ],
                },
            ],
        },
        ChatRequest(
            model="m",
            max_tokens=8000,
            reasoning=Reasoning(budget_tokens=2048),
            tools=[Tool("t", None, {"type": "object"}, strict=True)],
            tool_choice=ToolChoice("tool", "t"),
            messages=[
                Message("user", [Text("Go")]),
                Message(
                    "assistant",
                    [
                        Thinking("hmm", signature="sig=="),
                        Thinking(redacted=True, data="opaque"),
                        Text("Done"),
                    ],
                ),
            ],
        ),
    ),
    (
        "tool_choice none and auto-parallel, output_config format and effort",
        {
            "model": "m",
            "max_tokens": 10,
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "none"},
            "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": {}}},
            "messages": [{"role": "user", "content": "x"}],
        },
        ChatRequest(
            model="m",
            max_tokens=10,
            tools=[Tool("t", None, {"type": "object"})],
            tool_choice=ToolChoice("none"),
            reasoning=Reasoning(effort="high"),
            response_format=ResponseFormat("json_schema", {}),
            messages=[Message("user", [Text("x")])],
        ),
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [c[1:] for c in DECODE_CASES], ids=[c[0] for c in DECODE_CASES]
)
def test_an_anthropic_request_decodes_to_the_canonical_one(
    doc: dict[str, Any], expected: ChatRequest
) -> None:
    assert inbound.decode_request(doc) == expected


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"messages": []}, "model"),
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "content"),
        ({"model": "m", "max_tokens": "a", "messages": []}, "max_tokens"),
        ({"model": "m", "system": [{"type": "image"}], "messages": []}, "system"),
        ({"model": "m", "tool_choice": {"type": "tool"}, "messages": []}, "tool_choice"),
    ],
)
def test_a_body_the_messages_api_does_not_allow_is_a_400(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        inbound.decode_request(doc)


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        ({"type": "document", "source": {"type": "text", "data": "x"}}, "document"),
        ({"type": "image", "source": {"type": "file", "file_id": "f"}}, "file"),
        (
            {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
            "server_tool_use",
        ),
    ],
)
def test_content_no_other_format_can_express_is_refused_with_the_reason(
    block: dict[str, Any], reason: str
) -> None:
    doc = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [block]}]}
    with pytest.raises(Untranslatable, match=reason):
        inbound.decode_request(doc)


def test_anthropics_own_server_tools_are_refused() -> None:
    doc = {
        "model": "m",
        "max_tokens": 1,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        "messages": [{"role": "user", "content": "x"}],
    }
    with pytest.raises(Untranslatable, match="web_search"):
        inbound.decode_request(doc)


# -- canonical request → Anthropic ----------------------------------------------------------

ENCODE_CASES: list[tuple[str, ChatRequest, dict[str, Any], list[str]]] = [
    (
        "no max_tokens gets the default; one system string; sampling and user",
        ChatRequest(
            model="claude-haiku",
            system=["Be brief."],
            messages=[Message("user", [Text("Hi")])],
            temperature=0.5,
            top_p=0.8,
            top_k=10,
            stop=["STOP"],
            user="u-1",
            stream=True,
        ),
        {
            "model": "claude-haiku",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hi"}],
            "temperature": 0.5,
            "top_p": 0.8,
            "top_k": 10,
            "stop_sequences": ["STOP"],
            "metadata": {"user_id": "u-1"},
            "stream": True,
        },
        [],
    ),
    (
        "what Anthropic cannot take is dropped and named",
        ChatRequest(
            model="m",
            max_tokens=50,
            system=["A", "B"],
            messages=[Message("user", [Text("x"), Image(url="https://i/x.png", detail="low")])],
            seed=7,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            metadata={"trace": "1"},
            response_format=ResponseFormat("json_object"),
        ),
        {
            "model": "m",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image", "source": {"type": "url", "url": "https://i/x.png"}},
                    ],
                }
            ],
        },
        [
            "image.detail",
            "metadata",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
        ],
    ),
    (
        "a tool round trip from an OpenAI-style conversation: turns merged, results first",
        ChatRequest(
            model="m",
            max_tokens=100,
            tools=[Tool("get_weather", "Weather", WEATHER_SCHEMA, strict=True)],
            tool_choice=ToolChoice("auto"),
            parallel_tool_calls=False,
            messages=[
                Message("user", [Text("Weather?")]),
                Message(
                    "assistant", [Text(""), ToolCall("call_1", "get_weather", '{"city":"Paris"}')]
                ),
                Message("user", [ToolResult("call_1", [Text("sunny")])]),
                Message("user", [Text("And tomorrow?"), ToolResult("call_2", [], is_error=True)]),
            ],
        ),
        {
            "model": "m",
            "max_tokens": 100,
            "messages": [
                {"role": "user", "content": "Weather?"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "call_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                        {"type": "tool_result", "tool_use_id": "call_2", "is_error": True},
                        {"type": "text", "text": "And tomorrow?"},
                    ],
                },
            ],
            "tools": [
                {
                    "name": "get_weather",
                    "description": "Weather",
                    "input_schema": WEATHER_SCHEMA,
                    "strict": True,
                }
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        [],
    ),
    (
        "required and named tool choices; images as base64 and data URLs",
        ChatRequest(
            model="m",
            max_tokens=10,
            tools=[Tool("t")],
            tool_choice=ToolChoice("tool", "t"),
            messages=[
                Message(
                    "user",
                    [
                        Image(data="AAAA", media_type="image/jpeg"),
                        Image(url="data:image/webp;base64,BBBB"),
                        ToolResult("x", [Text("r"), Image(data="CC", media_type="image/png")]),
                    ],
                )
            ],
        ),
        {
            "model": "m",
            "max_tokens": 10,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "x",
                            "content": [
                                {"type": "text", "text": "r"},
                                {
                                    "type": "image",
                                    "source": {
                                        "type": "base64",
                                        "media_type": "image/png",
                                        "data": "CC",
                                    },
                                },
                            ],
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/jpeg",
                                "data": "AAAA",
                            },
                        },
                        {
                            "type": "image",
                            "source": {
                                "type": "base64",
                                "media_type": "image/webp",
                                "data": "BBBB",
                            },
                        },
                    ],
                }
            ],
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "t"},
        },
        [],
    ),
    (
        "reasoning effort becomes a thinking budget; temperature and top_k drop with it; "
        "unsigned thinking drops, signed and redacted thinking round-trip",
        ChatRequest(
            model="m",
            reasoning=Reasoning(effort="low"),
            temperature=0.3,
            top_k=5,
            response_format=ResponseFormat("json_schema", {"type": "object"}, name="x"),
            messages=[
                Message("user", [Text("q")]),
                Message(
                    "assistant",
                    [
                        Thinking("from another model"),
                        Thinking("mine", signature="sig"),
                        Thinking(redacted=True, data="opaque"),
                        Text("a"),
                    ],
                ),
                Message("user", [Text("q2")]),
            ],
        ),
        {
            "model": "m",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "mine", "signature": "sig"},
                        {"type": "redacted_thinking", "data": "opaque"},
                        {"type": "text", "text": "a"},
                    ],
                },
                {"role": "user", "content": "q2"},
            ],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        },
        ["thinking (unsigned)", "temperature", "top_k"],
    ),
    (
        "a thinking budget above the default max_tokens raises max_tokens",
        ChatRequest(
            model="m",
            reasoning=Reasoning(budget_tokens=10000),
            messages=[Message("user", [Text("q")])],
        ),
        {
            "model": "m",
            "max_tokens": 10000 + DEFAULT_MAX_TOKENS,
            "messages": [{"role": "user", "content": "q"}],
            "thinking": {"type": "enabled", "budget_tokens": 10000},
        },
        [],
    ),
    (
        "tool_choice none without tools is simply left out; other choices without tools drop",
        ChatRequest(
            model="m",
            max_tokens=5,
            tool_choice=ToolChoice("required"),
            messages=[Message("user", [Text("q")])],
        ),
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "q"}]},
        ["tool_choice"],
    ),
]


@pytest.mark.parametrize(
    ("request_", "expected", "dropped"),
    [c[1:] for c in ENCODE_CASES],
    ids=[c[0] for c in ENCODE_CASES],
)
def test_a_canonical_request_encodes_to_the_anthropic_body(
    request_: ChatRequest, expected: dict[str, Any], dropped: list[str]
) -> None:
    assert outbound.encode_request(request_) == expected
    assert request_.dropped == dropped


def test_tool_arguments_that_are_not_json_cannot_be_sent() -> None:
    req = ChatRequest(model="m", messages=[Message("assistant", [ToolCall("c", "t", "{oops")])])
    with pytest.raises(Untranslatable, match="not JSON"):
        outbound.encode_request(req)


def test_an_anthropic_request_survives_decoding_and_encoding_unchanged() -> None:
    doc = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 5000,
        "system": "Sys",
        "messages": [
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Paris"}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
            },
        ],
        "tools": [{"name": "w", "description": "d", "input_schema": WEATHER_SCHEMA}],
        "tool_choice": {"type": "auto"},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "stop_sequences": ["X"],
        "metadata": {"user_id": "u"},
        "stream": True,
    }
    assert outbound.encode_request(inbound.decode_request(doc)) == doc


# -- answers, both ways ---------------------------------------------------------------------

ANSWER = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "thinking", "thinking": "Think.", "signature": "sig=="},
        {"type": "text", "text": "Checking.", "citations": None},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 8,
        "cache_creation_input_tokens": 2,
        "cache_read_input_tokens": 3,
        "output_tokens": 7,
        "service_tier": "standard",
    },
}
CANONICAL_ANSWER = ChatResponse(
    id="msg_01XFDUDYJgAACzvnptvVoYEL",
    model="claude-sonnet-4-5-20250929",
    parts=[
        Thinking("Think.", signature="sig=="),
        Text("Checking."),
        ToolCall("toolu_01A", "get_weather", '{"city":"Paris"}'),
    ],
    finish="tool_calls",
    usage=Usage(13, 7, cached_input_tokens=3, cache_write_tokens=2),
)


def test_an_anthropic_answer_decodes_with_usage_cache_reads_and_writes_added_in() -> None:
    assert outbound.decode_response(ANSWER) == CANONICAL_ANSWER
    assert CANONICAL_ANSWER.usage is not None
    event = CANONICAL_ANSWER.usage.as_event()
    assert {k: event[k] for k in ("prompt_tokens", "completion_tokens", "cached_input_tokens")} == {
        "prompt_tokens": 13,
        "completion_tokens": 7,
        "cached_input_tokens": 3,
    }
    assert event["total_tokens"] == 20


def test_a_canonical_answer_encodes_as_an_anthropic_message() -> None:
    assert inbound.encode_response(CANONICAL_ANSWER) == {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "Think.", "signature": "sig=="},
            {"type": "text", "text": "Checking."},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 8,
            "output_tokens": 7,
            "cache_creation_input_tokens": 2,
            "cache_read_input_tokens": 3,
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        (None, "stop"),
    ],
)
def test_stop_reasons_map_to_finish_reasons(stop_reason: str | None, finish: str) -> None:
    doc: dict[str, Any] = {"id": "msg_1", "model": "m", "content": [], "stop_reason": stop_reason}
    assert outbound.decode_response(doc).finish == finish


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_finish_reasons_map_back_to_stop_reasons(finish: Any, stop_reason: str) -> None:
    out = inbound.encode_response(ChatResponse(id="chatcmpl-1", model="gpt", finish=finish))
    assert out["stop_reason"] == stop_reason
    assert out["id"] == "msg_chatcmpl-1"
    assert out["usage"] == {"input_tokens": 0, "output_tokens": 0}


def test_openai_style_usage_splits_into_anthropics_fields() -> None:
    out = inbound.encode_response(
        ChatResponse(
            id="x", model="m", parts=[Text("hi")], usage=Usage(11, 7, cached_input_tokens=3)
        )
    )
    assert out["usage"] == {"input_tokens": 8, "output_tokens": 7, "cache_read_input_tokens": 3}


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_bodies_carry_the_type_anthropic_uses_for_the_status(status: int, kind: str) -> None:
    assert inbound.error_body(status, "nope") == {
        "type": "error",
        "error": {"type": kind, "message": "nope"},
    }


def test_the_message_of_an_anthropic_error_body_is_read() -> None:
    body = orjson.dumps(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    assert outbound.error_message(529, body) == "Overloaded"
    assert outbound.error_message(502, b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert outbound.error_message(502, b"") == "upstream error 502"


# -- streams --------------------------------------------------------------------------------


def sse(kind: str, doc: dict[str, Any]) -> bytes:
    return mock_base.sse({"type": kind, **doc}, kind)


START: dict[str, Any] = {
    "message": {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 8,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 3,
            "output_tokens": 1,
        },
    }
}
STREAM = b"".join(
    [
        sse("message_start", START),
        sse(
            "content_block_start",
            {"index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        ),
        sse("ping", {}),
        sse(
            "content_block_delta",
            {"index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm"}},
        ),
        sse(
            "content_block_delta",
            {"index": 0, "delta": {"type": "signature_delta", "signature": "sig"}},
        ),
        sse("content_block_stop", {"index": 0}),
        sse("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}}),
        sse("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "Hello"}}),
        sse("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": " world"}}),
        sse("content_block_stop", {"index": 1}),
        sse(
            "content_block_start",
            {
                "index": 2,
                "content_block": {
                    "type": "server_tool_use",
                    "id": "s",
                    "name": "web_search",
                    "input": {},
                },
            },
        ),
        sse("content_block_stop", {"index": 2}),
        sse(
            "content_block_start",
            {
                "index": 3,
                "content_block": {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        sse(
            "content_block_delta",
            {"index": 3, "delta": {"type": "input_json_delta", "partial_json": ""}},
        ),
        sse(
            "content_block_delta",
            {"index": 3, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        ),
        sse(
            "content_block_delta",
            {"index": 3, "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'}},
        ),
        sse("content_block_stop", {"index": 3}),
        sse(
            "message_delta",
            {
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"output_tokens": 7},
            },
        ),
        sse("message_stop", {}),
    ]
)
STREAM_EVENTS: list[StreamEvent] = [
    StreamStart("msg_1", "claude-x"),
    UsageUpdate(Usage(11, 1, cached_input_tokens=3, cache_write_tokens=0)),
    ThinkingDelta(0, "Hmm"),
    ThinkingDelta(0, "", "sig"),
    TextDelta(1, "Hello"),
    TextDelta(1, " world"),
    ToolCallStart(2, "toolu_1", "get_weather"),  # the server tool block has no canonical form
    ToolArgsDelta(2, '{"city":'),
    ToolArgsDelta(2, '"Paris"}'),
    Finish("tool_calls"),
    UsageUpdate(Usage(11, 7, cached_input_tokens=3, cache_write_tokens=0)),
    StreamEnd(),
]


def decode_all(chunks: list[bytes]) -> list[StreamEvent]:
    return decode_chunks(outbound.stream_decoder(), chunks)


def test_a_stream_decodes_whole() -> None:
    assert decode_all([STREAM]) == STREAM_EVENTS


def test_a_stream_decodes_fed_byte_by_byte() -> None:
    assert decode_all(chunks_of(STREAM, 1)) == STREAM_EVENTS


def test_a_stream_decodes_in_any_chunking_and_with_crlf_lines() -> None:
    rng = random.Random(5)
    for data in (STREAM, STREAM.replace(b"\n", b"\r\n")):
        for _ in range(20):
            assert decode_all(random_chunks(data, rng, 12)) == STREAM_EVENTS


def test_a_stream_without_message_stop_has_no_end() -> None:
    cut = STREAM[: STREAM.index(b"event: message_delta")]
    events = decode_all([cut])
    assert not any(isinstance(e, StreamEnd) for e in events)
    assert decode_all([STREAM[:-5]])[-1] == UsageUpdate(
        Usage(11, 7, cached_input_tokens=3, cache_write_tokens=0)
    )


def test_an_error_event_raises_with_its_message() -> None:
    decoder = outbound.stream_decoder()
    decoder.feed(sse("message_start", START))
    error = sse("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    with pytest.raises(UpstreamStreamError) as caught:
        feed_bytewise(decoder, error)
    assert caught.value.message == "Overloaded"


def test_a_malformed_event_is_a_stream_error() -> None:
    with pytest.raises(UpstreamStreamError):
        outbound.stream_decoder().feed(b"event: message_start\ndata: {not json\n\n")


def encode_all(
    events: list[StreamEvent], model: str = "claude-x"
) -> list[tuple[str, dict[str, Any]]]:
    data = encode_events(inbound.stream_encoder(model), events)
    return [(doc["type"], doc) for doc in sse_frames(data, named=True)]


def test_the_stream_encoder_writes_anthropics_event_sequence() -> None:
    events: list[StreamEvent] = [
        StreamStart("chatcmpl-9", "gpt-4o"),
        TextDelta(0, "Hel"),
        TextDelta(0, "lo"),
        ToolCallStart(1, "call_1", "get_weather"),
        ToolArgsDelta(1, '{"city":'),
        ToolArgsDelta(1, '"Paris"}'),
        Finish("tool_calls"),
        UsageUpdate(Usage(11, 7, cached_input_tokens=3)),
        StreamEnd(),
    ]
    assert encode_all(events) == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_chatcmpl-9",
                    "type": "message",
                    "role": "assistant",
                    "model": "gpt-4o",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hel"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "lo"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {
                    "type": "tool_use",
                    "id": "call_1",
                    "name": "get_weather",
                    "input": {},
                },
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"city":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '"Paris"}'},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {"input_tokens": 8, "output_tokens": 7, "cache_read_input_tokens": 3},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_thinking_streams_as_a_thinking_block_with_its_signature() -> None:
    kinds = encode_all(
        [ThinkingDelta(0, "Hmm"), ThinkingDelta(0, "", "sig"), TextDelta(1, "Hi"), Finish("stop")]
    )
    assert [k for k, _ in kinds] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert kinds[2][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert kinds[3][1]["delta"] == {"type": "thinking_delta", "thinking": "Hmm"}
    assert kinds[4][1]["delta"] == {"type": "signature_delta", "signature": "sig"}
    assert kinds[6][1]["index"] == 1
    assert kinds[9][1]["delta"]["stop_reason"] == "end_turn"


def test_empty_deltas_open_no_block() -> None:
    kinds = encode_all([TextDelta(0, ""), ThinkingDelta(0), TextDelta(0, "Hi"), Finish("stop")])
    assert [k for k, _ in kinds] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_an_empty_stream_still_closes_as_a_whole_message() -> None:
    assert [k for k, _ in encode_all([StreamEnd()])] == [
        "message_start",
        "ping",
        "message_delta",
        "message_stop",
    ]


def test_the_stream_error_event_is_anthropics() -> None:
    assert inbound.stream_encoder("m").error("upstream stream terminated unexpectedly") == (
        b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
        b'"message":"upstream stream terminated unexpectedly"}}\n\n'
    )


def test_a_stream_encoded_then_decoded_gives_back_its_events() -> None:
    again = decode_all([encode_all_bytes(STREAM_EVENTS)])
    assert [e for e in again if not isinstance(e, StreamStart | UsageUpdate)] == [
        e for e in STREAM_EVENTS if not isinstance(e, StreamStart | UsageUpdate)
    ]
    assert again[-2] == UsageUpdate(Usage(11, 7, cached_input_tokens=3, cache_write_tokens=0))


def encode_all_bytes(events: list[StreamEvent]) -> bytes:
    return encode_events(inbound.stream_encoder("m"), events)


# -- pass-through usage ---------------------------------------------------------------------


def test_usage_is_read_from_a_plain_body() -> None:
    assert usage_reader.from_body(orjson.dumps(ANSWER)) == Usage(13, 7, 3, 2)
    assert usage_reader.from_body(b'{"type":"message","content":[]}') is None


def test_usage_is_read_from_a_streams_head_and_tail() -> None:
    head, tail = STREAM[:600], STREAM[-400:]
    assert usage_reader.from_stream(head, tail) == Usage(
        11, 7, cached_input_tokens=3, cache_write_tokens=0
    )
    # a stream cut before message_delta still reports its input
    cut = STREAM[:700]
    assert usage_reader.from_stream(cut, cut) == Usage(
        11, 1, cached_input_tokens=3, cache_write_tokens=0
    )


def test_a_stream_is_complete_only_with_message_stop() -> None:
    assert usage_reader.stream_complete(STREAM[-300:])
    assert not usage_reader.stream_complete(STREAM[: STREAM.index(b"event: message_stop")][-300:])
    text = sse(
        "content_block_delta",
        {"index": 0, "delta": {"type": "text_delta", "text": "event: message_stop"}},
    )
    assert not usage_reader.stream_complete(b"x" + text)
