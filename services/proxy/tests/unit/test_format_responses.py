"""Golden tables for OpenAI's Responses API ↔ the internal model, both directions, for
requests, answers and streams; plus the openai target's choice of API.

Fixtures' provenance: the request and answer documents follow OpenAI's API reference for
``POST /v1/responses`` and the ``openai`` SDK's types (``openai/types/responses/``); the
streams are those of ``trustgate_testkit.proxy.mock_responses`` (the API's event order) and
the encoder's output is checked with the SDK's own event classes and stream accumulator.
"""

from __future__ import annotations

import random
import typing
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import orjson
import pytest
from openai import AsyncOpenAI
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import ResponseStreamEvent

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.ids import uuid7
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers.openai import (
    ChatOrResponsesTarget,
    ResponsesTarget,
    build_openai_target,
)
from trustgate_proxy.domain.formats import INBOUND, OUTBOUND, USAGE, UpstreamStreamError
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
    sse_frames,
    transcode,
)
from trustgate_testkit.proxy.sdk_clients import tracked

INBOUND_CODEC = INBOUND["openai_responses"]
OUTBOUND_CODEC = OUTBOUND["openai_responses"]
USAGE_READER = USAGE["openai_responses"]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# -- requests: Responses -> model --------------------------------------------------------------

CLIENT_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "instructions": "You are terse.",
    "input": [
        {"role": "developer", "content": "Answer in English."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this, and the weather?"},
                {"type": "input_image", "image_url": "https://x.test/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Need the weather."}],
            "encrypted_content": "gAAAA-opaque",
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "A cat. Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"role": "user", "content": "Thanks"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": WEATHER,
            "strict": True,
        }
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": False,
    "max_output_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "text": {
        "format": {"type": "json_schema", "name": "answer", "schema": WEATHER, "strict": True},
        "verbosity": "low",
    },
    "reasoning": {"effort": "low", "summary": "auto"},
    "user": "u-1",
    "metadata": {"trace": "t1"},
    "stream": True,
    "store": False,
    "include": ["reasoning.encrypted_content"],
    "truncation": "auto",
    "background": False,
    "service_tier": "auto",
}

CANONICAL = ChatRequest(
    model="gpt-4o-mini",
    system=["You are terse.", "Answer in English."],
    messages=[
        Message(
            "user",
            [
                Text("What is this, and the weather?"),
                Image(url="https://x.test/cat.png", detail="low"),
                Image(data="iVBORw0K", media_type="image/png"),
            ],
        ),
        Message(
            "assistant",
            [
                Thinking("Need the weather.", data="gAAAA-opaque", id="rs_1"),
                Text("A cat. Checking."),
                ToolCall("call_1", "get_weather", '{"city":"Paris"}'),
            ],
        ),
        Message(
            "user",
            [ToolResult("call_1", [Text("sunny")], name="get_weather"), Text("Thanks")],
        ),
    ],
    tools=[Tool("get_weather", "Weather by city", WEATHER, strict=True)],
    tool_choice=ToolChoice("tool", "get_weather"),
    parallel_tool_calls=False,
    max_tokens=256,
    temperature=0.2,
    top_p=0.9,
    response_format=ResponseFormat("json_schema", schema=WEATHER, name="answer", strict=True),
    reasoning=Reasoning(effort="low"),
    user="u-1",
    metadata={"trace": "t1"},
    stream=True,
    dropped=[
        "text.verbosity",
        "reasoning.summary",
        "store",
        "include",
        "truncation",
        "background",
        "service_tier",
    ],
)


def test_a_responses_request_decodes_to_the_model_and_lists_what_it_drops() -> None:
    assert INBOUND_CODEC.decode_request(orjson.loads(orjson.dumps(CLIENT_REQUEST))) == CANONICAL


def test_a_string_input_is_one_user_message() -> None:
    request = INBOUND_CODEC.decode_request({"model": "m", "input": "Hi"})
    assert request == ChatRequest(model="m", messages=[Message("user", [Text("Hi")])])


