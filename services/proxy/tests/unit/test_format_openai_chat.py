"""Golden tables for OpenAI Chat Completions: client doc → internal model, internal model →
provider doc, provider answer → internal model → client answer, and streams both ways
(byte by byte too).

Fixtures' provenance: the documents follow OpenAI's Chat Completions API reference (request
fields, ``chat.completion`` and ``chat.completion.chunk`` objects, tool-call deltas, the
usage-only chunk of ``stream_options.include_usage``) and the ``openai`` SDK's types, which
also parse every encoder output below.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from trustgate_core.errors import InvalidRequest
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, USAGE
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
from trustgate_proxy.domain.formats.openai_chat import ChatStreamEncoder
from trustgate_testkit.proxy.format_checks import (
    chunks_of,
    decode_chunks,
    encode_events,
    sse_frames,
)

IN = INBOUND["openai_chat"]
OUT = OUTBOUND["openai_chat"]
USAGE_READER = USAGE["openai_chat"]

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}

CLIENT_DOC: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
        {
            "role": "user",
            "name": "ann",
            "content": [
                {"type": "text", "text": "What is this, and the weather in Paris?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/a.png", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather by city",
                "parameters": WEATHER,
                "strict": True,
            },
        },
        {"type": "custom", "custom": {"name": "grammar"}},
    ],
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "parallel_tool_calls": False,
    "max_completion_tokens": 300,
    "max_tokens": 100,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": "END",
    "seed": 7,
    "presence_penalty": 0.1,
    "frequency_penalty": 0.3,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": WEATHER, "strict": True},
    },
    "reasoning_effort": "low",
    "user": "u-1",
    "metadata": {"team": "a"},
    "stream": True,
    "stream_options": {"include_usage": True},
    "n": 1,
    "logprobs": True,
    "logit_bias": {"50256": -100},
    "service_tier": "auto",
}

CANONICAL = ChatRequest(
    model="gpt-4o-mini",
    system=["Be brief.", "Answer in English."],
    messages=[
        Message(
            "user",
            [
                Text("What is this, and the weather in Paris?"),
                Image(url="https://x.test/a.png", detail="low"),
                Image(data="iVBO", media_type="image/png"),
            ],
        ),
        Message(
            "assistant",
            [
                ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_2", "get_time", "{}"),
            ],
        ),
        Message(
            "user",
            [
                ToolResult("call_1", [Text("18C")], name="get_weather"),
                ToolResult("call_2", [Text("noon")], name="get_time"),
            ],
        ),
        Message("user", [Text("Thanks")]),
    ],
    tools=[Tool("get_weather", "Weather by city", WEATHER, True)],
    tool_choice=ToolChoice("tool", "get_weather"),
    parallel_tool_calls=False,
    max_tokens=300,
    temperature=0.2,
    top_p=0.9,
    stop=["END"],
    seed=7,
    presence_penalty=0.1,
    frequency_penalty=0.3,
    response_format=ResponseFormat("json_schema", WEATHER, "weather", True),
    reasoning=Reasoning(effort="low"),
    user="u-1",
    metadata={"team": "a"},
    stream=True,
    dropped=[
        "messages[].name",
        "messages[].content[].input_audio",
        "tools[].custom",
        "logprobs",
        "logit_bias",
        "service_tier",
    ],
)


def test_a_client_request_decodes_into_the_internal_model_with_its_drops_named() -> None:
    assert IN.decode_request(CLIENT_DOC) == CANONICAL


def test_several_answers_cannot_be_translated() -> None:
    with pytest.raises(Untranslatable, match="'n'"):
        IN.decode_request({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2})


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, "unknown role"),
        ({"model": "m", "messages": [{"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"model": "m", "messages": [{"role": "user", "content": 3}]}, "content"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": 3}, "stop"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "any"},
            "tool_choice",
        ),
    ],
)
def test_malformed_requests_are_invalid_with_a_reason(doc: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidRequest, match=reason):
        IN.decode_request(doc)


def test_the_internal_model_encodes_into_a_provider_request() -> None:
    request = ChatRequest(
        model="gpt-4o",
        system=["Be brief."],
        messages=[
            Message("user", [Text("Hi"), Image(data="iVBO", media_type="image/png")]),
            Message(
                "assistant",
                [
                    Thinking("hmm", signature="sig"),
                    Text("Let me look."),
                    ToolCall("t1", "get_weather", '{"city":"Paris"}'),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult(
                        "t1", [Text("18C"), Image(url="https://x.test/c.png")], is_error=True
                    ),
                    Text("And tomorrow?"),
                ],
            ),
        ],
        tools=[Tool("get_weather", None, WEATHER)],
        tool_choice=ToolChoice("required"),
        parallel_tool_calls=True,
        max_tokens=64,
        temperature=0.5,
        top_k=40,
        stop=["\n\n"],
        response_format=ResponseFormat("json_object"),
        reasoning=Reasoning(budget_tokens=4000),
        metadata={"user_id": "u"},
        stream=True,
    )
    assert OUT.encode_request(request) == {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Let me look.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "18C"},
            {"role": "user", "content": "And tomorrow?"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}}],
        "tool_choice": "required",
        "parallel_tool_calls": True,
        "max_completion_tokens": 64,
        "reasoning_effort": "medium",
        "temperature": 0.5,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "metadata": {"user_id": "u"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert request.dropped == [
        "assistant.thinking",
        "tool_result.image",
        "tool_result.is_error",
        "top_k",
    ]


def test_a_plain_token_limit_goes_out_as_max_tokens_and_schemas_keep_their_name() -> None:
    request = ChatRequest(
        model="m",
        messages=[Message("user", [Text("x")])],
        max_tokens=10,
        response_format=ResponseFormat("json_schema", WEATHER, None, False),
        tool_choice=ToolChoice("tool", "f"),
    )
    doc = OUT.encode_request(request)
    assert doc["max_tokens"] == 10 and "max_completion_tokens" not in doc
    assert doc["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": WEATHER, "strict": False},
    }
    assert doc["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert doc["messages"] == [{"role": "user", "content": "x"}] and "stream" not in doc


PROVIDER_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Checking.",
                "reasoning_content": "The user wants weather.",
                "tool_calls": [
                    {
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            "logprobs": None,
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "prompt_tokens_details": {"cached_tokens": 3},
        "completion_tokens_details": {"reasoning_tokens": 2},
    },
}
CANONICAL_ANSWER = ChatResponse(
    id="chatcmpl-1",
    model="gpt-4o-2024-08-06",
    parts=[
        Thinking("The user wants weather."),
        Text("Checking."),
        ToolCall("call_9", "get_weather", '{"city":"Paris"}'),
    ],
    finish="tool_calls",
    usage=Usage(11, 7, cached_input_tokens=3, reasoning_tokens=2),
    created=1_700_000_000,
)


def test_a_provider_answer_decodes_into_the_internal_model() -> None:
    assert OUT.decode_response(PROVIDER_ANSWER) == CANONICAL_ANSWER


def test_the_internal_answer_encodes_into_a_chat_completion_the_sdk_parses() -> None:
    doc = IN.encode_response(CANONICAL_ANSWER)
    assert doc == {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking.",
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": PROVIDER_ANSWER["usage"],
    }
    ChatCompletion.model_validate(doc)


def _chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    doc = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


PROVIDER_STREAM = b"".join(
    [
        b": keep-alive\n\n",
        _chunk({"role": "assistant", "content": ""}),
        _chunk({"reasoning_content": "think"}),
        _chunk({"content": "Hel"}),
        _chunk({"content": "lo"}),
        _chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    }
                ]
            }
        ),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "t2"}}]}),
        _chunk({}, "tool_calls"),
        b"data: "
        + orjson.dumps(
            {
                "id": "chatcmpl-s",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "gpt-4o",
                "choices": [],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
        )
        + b"\r\n\r\n",
        b"data: [DONE]\n\n",
    ]
)
STREAM_EVENTS: list[StreamEvent] = [
    StreamStart("chatcmpl-s", "gpt-4o"),
    ThinkingDelta(0, "think"),
    TextDelta(1, "Hel"),
    TextDelta(1, "lo"),
    ToolCallStart(2, "call_1", "get_weather"),
    ToolArgsDelta(2, '{"city":'),
    ToolArgsDelta(2, '"Paris"}'),
    ToolCallStart(3, "call_2", "t2"),
    Finish("tool_calls"),
    UsageUpdate(Usage(11, 7)),
    StreamEnd(),
]


@pytest.mark.parametrize("size", [1, 7, 64, len(PROVIDER_STREAM)])
def test_a_provider_stream_decodes_in_any_chunking(size: int) -> None:
    events = decode_chunks(OUT.stream_decoder(), chunks_of(PROVIDER_STREAM, size))
    assert events == STREAM_EVENTS


def test_a_stream_without_done_has_no_end_and_an_error_event_raises() -> None:
    decoder = OUT.stream_decoder()
    events = decoder.feed(_chunk({"content": "Hi"}))
    assert StreamEnd() not in events + decoder.close()
    with pytest.raises(UpstreamStreamError, match="overloaded"):
        OUT.stream_decoder().feed(b'data: {"error":{"message":"overloaded"}}\n\n')
    with pytest.raises(UpstreamStreamError):
        OUT.stream_decoder().feed(b"data: {not json\n\n")


def _frames(raw: bytes) -> list[Any]:
    return sse_frames(raw, named=False)


def test_stream_events_encode_into_chunks_the_sdk_parses() -> None:
    raw = encode_events(ChatStreamEncoder("gpt-4o-mini", include_usage=True), STREAM_EVENTS)
    frames = _frames(raw)
    assert frames[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(f) for f in frames[:-1]]
    assert {c.id for c in chunks} == {"chatcmpl-s"} and {c.model for c in chunks} == {"gpt-4o-mini"}
    deltas = [c.choices[0].delta.model_dump(exclude_none=True) for c in chunks if c.choices]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Hel"},
        {"content": "lo"},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "t2", "arguments": ""},
                }
            ]
        },
        {},
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 18


def test_the_usage_chunk_is_sent_only_when_asked_and_the_error_event_is_the_references() -> None:
    encoder = IN.stream_encoder("m")
    raw = encoder.feed(TextDelta(0, "x")) + encoder.finish()
    frames = _frames(raw)
    assert frames[-1] == "[DONE]" and all(f == "[DONE]" or f["choices"] for f in frames)
    assert frames[-2]["choices"][0]["finish_reason"] == "stop"
    assert encoder.error("upstream stream terminated unexpectedly") == (
        b'data: {"error":{"message":"upstream stream terminated unexpectedly",'
        b'"type":"upstream_error"}}\n\n'
    )


def test_errors_translate_both_ways() -> None:
    body = (
        b'{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}'
    )
    assert OUT.error_message(429, body) == "Rate limit reached"
    assert OUT.error_message(502, b"Bad gateway") == "Bad gateway"
    assert IN.error_body(429, "slow down") == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}
    }
    assert IN.error_body(503, "x")["error"]["type"] == "api_error"


def test_pass_through_usage_and_clean_ends_are_read_from_the_bytes() -> None:
    assert USAGE_READER.from_body(orjson.dumps(PROVIDER_ANSWER)) == Usage(
        11, 7, cached_input_tokens=3, reasoning_tokens=2
    )
    assert USAGE_READER.from_stream(b"", PROVIDER_STREAM[-300:]) == Usage(11, 7)
    assert USAGE_READER.stream_complete(PROVIDER_STREAM[-100:])
    assert not USAGE_READER.stream_complete(_chunk({"content": "x"}))


def test_an_error_finish_which_chat_lacks_is_sent_as_stop() -> None:
    answer = ChatResponse(id="x", model="m", parts=[Text("a")], finish="error")
    assert IN.encode_response(answer)["choices"][0]["finish_reason"] == "stop"
    encoder = IN.stream_encoder("m")
    raw = encoder.feed(TextDelta(0, "a")) + encoder.feed(Finish("error")) + encoder.finish()
    assert _frames(raw)[-2]["choices"][0]["finish_reason"] == "stop"
