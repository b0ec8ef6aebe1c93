"""Bedrock Converse: golden tables (canonical → Converse request, Converse answer →
canonical), ConverseStream event-stream decoding in any chunking, corrupt and exception
frames, pass-through usage, the target's URLs and SigV4 signature, and the mock's own
signature check.

Fixture shapes follow the Amazon Bedrock API Reference (Converse, ConverseStream,
ContentBlock, TokenUsage) and the AWS event-stream encoding; see
``trustgate_testkit.proxy.mock_bedrock``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from binascii import crc32
from datetime import UTC, datetime
from typing import Any
from unittest.mock import patch
from urllib.parse import quote, urlsplit

import aiohttp
import orjson
import pytest
import yarl
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.ids import uuid7
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers import BUILDERS
from trustgate_proxy.adapters.providers.bedrock import BedrockTarget
from trustgate_proxy.domain.formats import OUTBOUND, USAGE, UpstreamStreamError
from trustgate_proxy.domain.formats.bedrock import model_family
from trustgate_proxy.domain.formats.model import (
    ChatRequest,
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
from trustgate_testkit.proxy.format_checks import chunks_of, decode_chunks, feed_bytewise
from trustgate_testkit.proxy.mock_bedrock import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    SESSION_TOKEN,
    SIGNATURE_MISMATCH,
    corrupt,
    encode_frame,
    event_frame,
    exception_frame,
    serve_bedrock,
)

CODEC = OUTBOUND["bedrock"]
READER = USAGE["bedrock"]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
WEATHER = Tool("get_weather", "Weather of a city", {"type": "object", "properties": {}})
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def user(*parts: Any) -> Message:
    return Message("user", list(parts))


def assistant(*parts: Any) -> Message:
    return Message("assistant", list(parts))


# -- canonical → Converse -----------------------------------------------------------------

REQUEST_GOLDENS: list[tuple[str, ChatRequest, dict[str, Any], list[str]]] = [
    (
        "system, sampling and stop sequences",
        ChatRequest(
            model="anthropic.claude-3-5-sonnet-20240620-v1:0",
            system=["Be brief.", "Answer in French."],
            messages=[user(Text("Hi"))],
            max_tokens=100,
            temperature=0.2,
            top_p=0.9,
            stop=["END"],
        ),
        {
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "system": [{"text": "Be brief."}, {"text": "Answer in French."}],
            "inferenceConfig": {
                "maxTokens": 100,
                "temperature": 0.2,
                "topP": 0.9,
                "stopSequences": ["END"],
            },
        },
        [],
    ),
    (
        "tool round trip: results in separate turns merge into one user turn",
        ChatRequest(
            model="us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            messages=[
                user(Text("Weather in Paris and Rome?"), Image(data=PNG, media_type="image/png")),
                assistant(
                    Text("Let me check."),
                    ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
                    ToolCall("call_2", "get_weather", ""),
                ),
                user(ToolResult("call_1", [Text("sunny")])),
                user(ToolResult("call_2", [Text("no such city")], is_error=True)),
            ],
            tools=[WEATHER],
            tool_choice=ToolChoice("required"),
        ),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"text": "Weather in Paris and Rome?"},
                        {"image": {"format": "png", "source": {"bytes": PNG}}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"text": "Let me check."},
                        {
                            "toolUse": {
                                "toolUseId": "call_1",
                                "name": "get_weather",
                                "input": {"city": "Paris"},
                            }
                        },
                        {"toolUse": {"toolUseId": "call_2", "name": "get_weather", "input": {}}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}},
                        {
                            "toolResult": {
                                "toolUseId": "call_2",
                                "content": [{"text": "no such city"}],
                                "status": "error",
                            }
                        },
                    ],
                },
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Weather of a city",
                            "inputSchema": {"json": {"type": "object", "properties": {}}},
                        }
                    }
                ],
                "toolChoice": {"any": {}},
            },
        },
        [],
    ),
    (
        "a named tool choice; a data: URL image is inlined",
        ChatRequest(
            model="mistral.mistral-large-2407-v1:0",
            messages=[user(Image(url=f"data:image/jpeg;base64,{PNG}"), Text("What is it?"))],
            tools=[WEATHER],
            tool_choice=ToolChoice("tool", "get_weather"),
        ),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"image": {"format": "jpeg", "source": {"bytes": PNG}}},
                        {"text": "What is it?"},
                    ],
                }
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Weather of a city",
                            "inputSchema": {"json": {"type": "object", "properties": {}}},
                        }
                    }
                ],
                "toolChoice": {"tool": {"name": "get_weather"}},
            },
        },
        [],
    ),
    (
        "tool_choice none without tool history: the tools are left out",
        ChatRequest(
            model="amazon.nova-pro-v1:0",
            messages=[user(Text("Hi"))],
            tools=[WEATHER],
            tool_choice=ToolChoice("none"),
        ),
        {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
        ["tool_choice"],
    ),
    (
        "tool_choice none with tool history: the tools stay (Converse needs them), no choice",
        ChatRequest(
            model="amazon.nova-pro-v1:0",
            messages=[
                user(Text("Hi")),
                assistant(ToolCall("c1", "get_weather", '{"city":"Oslo"}')),
                user(ToolResult("c1", [Text("cold")])),
            ],
            tools=[WEATHER],
            tool_choice=ToolChoice("none"),
        ),
        {
            "messages": [
                {"role": "user", "content": [{"text": "Hi"}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "toolUse": {
                                "toolUseId": "c1",
                                "name": "get_weather",
                                "input": {"city": "Oslo"},
                            }
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "cold"}]}}],
                },
            ],
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Weather of a city",
                            "inputSchema": {"json": {"type": "object", "properties": {}}},
                        }
                    }
                ]
            },
        },
        ["tool_choice"],
    ),
    (
        "tool history without declared tools gets minimal tool specs",
        ChatRequest(
            model="cohere.command-r-plus-v1:0",
            messages=[
                user(Text("Hi")),
                assistant(ToolCall("c1", "lookup", "{}")),
                user(ToolResult("c1", [Text("42")])),
            ],
        ),
        {
            "messages": [
                {"role": "user", "content": [{"text": "Hi"}]},
                {
                    "role": "assistant",
                    "content": [{"toolUse": {"toolUseId": "c1", "name": "lookup", "input": {}}}],
                },
                {
                    "role": "user",
                    "content": [{"toolResult": {"toolUseId": "c1", "content": [{"text": "42"}]}}],
                },
            ],
            "toolConfig": {
                "tools": [
                    {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}}
                ]
            },
        },
        [],
    ),
    (
        "Anthropic models: top_k and the thinking budget in additionalModelRequestFields",
        ChatRequest(
            model="us.anthropic.claude-3-7-sonnet-20250219-v1:0",
            messages=[user(Text("Think"))],
            max_tokens=4096,
            top_k=40,
            reasoning=Reasoning(budget_tokens=2048),
        ),
        {
            "messages": [{"role": "user", "content": [{"text": "Think"}]}],
            "inferenceConfig": {"maxTokens": 4096},
            "additionalModelRequestFields": {
                "top_k": 40,
                "thinking": {"type": "enabled", "budget_tokens": 2048},
            },
        },
        [],
    ),
    (
        "an effort becomes a budget for Anthropic models",
        ChatRequest(
            model="anthropic.claude-sonnet-4-20250514-v1:0",
            messages=[user(Text("Think"))],
            reasoning=Reasoning(effort="medium"),
        ),
        {
            "messages": [{"role": "user", "content": [{"text": "Think"}]}],
            "additionalModelRequestFields": {
                "thinking": {"type": "enabled", "budget_tokens": 8192}
            },
        },
        [],
    ),
    (
        "Nova: top_k as inferenceConfig.topK; reasoning dropped",
        ChatRequest(
            model="amazon.nova-lite-v1:0",
            messages=[user(Text("Hi"))],
            top_k=5,
            reasoning=Reasoning(effort="high"),
        ),
        {
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "additionalModelRequestFields": {"inferenceConfig": {"topK": 5}},
        },
        ["reasoning"],
    ),
    (
        "other families: top_k dropped",
        ChatRequest(model="meta.llama3-70b-instruct-v1:0", messages=[user(Text("Hi"))], top_k=5),
        {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]},
        ["top_k"],
    ),
    (
        "thinking in the history: signed and redacted kept, unsigned dropped",
        ChatRequest(
            model="anthropic.claude-3-7-sonnet-20250219-v1:0",
            messages=[
                user(Text("Q")),
                assistant(
                    Thinking("hmm", signature="sig-1"),
                    Thinking(redacted=True, data="b3BhcXVl"),
                    Thinking("from another provider"),
                    Text("A"),
                ),
                user(Text("Q2")),
            ],
        ),
        {
            "messages": [
                {"role": "user", "content": [{"text": "Q"}]},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "reasoningContent": {
                                "reasoningText": {"text": "hmm", "signature": "sig-1"}
                            }
                        },
                        {"reasoningContent": {"redactedContent": "b3BhcXVl"}},
                        {"text": "A"},
                    ],
                },
                {"role": "user", "content": [{"text": "Q2"}]},
            ],
        },
        ["thinking (unsigned)"],
    ),
    (
        "fields Converse has no place for are dropped and named; metadata → requestMetadata",
        ChatRequest(
            model="anthropic.claude-3-haiku-20240307-v1:0",
            messages=[user(Text(""), Image(data=PNG, media_type="image/png", detail="high"))],
            tools=[Tool("t", None, {"type": "object"}, strict=True)],
            seed=7,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            parallel_tool_calls=False,
            user="u-1",
            response_format=ResponseFormat("json_object"),
            metadata={"team": "a", "n": 1},
        ),
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"image": {"format": "png", "source": {"bytes": PNG}}}],
                }
            ],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "t", "inputSchema": {"json": {"type": "object"}}}}]
            },
            "requestMetadata": {"team": "a"},
        },
        [
            "image.detail",
            "tools.strict",
            "metadata (non-string values)",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "parallel_tool_calls",
            "user",
            "response_format",
        ],
    ),
]


@pytest.mark.parametrize(
    ("request_", "expected", "dropped"),
    [g[1:] for g in REQUEST_GOLDENS],
    ids=[g[0] for g in REQUEST_GOLDENS],
)
def test_canonical_request_becomes_the_converse_body(
    request_: ChatRequest, expected: dict[str, Any], dropped: list[str]
) -> None:
    assert CODEC.encode_request(request_) == expected
    assert request_.dropped == dropped
    assert "model" not in expected  # the model id goes in the URL


@pytest.mark.parametrize(
    ("part", "why"),
    [
        (Image(url="https://example.com/cat.png"), "not URLs"),
        (Image(data=PNG, media_type="image/bmp"), "png, jpeg, gif or webp"),
        (Image(url="data:image/png,rawbytes"), "base64"),
    ],
)
def test_images_bedrock_cannot_take_are_refused_with_a_reason(part: Image, why: str) -> None:
    with pytest.raises(Untranslatable, match=why):
        CODEC.encode_request(ChatRequest(model="m", messages=[user(part)]))


@pytest.mark.parametrize("arguments", ['{"city":', "[1, 2]"])
def test_tool_call_arguments_that_are_not_a_json_object_are_refused(arguments: str) -> None:
    request = ChatRequest(
        model="m",
        messages=[user(Text("Hi")), assistant(ToolCall("c1", "get_weather", arguments))],
    )
    with pytest.raises(Untranslatable, match="c1"):
        CODEC.encode_request(request)


def test_model_family_reads_plain_ids_inference_profiles_and_arns() -> None:
    assert model_family("anthropic.claude-3-5-sonnet-20240620-v1:0") == "anthropic"
    assert model_family("us.anthropic.claude-3-7-sonnet-20250219-v1:0") == "anthropic"
    assert model_family("apac.amazon.nova-pro-v1:0") == "amazon"
    assert (
        model_family("arn:aws:bedrock:us-east-1:1:inference-profile/eu.meta.llama3-2-1b-v1:0")
        == "meta"
    )
    assert model_family("my-alias") == ""


# -- Converse answer → canonical ----------------------------------------------------------

USAGE_DOC = {
    "inputTokens": 8,
    "outputTokens": 7,
    "totalTokens": 18,
    "cacheReadInputTokens": 3,
    "cacheWriteInputTokens": 0,
}
NORMALISED = Usage(input_tokens=11, output_tokens=7, cached_input_tokens=3, cache_write_tokens=0)


def test_converse_answer_becomes_canonical_parts_finish_and_usage() -> None:
    doc = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s1"}}},
                    {"reasoningContent": {"redactedContent": "b3BhcXVl"}},
                    {"text": "Checking."},
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "get_weather",
                            "input": {"city": "Paris"},
                        }
                    },
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": USAGE_DOC,
        "metrics": {"latencyMs": 42},
    }
    response = CODEC.decode_response(doc)
    assert response.parts == [
        Thinking("hmm", signature="s1"),
        Thinking(redacted=True, data="b3BhcXVl"),
        Text("Checking."),
        ToolCall("tooluse_1", "get_weather", '{"city":"Paris"}'),
    ]
    assert response.finish == "tool_calls"
    assert response.usage == NORMALISED
    assert response.usage.as_event() == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cached_input_tokens": 3,
        "cache_write_tokens": 0,
    }
    assert response.id.startswith("bedrock-")


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("model_context_window_exceeded", "length"),
    ],
)
def test_stop_reasons_map_to_canonical_finish_reasons(stop: str, finish: str) -> None:
    doc = {"output": {"message": {"role": "assistant", "content": []}}, "stopReason": stop}
    assert CODEC.decode_response(doc).finish == finish


def test_error_message_is_read_from_the_aws_error_body() -> None:
    assert CODEC.error_message(429, b'{"message":"Too many requests"}') == "Too many requests"
    assert CODEC.error_message(500, b"<html>") == "Bedrock answered 500"


# -- ConverseStream -----------------------------------------------------------------------


def _text_stream(stop: str = "end_turn") -> bytes:
    return b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " from"}}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": " b"}}),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame("messageStop", {"stopReason": stop}),
            event_frame("metadata", {"usage": USAGE_DOC, "metrics": {"latencyMs": 5}}),
        ]
    )


TEXT_EVENTS: list[StreamEvent] = [
    StreamStart(),
    TextDelta(0, "Hello"),
    TextDelta(0, " from"),
    TextDelta(0, " b"),
    Finish("stop"),
    UsageUpdate(NORMALISED),
    StreamEnd(),
]


def _decode(data: bytes, step: int) -> list[StreamEvent]:
    return decode_chunks(CODEC.stream_decoder(), chunks_of(data, step))


@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_stream_decodes_the_same_in_any_chunking(step: int) -> None:
    assert _decode(_text_stream(), step) == TEXT_EVENTS


def test_stream_of_a_tool_call_and_thinking_keeps_blocks_apart() -> None:
    data = b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}},
            ),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s1"}}},
            ),
            event_frame("contentBlockStop", {"contentBlockIndex": 0}),
            event_frame(
                "contentBlockStart",
                {
                    "contentBlockIndex": 1,
                    "start": {"toolUse": {"toolUseId": "tu_1", "name": "get_weather"}},
                },
            ),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"city":'}}},
            ),
            event_frame(
                "contentBlockDelta",
                {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"Paris"}'}}},
            ),
            event_frame("contentBlockStop", {"contentBlockIndex": 1}),
            event_frame("messageStop", {"stopReason": "tool_use"}),
            event_frame("metadata", {"usage": USAGE_DOC}),
        ]
    )
    assert _decode(data, 1) == [
        StreamStart(),
        ThinkingDelta(0, "hmm"),
        ThinkingDelta(0, "", "s1"),
        ToolCallStart(1, "tu_1", "get_weather"),
        ToolArgsDelta(1, '{"city":'),
        ToolArgsDelta(1, '"Paris"}'),
        Finish("tool_calls"),
        UsageUpdate(NORMALISED),
        StreamEnd(),
    ]


def test_a_stream_cut_before_its_metadata_has_no_end() -> None:
    data = _text_stream()
    cut = data[: data.index(b"messageStop") - 40]
    events = _decode(cut, 5)
    assert StreamEnd() not in events
    assert events[:2] == TEXT_EVENTS[:2]


@pytest.mark.parametrize("where", ["message", "prelude"])
def test_a_frame_with_a_bad_crc_is_an_upstream_stream_error(where: str) -> None:
    good = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
    if where == "message":
        bad = corrupt(good)
    else:
        bad = good[:8] + bytes(b ^ 0xFF for b in good[8:12]) + good[12:]
    decoder = CODEC.stream_decoder()
    head = event_frame("messageStart", {"role": "assistant"})
    assert decoder.feed(head) == [StreamStart()]
    with pytest.raises(UpstreamStreamError) as caught:
        feed_bytewise(decoder, bad)
    assert caught.value.message == "corrupt event-stream frame"
    with pytest.raises(UpstreamStreamError):  # stays broken
        decoder.feed(_text_stream())


def test_a_frame_botocore_cannot_parse_is_an_upstream_stream_error() -> None:
    raw = b"\x03:xy" + b"\x2a" + b"junk"  # header value type 42 does not exist
    prelude = struct.pack(">II", 12 + len(raw) + 4, len(raw))
    message = prelude + struct.pack(">I", crc32(prelude)) + raw
    frame = message + struct.pack(">I", crc32(message))  # CRCs valid, headers not
    with pytest.raises(UpstreamStreamError, match="corrupt event-stream frame"):
        CODEC.stream_decoder().feed(frame)


def test_an_exception_frame_is_an_upstream_stream_error_with_its_message() -> None:
    data = event_frame("messageStart", {"role": "assistant"}) + exception_frame(
        "throttlingException", "Too many tokens, please wait before trying again."
    )
    decoder = CODEC.stream_decoder()
    assert decoder.feed(data) == [StreamStart()]  # the events before it come first
    with pytest.raises(UpstreamStreamError) as caught:
        decoder.close()
    assert caught.value.message == (
        "throttlingException: Too many tokens, please wait before trying again."
    )


def test_events_before_a_corrupt_frame_in_one_chunk_come_first_then_the_error() -> None:
    first = event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    bad = corrupt(
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}})
    )
    decoder = CODEC.stream_decoder()
    assert decoder.feed(first + bad) == [TextDelta(0, "Hi")]
    with pytest.raises(UpstreamStreamError, match="corrupt event-stream frame"):
        decoder.feed(_text_stream())
    with pytest.raises(UpstreamStreamError, match="corrupt event-stream frame"):
        decoder.close()


def test_an_error_frame_is_an_upstream_stream_error() -> None:
    frame = encode_frame(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"},
        b"",
    )
    with pytest.raises(UpstreamStreamError, match="InternalFailure: boom"):
        CODEC.stream_decoder().feed(frame)


def test_the_frame_encoder_round_trips_through_botocores_decoder() -> None:
    frame = encode_frame({":event-type": "metadata", "x": "ü"}, b'{"a":1}')
    buffer = EventStreamBuffer()
    buffer.add_data(frame + frame)
    messages = list(buffer)
    assert len(messages) == 2
    assert messages[0].headers == {":event-type": "metadata", "x": "ü"}
    assert messages[0].payload == b'{"a":1}'


# -- pass-through usage -------------------------------------------------------------------


def test_usage_reader_reads_a_body_and_a_streams_tail() -> None:
    body = orjson.dumps({"output": {}, "stopReason": "end_turn", "usage": USAGE_DOC})
    assert READER.from_body(body) == NORMALISED
    stream = _text_stream()
    assert READER.from_stream(stream[:100], stream[-300:]) == NORMALISED
    assert READER.stream_complete(stream[-300:])
    cut = stream[: stream.index(b"messageStop") - 40]
    assert not READER.stream_complete(cut[-300:])
    assert READER.from_stream(cut[:100], cut[-300:]) is None
    assert not READER.stream_complete(corrupt(stream)[-300:])


# -- the target -----------------------------------------------------------------------------


def _registry(options: dict[str, Any] | None = None) -> Registry:
    return Registry(
        id=uuid7(),
        gateway_id=uuid7(),
        created_at=NOW,
        updated_at=NOW,
        name="bedrock",
        provider="bedrock",
        provider_options=options or {},
    )


AUTH = {
    "type": "aws",
    "aws": {
        "region": "eu-west-3",
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
    },
}


def test_target_urls_put_the_model_id_in_the_path_as_clients_send_it() -> None:
    target = BUILDERS["bedrock"](_registry(), AUTH)
    assert target.wire == "bedrock" and target.needs_authorize
    url = target.generate_url("us.anthropic.claude-3-7-sonnet-20250219-v1:0", stream=False)
    assert url == (
        "https://bedrock-runtime.eu-west-3.amazonaws.com/model/"
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0/converse"
    )
    arn = "arn:aws:bedrock:eu-west-3:123456789012:application-inference-profile/abc123"
    url = target.generate_url(arn, stream=True)
    assert url.endswith(
        "/model/arn:aws:bedrock:eu-west-3:123456789012:application-inference-profile%2Fabc123/converse-stream"
    )
    assert str(yarl.URL(url)) == url  # aiohttp sends (and so signs) exactly this path
    assert target.embeddings_url("m") is None and target.models_url() is None
    local = BUILDERS["bedrock"](_registry({"base_url": "http://127.0.0.1:9/"}), AUTH)
    assert local.generate_url("m", False) == "http://127.0.0.1:9/model/m/converse"


@pytest.mark.parametrize(
    ("auth", "why"),
    [
        (None, "aws credentials"),
        ({"type": "api_key", "api_key": {"api_key": "k"}}, "auth type 'aws'"),
        ({"type": "aws", "aws": {"access_key_id": "A", "secret_access_key": "S3CR3T"}}, "region"),
        (
            {"type": "aws", "aws": {"region": "us-east-1", "use_role": True, "role": "arn:r"}},
            "use_role",
        ),
        (
            {"type": "aws", "aws": {"region": "us-east-1", "access_key_id": "A"}},
            "secret_access_key",
        ),
    ],
)
def test_unusable_credentials_are_a_provider_credential_error(
    auth: dict[str, Any] | None, why: str
) -> None:
    with pytest.raises(ProviderCredentialError, match=why) as caught:
        BUILDERS["bedrock"](_registry(), auth)
    assert "S3CR3T" not in str(caught.value)


def test_the_target_never_shows_its_secret() -> None:
    target = BUILDERS["bedrock"](_registry(), AUTH)
    assert SECRET_ACCESS_KEY not in repr(target)
    assert SECRET_ACCESS_KEY not in str(target.headers)


def _independent_sigv4(
    method: str, url: str, headers: dict[str, str], body: bytes, secret: str, region: str
) -> str:
    """SigV4 by the book (AWS "Create a signed AWS API request"), without botocore."""
    parts = urlsplit(url)
    names = sorted(h.lower() for h in headers)
    lower = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    path = "/".join(quote(seg, safe="-_.~") for seg in parts.path.split("/"))
    canonical = "\n".join(
        [
            method,
            path,
            parts.query,
            "".join(f"{n}:{lower[n]}\n" for n in names),
            ";".join(names),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    stamp = lower["x-amz-date"]
    scope = f"{stamp[:8]}/{region}/bedrock/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret}".encode()
    for msg in (stamp[:8], region, "bedrock", "aws4_request"):
        key = hmac.new(key, msg.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_sigv4_signature_matches_botocore_and_the_algorithm_by_the_book() -> None:
    frozen = datetime(2026, 3, 4, 5, 6, 7)
    target = BedrockTarget(
        "https://bedrock-runtime.us-east-1.amazonaws.com",
        "us-east-1",
        Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN),
    )
    url = target.generate_url("anthropic.claude-3-5-sonnet-20240620-v1:0", stream=True)
    body = b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}'
    with patch("botocore.auth.get_current_datetime", return_value=frozen):
        headers = target.sign("POST", url, body)
        reference = AWSRequest(
            method="POST", url=url, data=body, headers={"Content-Type": "application/json"}
        )
        SigV4Auth(
            Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN), "bedrock", "us-east-1"
        ).add_auth(reference)
    assert headers == dict(reference.headers.items())
    assert headers["X-Amz-Date"] == "20260304T050607Z"
    assert headers["X-Amz-Security-Token"] == SESSION_TOKEN
    signed = {
        "content-type": "application/json",
        "host": "bedrock-runtime.us-east-1.amazonaws.com",
        "x-amz-date": headers["X-Amz-Date"],
        "x-amz-security-token": SESSION_TOKEN,
    }
    expected = _independent_sigv4("POST", url, signed, body, SECRET_ACCESS_KEY, "us-east-1")
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20260304/us-east-1/bedrock/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
        f"Signature={expected}"
    )


# -- the mock's signature check -----------------------------------------------------------

BODY = orjson.dumps({"messages": [{"role": "user", "content": [{"text": "Hi"}]}]})


async def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.json(content_type=None)


async def test_mock_accepts_a_signed_request_and_rejects_a_tampered_body() -> None:
    async with serve_bedrock("bedrock") as mock:
        target = BUILDERS["bedrock"](_registry({"base_url": mock.url}), mock.auth())
        url = target.generate_url("anthropic.claude-3-haiku-20240307-v1:0", stream=False)
        headers = await target.authorize("POST", url, BODY)
        status, _, doc = await _post(url, headers, BODY)
        assert status == 200, doc
        assert doc["output"]["message"]["content"] == [{"text": "Hello from bedrock"}]
        tampered = BODY.replace(b"Hi", b"Ho")
        status, resp_headers, doc = await _post(url, headers, tampered)
        assert status == 403
        assert resp_headers["x-amzn-ErrorType"] == "InvalidSignatureException"
        assert doc == {"message": SIGNATURE_MISMATCH}
        assert len(mock.requests) == 1


async def test_mock_rejects_an_unknown_key_and_a_signature_for_another_path() -> None:
    async with serve_bedrock("bedrock") as mock:
        auth = mock.auth()
        auth["aws"]["access_key_id"] = "AKIAUNKNOWN000000000"
        stranger = BUILDERS["bedrock"](_registry({"base_url": mock.url}), auth)
        url = stranger.generate_url("m", stream=False)
        status, resp_headers, _doc = await _post(
            url, await stranger.authorize("POST", url, BODY), BODY
        )
        assert status == 403
        assert resp_headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
        target = BUILDERS["bedrock"](_registry({"base_url": mock.url}), mock.auth())
        headers = await target.authorize("POST", target.generate_url("other", False), BODY)
        status, resp_headers, _ = await _post(url, headers, BODY)
        assert status == 403
        assert resp_headers["x-amzn-ErrorType"] == "InvalidSignatureException"


async def test_mock_checks_the_session_token_and_decodes_with_the_codec() -> None:
    async with serve_bedrock("bedrock", session_token=SESSION_TOKEN) as mock:
        target = BUILDERS["bedrock"](_registry({"base_url": mock.url}), mock.auth())
        url = target.generate_url("us.anthropic.claude-3-7-sonnet-20250219-v1:0-tools", stream=True)
        headers = await target.authorize("POST", url, BODY)
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=BODY, headers=headers) as resp,
        ):
            assert resp.status == 200
            assert resp.content_type == "application/vnd.amazon.eventstream"
            decoder = CODEC.stream_decoder()
            events: list[StreamEvent] = []
            async for chunk in resp.content.iter_any():
                events.extend(decoder.feed(chunk))
        assert events[1] == ToolCallStart(0, "tooluse_mock0001", "get_weather")
        args = "".join(e.delta for e in events if isinstance(e, ToolArgsDelta))
        assert orjson.loads(args) == {"city": "Paris"}
        assert events[-3:] == [Finish("tool_calls"), UsageUpdate(NORMALISED), StreamEnd()]
        no_token = mock.auth()
        del no_token["aws"]["session_token"]
        bare = BUILDERS["bedrock"](_registry({"base_url": mock.url}), no_token)
        status, resp_headers, _ = await _post(url, await bare.authorize("POST", url, BODY), BODY)
        assert status == 403
        assert resp_headers["x-amzn-ErrorType"] == "UnrecognizedClientException"