@pytest.mark.parametrize(
    ("choice", "expected", "dropped"),
    [
        ("auto", ToolChoice("auto"), []),
        ("none", ToolChoice("none"), []),
        ("required", ToolChoice("required"), []),
        ({"type": "function", "name": "f"}, ToolChoice("tool", "f"), []),
        (
            {"type": "allowed_tools", "mode": "required", "tools": [{"type": "function"}]},
            ToolChoice("required"),
            ["tool_choice.tools"],
        ),
    ],
)
def test_tool_choices_decode(choice: Any, expected: ToolChoice, dropped: list[str]) -> None:
    request = INBOUND_CODEC.decode_request({"model": "m", "input": "x", "tool_choice": choice})
    assert request.tool_choice == expected
    assert request.dropped == dropped


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ({"format": {"type": "text"}}, None),
        ({"format": {"type": "json_object"}}, ResponseFormat("json_object")),
    ],
)
def test_text_formats_decode(text: dict[str, Any], expected: ResponseFormat | None) -> None:
    request = INBOUND_CODEC.decode_request({"model": "m", "input": "x", "text": text})
    assert request.response_format == expected


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"previous_response_id": "resp_1"}, "previous_response_id continues a response stored"),
        ({"conversation": "conv_1"}, "conversation names a conversation stored by OpenAI"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt names a prompt template stored"),
        ({"tools": [{"type": "web_search"}]}, "the built-in tool 'web_search'"),
        ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "'file_search'"),
        ({"tools": [{"type": "computer_use_preview"}]}, "'computer_use_preview'"),
        ({"tool_choice": {"type": "web_search_preview"}}, "names a tool built into OpenAI"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input_image by file_id refers to OpenAI's file store",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "content parts of type 'input_file'",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "'web_search_call'"),
    ],
)
def test_what_only_openai_can_serve_is_refused_with_the_reason(
    doc: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Untranslatable) as caught:
        INBOUND_CODEC.decode_request({"model": "m", "input": "x", **doc})
    assert reason in str(caught.value)
    assert caught.value.status == 400


# -- requests: model -> Responses --------------------------------------------------------------

PROVIDER_REQUEST: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "instructions": "You are terse.\n\nAnswer in English.",
    "input": [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "What is this, and the weather?"},
                {"type": "input_image", "image_url": "https://x.test/cat.png", "detail": "low"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,iVBORw0K",
                    "detail": "auto",
                },
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Need the weather."}],
            "encrypted_content": "gAAAA-opaque",
        },
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "A cat. Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
    ],
    "tools": [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": WEATHER,
            "strict": True,
        }
    ],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": False,
    "max_output_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "text": {
        "format": {"type": "json_schema", "name": "answer", "schema": WEATHER, "strict": True}
    },
    "reasoning": {"effort": "low", "summary": "auto"},
    "user": "u-1",
    "metadata": {"trace": "t1"},
    "stream": True,
}


def test_the_model_encodes_to_a_responses_request() -> None:
    request = INBOUND_CODEC.decode_request(CLIENT_REQUEST)
    request.dropped.clear()
    assert OUTBOUND_CODEC.encode_request(request) == PROVIDER_REQUEST
    assert request.dropped == []


def test_what_the_responses_api_lacks_is_dropped_and_listed() -> None:
    request = ChatRequest(
        model="gpt-4o",
        messages=[
            Message(
                "assistant",
                [
                    Thinking("Hmm", signature="anthropic-sig"),  # another provider's reasoning
                    Thinking(redacted=True, data="opaque"),
                    ToolCall("toolu_1", "f", "{}"),
                ],
            ),
            Message("user", [ToolResult("toolu_1", [Text("boom")], is_error=True)]),
        ],
        tools=[Tool("f")],  # strict unset: the Responses API would default to strict
        top_k=5,
        stop=["END"],
        seed=7,
        presence_penalty=0.1,
        frequency_penalty=0.2,
        reasoning=Reasoning(budget_tokens=4000),
    )
    body = OUTBOUND_CODEC.encode_request(request)
    assert body == {
        "model": "gpt-4o",
        "input": [
            {"type": "function_call", "call_id": "toolu_1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "boom"},
        ],
        "tools": [
            {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}
        ],
        "reasoning": {"effort": "medium", "summary": "auto"},
    }
    assert request.dropped == [
        "thinking",
        "thinking",
        "tool_result.is_error",
        "top_k",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "stop",
    ]


def test_a_tool_result_with_an_image_keeps_its_parts() -> None:
    request = ChatRequest(
        model="m",
        messages=[
            Message(
                "user", [ToolResult("c", [Text("see"), Image(data="AA", media_type="image/jpeg")])]
            )
        ],
    )
    assert OUTBOUND_CODEC.encode_request(request)["input"] == [
        {
            "type": "function_call_output",
            "call_id": "c",
            "output": [
                {"type": "input_text", "text": "see"},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,AA", "detail": "auto"},
            ],
        }
    ]


# -- answers ---------------------------------------------------------------------------------

PROVIDER_ANSWER: dict[str, Any] = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1_700_000_000,
    "status": "completed",
    "model": "gpt-4o-2024-08-06",
    "output": [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Think"}],
            "encrypted_content": "enc",
        },
        {
            "id": "msg_1",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Calling.", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_9",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        },
    ],
    "usage": {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 3},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 18,
    },
}

CANONICAL_ANSWER = ChatResponse(
    id="resp_abc",
    model="gpt-4o-2024-08-06",
    parts=[
        Thinking("Think", data="enc", id="rs_1"),
        Text("Calling."),
        ToolCall("call_9", "get_weather", '{"city":"Paris"}'),
    ],
    finish="tool_calls",
    usage=Usage(11, 7, cached_input_tokens=3, reasoning_tokens=2),
    created=1_700_000_000,
)


def test_a_responses_answer_decodes_to_the_model() -> None:
    assert OUTBOUND_CODEC.decode_response(PROVIDER_ANSWER) == CANONICAL_ANSWER


@pytest.mark.parametrize(
    ("status", "details", "finish"),
    [
        ("completed", None, "stop"),
        ("incomplete", {"reason": "max_output_tokens"}, "length"),
        ("incomplete", {"reason": "content_filter"}, "content_filter"),
        ("failed", None, "error"),
    ],
)
def test_answer_statuses_map_to_finish_reasons(
    status: str, details: dict[str, Any] | None, finish: str
) -> None:
    doc = {
        "id": "resp_1",
        "status": status,
        "incomplete_details": details,
        "model": "m",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "x"}]}],
    }
    assert OUTBOUND_CODEC.decode_response(doc).finish == finish


def test_the_model_answer_encodes_to_a_response_object() -> None:
    answer = ChatResponse(
        id="chatcmpl-42",
        model="claude-x",
        parts=[Thinking("Think"), Text("Calling."), ToolCall("call_9", "get_weather", "{}")],
        finish="tool_calls",
        usage=Usage(11, 7, cached_input_tokens=3),
        created=1_700_000_000,
    )
    doc = INBOUND_CODEC.encode_response(answer)
    assert doc == {
        "id": "resp_chatcmpl42",
        "object": "response",
        "created_at": 1_700_000_000,
        "status": "completed",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "claude-x",
        "output": [
            {
                "id": "rs_chatcmpl42_0",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "Think"}],
            },
            {
                "id": "msg_chatcmpl42_1",
                "type": "message",
                "status": "completed",
                "content": [
                    {"type": "output_text", "annotations": [], "logprobs": [], "text": "Calling."}
                ],
                "role": "assistant",
            },
            {
                "id": "fc_chatcmpl42_2",
                "type": "function_call",
                "status": "completed",
                "arguments": "{}",
                "call_id": "call_9",
                "name": "get_weather",
            },
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 11,
            "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
            "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 18,
        },
        "user": None,
        "metadata": {},
    }
    parsed = openai.types.responses.Response.model_validate(doc)  # the SDK's own type
    assert parsed.output_text == "Calling."


def test_another_providers_signed_and_redacted_thinking_come_back_intact() -> None:
    answer = ChatResponse(
        id="msg_1",
        model="claude-x",
        parts=[
            Thinking("Let me think", signature="sig-123"),
            Thinking(redacted=True, data="opaque-456"),
            ToolCall("toolu_1", "get_weather", "{}"),
        ],
        finish="tool_calls",
    )
    output = INBOUND_CODEC.encode_response(answer)["output"]
    assert [o.get("encrypted_content") for o in output] == [
        "trustgate.signature:sig-123",
        "trustgate.redacted:opaque-456",
        None,
    ]
    # the client sends the items back with the tool's result (as the SDK's guide says)
    followup = {
        "model": "claude-x",
        "input": [
            {"role": "user", "content": "Weather?"},
            *output,
            {"type": "function_call_output", "call_id": "toolu_1", "output": "sunny"},
        ],
    }
    request = INBOUND_CODEC.decode_request(followup)
    assert request.messages[1].parts == [
        Thinking("Let me think", signature="sig-123", id="rs_msg1_0"),
        Thinking(redacted=True, data="opaque-456", id="rs_msg1_1"),
        ToolCall("toolu_1", "get_weather", "{}"),
    ]
    assert request.dropped == []


def test_a_streamed_signature_lands_in_the_reasoning_items_encrypted_content() -> None:
    encoder = INBOUND_CODEC.stream_encoder("claude-x")
    data = encoder.feed(StreamStart("msg_1", "claude-x"))
    data += encoder.feed(ThinkingDelta(0, "Hmm"))
    data += encoder.feed(ThinkingDelta(0, signature="sig-9"))
    data += encoder.feed(TextDelta(1, "Hi")) + encoder.finish()
    docs = parse_frames(data)
    done = next(d for d in docs if d["type"] == "response.output_item.done")
    assert done["item"]["encrypted_content"] == "trustgate.signature:sig-9"
    assert sdk_accumulates(docs).output[0].encrypted_content == "trustgate.signature:sig-9"


def test_an_answer_cut_by_max_tokens_is_an_incomplete_response() -> None:
    doc = INBOUND_CODEC.encode_response(ChatResponse("resp_1", "m", [Text("Hel")], "length"))
    assert doc["status"] == "incomplete"
    assert doc["incomplete_details"] == {"reason": "max_output_tokens"}
    assert doc["output"][0]["status"] == "incomplete"
    assert OUTBOUND_CODEC.decode_response(doc).finish == "length"


def test_error_bodies_are_openais() -> None:
    assert INBOUND_CODEC.error_body(429, "slow down") == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert INBOUND_CODEC.error_body(502, "x")["error"]["type"] == "server_error"
    body = b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error"}}'
    assert OUTBOUND_CODEC.error_message(401, body) == "Incorrect API key provided."
    assert OUTBOUND_CODEC.error_message(502, b"Bad gateway") == "Bad gateway"


# -- streams: Responses -> events ------------------------------------------------------------


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        mock_base.sse({"type": doc["type"], "sequence_number": n, **doc}, doc["type"])
        for n, doc in enumerate(events)
    )


RESPONSE = {
    "id": "resp_s",
    "object": "response",
    "model": "gpt-4o",
    "status": "in_progress",
    "output": [],
}
USAGE_DOC = PROVIDER_ANSWER["usage"]
PROVIDER_STREAM = sse(
    {"type": "response.created", "response": RESPONSE},
    {"type": "response.in_progress", "response": RESPONSE},
    {"type": "response.output_item.added", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
    {"type": "response.reasoning_summary_part.added", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "Thi"},
    {"type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "delta": "nk"},
    {"type": "response.reasoning_summary_text.done", "item_id": "rs_1", "output_index": 0, "summary_index": 0, "text": "Think"},
    {"type": "response.output_item.done", "output_index": 0, "item": {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "Think"}]}},
    {"type": "response.output_item.added", "output_index": 1, "item": {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}},
    {"type": "response.content_part.added", "item_id": "msg_1", "output_index": 1, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": "Héllo", "logprobs": []},
    {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 1, "content_index": 0, "delta": " 🌍", "logprobs": []},
    {"type": "response.output_text.done", "item_id": "msg_1", "output_index": 1, "content_index": 0, "text": "Héllo 🌍", "logprobs": []},
    {"type": "response.output_item.done", "output_index": 1, "item": {"id": "msg_1", "type": "message", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Héllo 🌍", "annotations": []}]}},
    {"type": "response.output_item.added", "output_index": 2, "item": {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_9", "name": "get_weather", "arguments": ""}},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": '{"city":'},
    {"type": "response.function_call_arguments.delta", "item_id": "fc_1", "output_index": 2, "delta": '"Paris"}'},
    {"type": "response.function_call_arguments.done", "item_id": "fc_1", "output_index": 2, "arguments": '{"city":"Paris"}'},
    {"type": "response.output_item.done", "output_index": 2, "item": {"id": "fc_1", "type": "function_call", "status": "completed", "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Paris"}'}},
    {"type": "response.completed", "response": {**RESPONSE, "status": "completed", "usage": USAGE_DOC}},
)  # fmt: skip
STREAM_EVENTS: list[StreamEvent] = [
    StreamStart("resp_s", "gpt-4o"),
    ThinkingDelta(0, "Thi"),
    ThinkingDelta(0, "nk"),
    TextDelta(1, "Héllo"),
    TextDelta(1, " 🌍"),
    ToolCallStart(2, "call_9", "get_weather"),
    ToolArgsDelta(2, '{"city":'),
    ToolArgsDelta(2, '"Paris"}'),
    UsageUpdate(Usage(11, 7, cached_input_tokens=3, reasoning_tokens=2)),
    Finish("tool_calls"),
    StreamEnd(),
]


def decode(chunks: list[bytes]) -> list[StreamEvent]:
    return decode_chunks(OUTBOUND_CODEC.stream_decoder(), chunks)


def test_a_responses_stream_decodes_in_one_chunk() -> None:
    assert decode([PROVIDER_STREAM]) == STREAM_EVENTS


def test_a_responses_stream_decodes_byte_by_byte() -> None:
    assert decode(chunks_of(PROVIDER_STREAM, 1)) == STREAM_EVENTS


def test_a_responses_stream_decodes_in_any_chunking_and_with_crlf() -> None:
    rng = random.Random(5)
    data = PROVIDER_STREAM.replace(b"\n", b"\r\n")
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), 30))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert decode(chunks) == STREAM_EVENTS


def test_an_incomplete_stream_finishes_by_length() -> None:
    stream = sse(
        {"type": "response.created", "response": RESPONSE},
        {"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "m", "delta": "Hi"},
        {"type": "response.incomplete", "response": {**RESPONSE, "status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}},
    )  # fmt: skip
    assert decode([stream]) == [
        StreamStart("resp_s", "gpt-4o"),
        TextDelta(0, "Hi"),
        Finish("length"),
        StreamEnd(),
    ]


def test_a_stream_without_its_terminal_event_has_no_end() -> None:
    cut = PROVIDER_STREAM[: PROVIDER_STREAM.index(b"event: response.completed")]
    events = decode([cut])
    assert not any(isinstance(e, StreamEnd) for e in events)
    assert events == STREAM_EVENTS[:-3]


@pytest.mark.parametrize(
    "event",
    [
        {"type": "error", "code": "server_error", "message": "boom", "param": None},
        {"type": "error", "error": {"type": "server_error", "code": "server_error", "message": "boom"}},
        {"type": "response.failed", "response": {**RESPONSE, "status": "failed", "error": {"code": "server_error", "message": "boom"}}},
    ],
)  # fmt: skip
def test_error_events_end_the_stream_with_the_providers_message(event: dict[str, Any]) -> None:
    decoder = OUTBOUND_CODEC.stream_decoder()
    assert decoder.feed(sse({"type": "response.created", "response": RESPONSE})) == [
        StreamStart("resp_s", "gpt-4o")
    ]
    with pytest.raises(UpstreamStreamError) as caught:
        decoder.feed(sse(event))
    assert caught.value.message == "boom"


def test_text_given_only_whole_is_not_lost() -> None:
    stream = sse(
        {"type": "response.created", "response": RESPONSE},
        {"type": "response.output_item.done", "output_index": 0, "item": {"id": "m", "type": "message", "content": [{"type": "output_text", "text": "Whole"}]}},
        {"type": "response.output_item.done", "output_index": 1, "item": {"id": "f", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}},
        {"type": "response.completed", "response": {**RESPONSE, "status": "completed"}},
    )  # fmt: skip
    assert decode([stream]) == [
        StreamStart("resp_s", "gpt-4o"),
        TextDelta(0, "Whole"),
        ToolCallStart(1, "c", "f"),
        ToolArgsDelta(1, "{}"),
        Finish("tool_calls"),
        StreamEnd(),
    ]


# -- streams: events -> Responses ------------------------------------------------------------

_EVENT_CLASSES = {
    typing.get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in typing.get_args(typing.get_args(ResponseStreamEvent)[0])
}


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """The SSE frames, each checked: ``event:`` names the ``type`` of its ``data``."""
    docs: list[dict[str, Any]] = sse_frames(data, named=True)
    return docs


def sdk_accumulates(docs: list[dict[str, Any]]) -> Any:
    """Each event validated by the SDK's own class for it, then fed to the SDK's stream
    accumulator (as ``client.responses.stream()`` does); the final response."""
    state: ResponseStreamState[Any] = ResponseStreamState(
        input_tools=openai.omit, text_format=openai.omit
    )
    for doc in docs:
        event = _EVENT_CLASSES[doc["type"]].model_validate(doc)
        state.handle_event(event)
    return state._completed_response


def encode(events: list[StreamEvent], model: str = "gpt-4o-mini") -> bytes:
    encoder = INBOUND_CODEC.stream_encoder(model)
    return encode_events(encoder, [e for e in events if not isinstance(e, StreamEnd)])


def test_the_stream_encoder_emits_the_apis_event_sequence_and_the_sdk_accepts_it() -> None:
    events = [StreamStart("chatcmpl-7", "claude-x"), *STREAM_EVENTS[1:]]
    docs = parse_frames(encode(events))
    assert [d["type"] for d in docs] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [d["sequence_number"] for d in docs] == list(range(len(docs)))
    assert docs[0]["response"]["id"] == "resp_chatcmpl7"
    assert docs[0]["response"]["model"] == "claude-x"
    assert [(d.get("output_index"), d.get("item_id")) for d in docs[9:12]] == [
        (1, None),
        (1, "msg_chatcmpl7_1"),
        (1, "msg_chatcmpl7_1"),
    ]
    final = sdk_accumulates(docs)
    assert final.status == "completed"
    assert final.output_text == "Héllo 🌍"
    assert [o.type for o in final.output] == ["reasoning", "message", "function_call"]
    assert final.output[0].summary[0].text == "Think"
    call = final.output[2]
    assert (call.call_id, call.name, call.arguments) == (
        "call_9",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert final.usage.input_tokens == 11
    assert final.usage.input_tokens_details.cached_tokens == 3
    assert final.usage.output_tokens_details.reasoning_tokens == 2


def test_an_encoded_stream_decodes_back_to_its_events() -> None:
    usage = Usage(11, 7, cached_input_tokens=3, cache_write_tokens=0, reasoning_tokens=2)
    assert (
        decode([encode(STREAM_EVENTS)])
        == [
            StreamStart("resp_s", "gpt-4o"),
            *STREAM_EVENTS[1:8],
            UsageUpdate(usage),  # the SDK's type requires cache_write_tokens: 0 when unknown
            *STREAM_EVENTS[9:],
        ]
    )


def test_a_stream_cut_by_max_tokens_ends_incomplete() -> None:
    docs = parse_frames(encode([TextDelta(0, "Hel"), Finish("length")], model="gpt-4o"))
    assert docs[-1]["type"] == "response.incomplete"
    assert docs[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    for doc in docs:  # each event is one the SDK knows, with every field it requires
        _EVENT_CLASSES[doc["type"]].model_validate(doc)
    assert docs[0]["response"]["model"] == "gpt-4o"


def test_the_error_event_has_the_documented_fields_and_the_live_apis_nested_error() -> None:
    encoder = INBOUND_CODEC.stream_encoder("m")
    head = encoder.feed(TextDelta(0, "Hel"))
    docs = parse_frames(head + encoder.error("upstream stream terminated unexpectedly"))
    error = docs[-1]
    assert error == {
        "type": "error",
        "sequence_number": len(docs) - 1,
        "code": "server_error",
        "message": "upstream stream terminated unexpectedly",
        "param": None,
        "error": {
            "type": "server_error",
            "code": "server_error",
            "message": "upstream stream terminated unexpectedly",
            "param": None,
        },
    }
    _EVENT_CLASSES["error"].model_validate(error)


def _sdk(body: bytes) -> AsyncOpenAI:
    """The SDK reading ``body`` as the answer to any request."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return tracked(
        AsyncOpenAI(base_url="http://proxy.test/v1", api_key="k", http_client=http, max_retries=0)
    )


async def test_the_sdk_stream_helper_gets_the_final_response_of_an_encoded_stream() -> None:
    client = _sdk(encode(STREAM_EVENTS))
    async with client.responses.stream(model="m", input="hi") as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert deltas == ["Héllo", " 🌍"]
    assert final.output_text == "Héllo 🌍"
    await client.close()


async def test_the_sdk_raises_the_error_event_of_a_broken_stream() -> None:
    encoder = INBOUND_CODEC.stream_encoder("m")
    body = encoder.feed(TextDelta(0, "Hel")) + encoder.error(
        "upstream stream terminated unexpectedly"
    )
    client = _sdk(body)
    stream = await client.responses.create(model="m", input="hi", stream=True)
    seen = []
    with pytest.raises(openai.APIError, match="upstream stream terminated unexpectedly"):
        async for event in stream:
            seen.append(event.type)
    assert seen[-1] == "response.output_text.delta"
    await client.close()


# -- pass-through usage ----------------------------------------------------------------------


def test_usage_is_read_from_a_passed_through_body_and_stream() -> None:
    assert USAGE_READER.from_body(orjson.dumps(PROVIDER_ANSWER)) == Usage(
        11, 7, cached_input_tokens=3, reasoning_tokens=2
    )
    tail = PROVIDER_STREAM[-600:]
    assert USAGE_READER.from_stream(PROVIDER_STREAM[:400], tail) == Usage(
        11, 7, cached_input_tokens=3, reasoning_tokens=2
    )
    assert USAGE_READER.stream_complete(tail)
    cut = PROVIDER_STREAM[: PROVIDER_STREAM.index(b"event: response.completed")]
    assert not USAGE_READER.stream_complete(cut[-2000:])
    assert USAGE_READER.from_stream(cut[:400], cut[-2000:]) is None  # only "usage": null so far


# -- the openai target ---------------------------------------------------------------------


def openai_registry(provider: str = "openai", **options: Any) -> Registry:
    now = datetime.now(UTC)
    return Registry(
        id=uuid7(),
        gateway_id=uuid7(),
        created_at=now,
        updated_at=now,
        name="r",
        provider=provider,
        provider_options=options,
        auth={},
    )


AUTH = {"type": "api_key", "api_key": {"api_key": "sk-1"}}


def test_an_openai_registry_without_api_sends_responses_clients_to_the_responses_api() -> None:
    target = build_openai_target(openai_registry(), AUTH)
    assert isinstance(target, ChatOrResponsesTarget)
    assert target.wire == "openai_chat"
    assert target.generate_url("gpt-4o", False) == "https://api.openai.com/v1/chat/completions"
    for inbound in ("openai_chat", "anthropic", "gemini", "bedrock"):
        assert target.for_inbound(inbound) is target  # type: ignore[arg-type]
    responses = target.for_inbound("openai_responses")
    assert responses.wire == "openai_responses"
    assert responses.generate_url("gpt-4o", True) == "https://api.openai.com/v1/responses"
    assert responses.headers["Authorization"] == "Bearer sk-1"


def test_api_responses_sends_every_client_to_the_responses_api() -> None:
    target = build_openai_target(
        openai_registry(base_url="http://127.0.0.1:9/v1/responses", api="responses"), AUTH
    )
    assert isinstance(target, ResponsesTarget)
    assert target.for_inbound("anthropic") is target
    assert target.generate_url("m", False) == "http://127.0.0.1:9/v1/responses"
    assert target.embeddings_url("m") == "http://127.0.0.1:9/v1/embeddings"


def test_api_completions_and_other_providers_use_chat() -> None:
    for registry in (openai_registry(api="completions"), openai_registry("groq")):
        target = build_openai_target(registry, AUTH)
        assert target.for_inbound("openai_responses") is target
        assert target.wire == "openai_chat"


def test_an_unknown_api_is_a_configuration_error() -> None:
    with pytest.raises(ProviderCredentialError, match="completions or responses"):
        build_openai_target(openai_registry(api="assistants"), AUTH)


# -- through another provider's codec -------------------------------------------------------


def chat_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + orjson.dumps(doc) + b"\n\n"


def test_a_chat_completions_stream_reaches_a_responses_client_as_the_api_streams() -> None:
    start = {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    upstream = (
        chat_chunk({"role": "assistant", "content": "Let me"})
        + chat_chunk({"content": " check."})
        + chat_chunk({"tool_calls": [start]})
        + chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]})
        + chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]})
        + chat_chunk({}, "tool_calls")
        + b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
        b'"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18,'
        b'"prompt_tokens_details":{"cached_tokens":3}}}\n\n'
        b"data: [DONE]\n\n"
    )  # fmt: skip
    decoder = OUTBOUND["openai_chat"].stream_decoder()
    encoder = INBOUND_CODEC.stream_encoder("gpt-4o-mini")
    # byte by byte, as a slow network would give them
    data = transcode(decoder, encoder, chunks_of(upstream, 1))
    final = sdk_accumulates(parse_frames(data))
    assert final.status == "completed"
    assert final.output_text == "Let me check."
    call = final.output[1]
    assert (call.call_id, call.name, call.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert (final.usage.input_tokens, final.usage.output_tokens) == (11, 7)
    assert final.usage.input_tokens_details.cached_tokens == 3


def test_a_responses_request_reaches_chat_completions_with_its_tool_turns() -> None:
    request = INBOUND_CODEC.decode_request(
        {
            "model": "gpt-4o-mini",
            "instructions": "Be brief.",
            "input": [
                {"role": "user", "content": "Weather?"},
                {
                    "type": "function_call",
                    "call_id": "c1",
                    "name": "get_weather",
                    "arguments": "{}",
                },
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
            "max_output_tokens": 50,
        }
    )
    body = OUTBOUND["openai_chat"].encode_request(request)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert body["max_tokens"] == 50
