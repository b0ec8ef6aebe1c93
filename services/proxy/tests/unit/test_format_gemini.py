"""Gemini generateContent: golden tables (canonical → Gemini request, Gemini answer →
canonical), the ``alt=sse`` stream decoded in any chunking (byte by byte too), the
pass-through usage reader, the gemini/vertex/azure targets (URLs, keys, minted tokens) and
the mock's token endpoints.

Fixture shapes follow the Gemini API reference (GenerateContentRequest/Response, Part,
Candidate, FinishReason, UsageMetadata), Vertex AI's REST reference, Google's OAuth
service-account flow and Entra ID's client-credentials flow; see
``trustgate_testkit.proxy.mock_gemini`` and ``trustgate_testkit.proxy.mock_entra``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from trustgate_core.errors import ProviderCredentialError
from trustgate_core.ids import uuid7
from trustgate_core.models import Registry
from trustgate_proxy.adapters.providers import BUILDERS
from trustgate_proxy.adapters.providers.tokens import BearerCache
from trustgate_proxy.domain.formats import OUTBOUND, USAGE, UpstreamStreamError
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
from trustgate_testkit.proxy.format_checks import chunks_of, decode_chunks, transcode
from trustgate_testkit.proxy.mock_entra import (
    ENTRA_CLIENT_ID,
    ENTRA_SECRET,
    ENTRA_TENANT,
    serve_entra_mock,
)
from trustgate_testkit.proxy.mock_gemini import (
    GEMINI_KEY,
    LOCATION,
    PROJECT,
    serve_google_mock,
)

CODEC = OUTBOUND["gemini"]
READER = USAGE["gemini"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)

WEATHER_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
        "when": {"$ref": "#/$defs/day"},
    },
    "required": ["city"],
    "additionalProperties": False,
    "$defs": {"day": {"type": "string", "format": "date", "examples": ["2026-01-01"]}},
}

# -- canonical → Gemini --------------------------------------------------------------------

REQUEST_GOLDENS: list[tuple[str, ChatRequest, dict[str, Any], list[str]]] = [
    (
        "plain text with a system prompt",
        ChatRequest(
            model="gemini-2.5-flash",
            system=["Be brief.", "Answer in French."],
            messages=[Message("user", [Text("Hello!")])],
            max_tokens=100,
            temperature=0.2,
            top_p=0.9,
            top_k=40,
            stop=["END"],
            seed=7,
            presence_penalty=0.1,
            frequency_penalty=0.3,
        ),
        {
            "contents": [{"role": "user", "parts": [{"text": "Hello!"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Answer in French."}]},
            "generationConfig": {
                "maxOutputTokens": 100,
                "temperature": 0.2,
                "topP": 0.9,
                "topK": 40,
                "seed": 7,
                "presencePenalty": 0.1,
                "frequencyPenalty": 0.3,
                "stopSequences": ["END"],
            },
        },
        [],
    ),
    (
        "images inline, as data: URLs and as gs:// URIs",
        ChatRequest(
            model="m",
            messages=[
                Message(
                    "user",
                    [
                        Text("What is this?"),
                        Image(data="iVBORw0KGgo=", media_type="image/png", detail="high"),
                        Image(url="data:image/jpeg;base64,/9j/4AAQ"),
                        Image(url="gs://bucket/cat.webp"),
                    ],
                )
            ],
        ),
        {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {"text": "What is this?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                        {"fileData": {"mimeType": "image/webp", "fileUri": "gs://bucket/cat.webp"}},
                    ],
                }
            ]
        },
        ["image.detail"],
    ),
    (
        "a tool round trip, tools, a named tool choice",
        ChatRequest(
            model="m",
            messages=[
                Message("user", [Text("Weather in Paris?")]),
                Message(
                    "assistant",
                    [
                        Thinking(signature="sig-abc"),
                        ToolCall("call_r1_0", "get_weather", '{"city":"Paris"}'),
                    ],
                ),
                Message("user", [ToolResult("call_r1_0", [Text("sunny")])]),
                Message("user", [ToolResult("x", [Text("oops")], is_error=True, name="other")]),
            ],
            tools=[
                Tool("get_weather", "Current weather", WEATHER_SCHEMA, strict=True),
                Tool("now"),
            ],
            tool_choice=ToolChoice("tool", "get_weather"),
            parallel_tool_calls=False,
        ),
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {
                    "role": "model",
                    "parts": [
                        {
                            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                            "thoughtSignature": "sig-abc",
                        }
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {
                            "functionResponse": {
                                "name": "get_weather",
                                "response": {"content": "sunny"},
                            }
                        }
                    ],
                },
                {
                    "role": "user",
                    "parts": [
                        {"functionResponse": {"name": "other", "response": {"error": "oops"}}}
                    ],
                },
            ],
            "tools": [
                {
                    "functionDeclarations": [
                        {
                            "name": "get_weather",
                            "description": "Current weather",
                            "parameters": {
                                "type": "OBJECT",
                                "properties": {
                                    "city": {"type": "STRING", "description": "City name"},
                                    "unit": {
                                        "nullable": True,
                                        "type": "STRING",
                                        "enum": ["c", "f"],
                                    },
                                    "when": {"type": "STRING", "format": "date"},
                                },
                                "required": ["city"],
                            },
                        },
                        {"name": "now"},
                    ]
                }
            ],
            "toolConfig": {
                "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
            },
        },
        [
            "parallel_tool_calls",
            "tools[].parameters.$schema",
            "tools[].parameters.additionalProperties",
            "tools[].parameters.properties.examples",
            "tools[].strict",
        ],
    ),
    (
        "JSON schema output, reasoning by effort, dropped user and metadata",
        ChatRequest(
            model="m",
            messages=[
                Message("user", [Text("List two colours")]),
                Message("assistant", [Thinking(text="earlier thoughts"), Text("Sure.")]),
                Message("user", [Text("go")]),
            ],
            response_format=ResponseFormat(
                "json_schema",
                {
                    "type": "object",
                    "properties": {
                        "colours": {"type": "array", "items": {"type": "string"}},
                        "kind": {"const": "list"},
                    },
                    "additionalProperties": False,
                },
                name="colours",
                strict=True,
            ),
            reasoning=Reasoning(effort="low"),
            tool_choice=ToolChoice("required"),
            user="u-1",
            metadata={"a": "b"},
            stop=["1", "2", "3", "4", "5", "6"],
        ),
        {
            "contents": [
                {"role": "user", "parts": [{"text": "List two colours"}]},
                {"role": "model", "parts": [{"text": "Sure."}]},
                {"role": "user", "parts": [{"text": "go"}]},
            ],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
            "generationConfig": {
                "stopSequences": ["1", "2", "3", "4", "5"],
                "responseMimeType": "application/json",
                "responseSchema": {
                    "type": "OBJECT",
                    "properties": {
                        "colours": {"type": "ARRAY", "items": {"type": "STRING"}},
                        "kind": {"enum": ["list"], "type": "STRING"},
                    },
                },
                "thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024},
            },
        },
        [
            "metadata",
            "response_format.name",
            "response_format.schema.additionalProperties",
            "response_format.strict",
            "stop[5:]",
            "thinking.text",
            "user",
        ],
    ),
    (
        "JSON mode, an explicit budget, no thinking at budget 0",
        ChatRequest(
            model="m",
            messages=[Message("user", [Text("json please")])],
            response_format=ResponseFormat("json_object"),
            reasoning=Reasoning(budget_tokens=0),
            tool_choice=ToolChoice("none"),
        ),
        {
            "contents": [{"role": "user", "parts": [{"text": "json please"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
            "generationConfig": {
                "responseMimeType": "application/json",
                "thinkingConfig": {"includeThoughts": False, "thinkingBudget": 0},
            },
        },
        [],
    ),
]


@pytest.mark.parametrize(
    ("request_", "expected", "dropped"),
    [g[1:] for g in REQUEST_GOLDENS],
    ids=[g[0] for g in REQUEST_GOLDENS],
)
def test_canonical_request_becomes_the_golden_gemini_body(
    request_: ChatRequest, expected: dict[str, Any], dropped: list[str]
) -> None:
    assert CODEC.encode_request(request_) == expected
    assert sorted(request_.dropped) == sorted(dropped)
    assert "model" not in expected  # the model goes in the URL


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            ChatRequest("m", [Message("user", [Image(url="https://example.com/cat.png")])]),
            "does not fetch image URLs",
        ),
        (
            ChatRequest("m", [Message("assistant", [ToolCall("c1", "f", "{not json")])]),
            "not valid JSON",
        ),
        (ChatRequest("m", [Message("assistant", [ToolCall("c1", "f", "[1]")])]), "JSON object"),
        (
            ChatRequest("m", [Message("user", [ToolResult("unknown", [Text("x")])])]),
            "needs the tool's name",
        ),
        (ChatRequest("m", []), "at least one message"),
        (
            ChatRequest(
                "m",
                [Message("user", [Text("x")])],
                tools=[Tool("t", parameters={"$ref": "https://example.com/s.json"})],
            ),
            "cannot resolve",
        ),
    ],
)
def test_unservable_requests_are_refused_with_the_reason(
    request_: ChatRequest, reason: str
) -> None:
    with pytest.raises(Untranslatable) as info:
        CODEC.encode_request(request_)
    assert reason in str(info.value.message)
    assert info.value.status == 400


def test_a_tool_result_takes_the_name_of_the_latest_call_with_its_id() -> None:
    # Gemini's synthesised ids repeat across turns (call_0 each time without a responseId)
    request = ChatRequest(
        "m",
        [
            Message("assistant", [ToolCall("call_0", "first", "{}")]),
            Message("user", [ToolResult("call_0", [Text("a")])]),
            Message("assistant", [ToolCall("call_0", "second", "{}")]),
            Message("user", [ToolResult("call_0", [Text("b")])]),
        ],
    )
    body = CODEC.encode_request(request)
    names = [
        p["functionResponse"]["name"]
        for c in body["contents"]
        for p in c["parts"]
        if "functionResponse" in p
    ]
    assert names == ["first", "second"]


# -- Gemini → canonical --------------------------------------------------------------------

RESPONSE_GOLDENS: list[tuple[str, dict[str, Any], Any]] = [
    (
        "text, cached prompt tokens",
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": "Hello"}, {"text": " there"}], "role": "model"},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 11,
                "candidatesTokenCount": 7,
                "totalTokenCount": 18,
                "cachedContentTokenCount": 3,
            },
            "modelVersion": "gemini-2.5-flash",
            "responseId": "abc123",
        },
        (
            "abc123",
            "gemini-2.5-flash",
            [Text("Hello there")],
            "stop",
            Usage(11, 7, cached_input_tokens=3),
        ),
    ),
    (
        "function calls (ids synthesised), thought signature, thoughts",
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"text": "Considering the city.", "thought": True},
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": "c2ln",
                            },
                            {"functionCall": {"name": "now", "args": {}}},
                            {"functionCall": {"id": "given-id", "name": "x"}},
                        ],
                        "role": "model",
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 20,
                "candidatesTokenCount": 5,
                "thoughtsTokenCount": 9,
                "toolUsePromptTokenCount": 2,
                "totalTokenCount": 36,
            },
            "responseId": "r-1/x",
        },
        (
            "r-1/x",
            "",
            [
                Thinking(text="Considering the city."),
                Thinking(signature="c2ln"),
                ToolCall("call_r-1x_0", "get_weather", '{"city":"Paris"}'),
                ToolCall("call_r-1x_1", "now", "{}"),
                ToolCall("given-id", "x", "{}"),
            ],
            "tool_calls",
            Usage(22, 14, reasoning_tokens=9),
        ),
    ),
    (
        "max tokens",
        {
            "candidates": [
                {
                    "content": {"parts": [{"text": "Hel"}], "role": "model"},
                    "finishReason": "MAX_TOKENS",
                }
            ]
        },
        ("gemini", "", [Text("Hel")], "length", None),
    ),
    (
        "safety stop without content",
        {"candidates": [{"finishReason": "SAFETY", "safetyRatings": []}]},
        ("gemini", "", [], "content_filter", None),
    ),
    (
        "blocked prompt",
        {
            "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
            "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
        },
        ("gemini", "", [], "content_filter", Usage(4, 0)),
    ),
    (
        "malformed function call",
        {"candidates": [{"content": {"parts": []}, "finishReason": "MALFORMED_FUNCTION_CALL"}]},
        ("gemini", "", [], "error", None),
    ),
    (
        "recitation",
        {"candidates": [{"finishReason": "RECITATION"}]},
        ("gemini", "", [], "content_filter", None),
    ),
]


@pytest.mark.parametrize(
    ("doc", "expected"), [g[1:] for g in RESPONSE_GOLDENS], ids=[g[0] for g in RESPONSE_GOLDENS]
)
def test_gemini_answer_becomes_the_golden_canonical_response(
    doc: dict[str, Any], expected: Any
) -> None:
    response = CODEC.decode_response(doc)
    assert (
        response.id,
        response.model,
        response.parts,
        response.finish,
        response.usage,
    ) == expected


def test_provider_error_messages_are_read_from_googles_error_body() -> None:
    body = orjson.dumps(
        {
            "error": {
                "code": 429,
                "message": "Resource has been exhausted",
                "status": "RESOURCE_EXHAUSTED",
            }
        }
    )
    assert CODEC.error_message(429, body) == "RESOURCE_EXHAUSTED: Resource has been exhausted"
    assert CODEC.error_message(400, b"[" + body + b"]").startswith("RESOURCE_EXHAUSTED")
    assert CODEC.error_message(502, b"<html>bad gateway</html>") == "<html>bad gateway</html>"


# -- stream ----------------------------------------------------------------------------------


def _sse(doc: dict[str, Any], sep: bytes = b"\r\n\r\n") -> bytes:
    return b"data: " + orjson.dumps(doc) + sep


def _chunk(
    parts: list[dict[str, Any]], finish: str | None = None, usage: Any = None
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    doc: dict[str, Any] = {
        "candidates": [candidate],
        "modelVersion": "gemini-2.5-flash",
        "responseId": "s1",
    }
    if usage:
        doc["usageMetadata"] = usage
    return doc


USAGE_META = {
    "promptTokenCount": 11,
    "candidatesTokenCount": 4,
    "thoughtsTokenCount": 3,
    "cachedContentTokenCount": 3,
    "totalTokenCount": 18,
}
STREAM = (
    _sse(_chunk([{"text": "Let me think", "thought": True}], usage={"promptTokenCount": 11}))
    + b": a comment line\r\n\r\n"
    + _sse(_chunk([{"text": "Hello"}]), b"\n\n")
    + _sse(_chunk([{"text": " from"}, {"text": " gemini"}]))
    + _sse(
        _chunk(
            [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2ln",
                },
                {"functionCall": {"name": "now", "args": {}}},
            ],
            "STOP",
            USAGE_META,
        )
    )
)
STREAM_EVENTS: list[StreamEvent] = [
    StreamStart("s1", "gemini-2.5-flash"),
    ThinkingDelta(0, "Let me think"),
    TextDelta(1, "Hello"),
    TextDelta(1, " from"),
    TextDelta(1, " gemini"),
    ThinkingDelta(2, "", "c2ln"),
    ToolCallStart(3, "call_s1_0", "get_weather"),
    ToolArgsDelta(3, '{"city":"Paris"}'),
    ToolCallStart(4, "call_s1_1", "now"),
    ToolArgsDelta(4, "{}"),
    UsageUpdate(Usage(11, 7, cached_input_tokens=3, reasoning_tokens=3)),
    Finish("tool_calls"),
    StreamEnd(),
]


def _decode(data: bytes, size: int) -> list[StreamEvent]:
    return decode_chunks(CODEC.stream_decoder(), chunks_of(data, size))


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_a_stream_decodes_the_same_in_any_chunking(size: int) -> None:
    assert _decode(STREAM, size) == STREAM_EVENTS


def test_a_stream_without_a_trailing_blank_line_still_ends_cleanly() -> None:
    data = _sse(_chunk([{"text": "Hi"}], "STOP", USAGE_META), b"")
    assert _decode(data, 3) == [
        StreamStart("s1", "gemini-2.5-flash"),
        TextDelta(0, "Hi"),
        UsageUpdate(Usage(11, 7, cached_input_tokens=3, reasoning_tokens=3)),
        Finish("stop"),
        StreamEnd(),
    ]


def test_a_stream_cut_before_its_finish_reason_has_no_stream_end() -> None:
    events = _decode(_sse(_chunk([{"text": "Hello"}])) + b'data: {"candi', 5)
    assert events == [StreamStart("s1", "gemini-2.5-flash"), TextDelta(0, "Hello")]


def test_max_tokens_in_a_stream_finishes_by_length() -> None:
    events = _decode(_sse(_chunk([{"text": "Hel"}], "MAX_TOKENS")), 4)
    assert events[-2:] == [Finish("length"), StreamEnd()]


def test_an_error_object_in_the_stream_raises_upstream_stream_error() -> None:
    decoder = CODEC.stream_decoder()
    decoder.feed(_sse(_chunk([{"text": "Hello"}])))
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamStreamError) as info:
        decoder.feed(_sse(error))
    assert info.value.message == "UNAVAILABLE: The model is overloaded."


def test_garbage_in_the_stream_raises_upstream_stream_error() -> None:
    with pytest.raises(UpstreamStreamError):
        CODEC.stream_decoder().feed(b"data: {not json}\n\n")


# -- pass-through usage ---------------------------------------------------------------------


def test_usage_is_read_from_a_plain_body_and_a_streams_tail() -> None:
    body = orjson.dumps(_chunk([{"text": "x"}], "STOP", USAGE_META))
    expected = Usage(11, 7, cached_input_tokens=3, reasoning_tokens=3)
    assert READER.from_body(body) == expected
    assert READER.from_body(b"not json") is None
    last = STREAM[STREAM.rfind(b"data: ") :]
    tail = STREAM[-len(last) - 40 :]  # the tail may start mid-event
    assert READER.from_stream(STREAM[:100], tail) == expected
    assert READER.stream_complete(STREAM[-4096:])
    assert not READER.stream_complete(_sse(_chunk([{"text": "Hello"}])))
    assert not READER.stream_complete(b"")


# -- targets ---------------------------------------------------------------------------------


def _registry(provider: str, options: dict[str, Any]) -> Registry:
    return Registry(
        id=uuid7(),
        gateway_id=uuid7(),
        created_at=NOW,
        updated_at=NOW,
        name=provider,
        provider=provider,
        provider_options=options,
    )


API_KEY_AUTH = {"type": "api_key", "api_key": {"api_key": GEMINI_KEY}}


@pytest.mark.parametrize("code", ["gemini", "google"])
def test_gemini_target_puts_the_model_in_the_url_and_the_key_in_its_header(code: str) -> None:
    target = BUILDERS[code](_registry(code, {}), API_KEY_AUTH)
    assert target.wire == "gemini" and not target.needs_authorize
    base = "https://generativelanguage.googleapis.com/v1beta/models"
    assert (
        target.generate_url("gemini-2.5-flash", False) == f"{base}/gemini-2.5-flash:generateContent"
    )
    assert (
        target.generate_url("models/gemini-2.5-flash", True)
        == f"{base}/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert target.headers["x-goog-api-key"] == GEMINI_KEY
    assert "Authorization" not in target.headers
    assert target.models_url() == base
    assert target.embeddings_url("m") is None
    assert target.model_names({"models": [{"name": "models/gemini-2.5-flash"}]}) == [  # type: ignore[attr-defined]
        "gemini-2.5-flash"
    ]


def test_gemini_target_takes_a_base_url_and_a_key_in_the_query() -> None:
    auth = {"type": "api_key", "api_key": {"param_name": "key", "param_value": "k1"}}
    target = BUILDERS["gemini"](_registry("gemini", {"base_url": "http://127.0.0.1:9/"}), auth)
    assert target.generate_url("g", True) == (
        "http://127.0.0.1:9/v1beta/models/g:streamGenerateContent?alt=sse&key=k1"
    )
    assert (
        target.generate_url("g", False)
        == "http://127.0.0.1:9/v1beta/models/g:generateContent?key=k1"
    )


def test_gemini_target_without_a_key_is_a_credential_error() -> None:
    with pytest.raises(ProviderCredentialError):
        BUILDERS["gemini"](_registry("gemini", {}), None)


@pytest.mark.parametrize(
    ("location", "host"),
    [
        ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
        ("global", "https://aiplatform.googleapis.com"),
    ],
)
def test_vertex_target_urls_by_location_with_a_static_token(location: str, host: str) -> None:
    auth = {"type": "api_key", "api_key": {"api_key": "ya29.static"}}
    target = BUILDERS["vertex"](_registry("vertex", {"project": "p1", "location": location}), auth)
    assert target.wire == "gemini" and not target.needs_authorize
    models = f"{host}/v1/projects/p1/locations/{location}/publishers/google/models"
    assert (
        target.generate_url("gemini-2.5-pro", False) == f"{models}/gemini-2.5-pro:generateContent"
    )
    assert (
        target.generate_url("gemini-2.5-pro", True)
        == f"{models}/gemini-2.5-pro:streamGenerateContent?alt=sse"
    )
    assert target.headers["Authorization"] == "Bearer ya29.static"


@pytest.mark.parametrize(
    ("options", "auth", "message"),
    [
        ({"project": "p"}, {"type": "api_key", "api_key": {"api_key": "t"}}, "location"),
        ({"location": "us-central1"}, {"type": "api_key", "api_key": {"api_key": "t"}}, "project"),
        (
            {"location": "l"},
            {"type": "gcp_service_account", "gcp_service_account": "{nope"},
            "not valid JSON",
        ),
        (
            {"location": "l"},
            {"type": "gcp_service_account", "gcp_service_account": {"a": 1}},
            "client_email",
        ),
        (
            {"location": "l"},
            {
                "type": "gcp_service_account",
                "gcp_service_account": {
                    "client_email": "a@b",
                    "private_key": "garbage",
                    "project_id": "p",
                },
            },
            "private key",
        ),
    ],
)
def test_vertex_misconfiguration_is_a_credential_error(
    options: dict[str, Any], auth: dict[str, Any], message: str
) -> None:
    with pytest.raises(ProviderCredentialError) as info:
        BUILDERS["vertex"](_registry("vertex", options), auth)
    assert message in str(info.value.message)


async def test_vertex_service_account_token_is_minted_once_and_reused() -> None:
    async with serve_google_mock() as mock:
        auth = {
            "type": "gcp_service_account",
            "gcp_service_account": orjson.dumps(mock.sa_info).decode(),
        }
        target = BUILDERS["vertex"](
            _registry("vertex", {"location": LOCATION, "base_url": mock.url}), auth
        )
        assert target.needs_authorize
        url = target.generate_url("gemini-2.5-flash", False)
        assert f"/v1/projects/{PROJECT}/locations/{LOCATION}/" in url  # project from the SA
        first, second = await asyncio.gather(
            target.authorize("POST", url, b"{}"), target.authorize("POST", url, b"{}")
        )
        third = await target.authorize("POST", url, b"{}")
        assert first == second == third
        assert first["Authorization"].startswith("Bearer ya29.mock-")
        assert first["Content-Type"] == "application/json"
        assert mock.google_mints == 1  # single flight, then cached


async def test_vertex_token_refused_by_the_token_endpoint_is_a_safe_credential_error() -> None:
    async with serve_google_mock() as mock, serve_google_mock() as other:
        info = {**other.sa_info, "token_uri": mock.sa_info["token_uri"]}  # signed by another key
        auth = {"type": "gcp_service_account", "gcp_service_account": info}
        target = BUILDERS["vertex"](
            _registry("vertex", {"location": LOCATION, "base_url": mock.url}), auth
        )
        with pytest.raises(ProviderCredentialError) as raised:
            await target.authorize("POST", "u", b"")
        assert raised.value.status == 502
        assert "PRIVATE KEY" not in str(raised.value.message)
        assert mock.google_mints == 0


async def test_bearer_cache_refreshes_shortly_before_expiry() -> None:
    now = [1000.0]
    minted: list[str] = []

    async def mint() -> tuple[str, float]:
        minted.append(f"t{len(minted)}")
        return minted[-1], 300.0

    cache = BearerCache(mint, margin=60, clock=lambda: now[0])
    assert await cache.token() == "t0"
    now[0] += 239
    assert await cache.token() == "t0"
    now[0] += 2  # within the margin of expiry
    assert await cache.token() == "t1"
    assert cache.mints == 2


# -- azure Entra ID ----------------------------------------------------------------------------


def _azure_auth(**over: Any) -> dict[str, Any]:
    azure = {
        "endpoint": "https://res.openai.azure.com",
        "client_id": ENTRA_CLIENT_ID,
        "client_secret": ENTRA_SECRET,
        "tenant_id": ENTRA_TENANT,
        **over,
    }
    return {"type": "azure", "azure": azure}


async def test_azure_service_principal_gets_a_cached_entra_token() -> None:
    async with serve_entra_mock() as mock:
        mock.expires_in = [30]  # inside the refresh margin: the next request re-mints
        target = BUILDERS["azure"](_registry("azure", {"authority_host": mock.url}), _azure_auth())
        assert target.needs_authorize and target.wire == "openai_chat"
        assert target.chat_url("dep1") == (
            "https://res.openai.azure.com/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
        )
        first = await target.authorize("POST", "u", b"")
        second = await target.authorize("POST", "u", b"")
        third = await target.authorize("POST", "u", b"")
        assert first["Authorization"] == f"Bearer {mock.tokens[0]}"
        assert second == third == {**first, "Authorization": f"Bearer {mock.tokens[1]}"}
        assert "api-key" not in first
        assert mock.mints == 2


async def test_azure_bad_client_secret_is_a_credential_error_without_the_secret() -> None:
    async with serve_entra_mock() as mock:
        auth = _azure_auth(client_secret="wrong-secret-value")
        target = BUILDERS["azure"](_registry("azure", {"authority_host": mock.url}), auth)
        with pytest.raises(ProviderCredentialError) as raised:
            await target.authorize("POST", "u", b"")
        assert "invalid_client" in str(raised.value.message)
        assert "wrong-secret-value" not in str(raised.value.message)


async def test_azure_managed_identity_without_imds_is_a_clear_credential_error() -> None:
    async with serve_entra_mock() as mock:  # a host that answers 404 to the IMDS path
        auth = {
            "type": "azure",
            "azure": {"endpoint": "https://r.openai.azure.com", "use_managed_identity": True},
        }
        target = BUILDERS["azure"](
            _registry("azure", {"imds_url": f"{mock.url}/metadata/identity/oauth2/token"}), auth
        )
        with pytest.raises(ProviderCredentialError) as raised:
            await target.authorize("GET", "u", b"")
        assert "managed identity is not available on this host" in str(raised.value.message)


def test_azure_api_key_path_is_unchanged() -> None:
    auth = {
        "type": "azure",
        "azure": {
            "endpoint": "https://r.openai.azure.com/api/projects/x",
            "api_key": "k",
            "version": "2025-01-01",
        },
    }
    target = BUILDERS["azure"](_registry("azure", {}), auth)
    assert not target.needs_authorize
    assert target.headers["api-key"] == "k"
    assert (
        target.chat_url("d")
        == "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2025-01-01"
    )


# -- through the client codecs (what the translating forwarder will do) ---------------------


def test_openai_chat_tool_round_trip_translates_through_gemini() -> None:
    from trustgate_proxy.domain.formats import INBOUND

    client = INBOUND["openai_chat"]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "additionalProperties": False,
                },
                "strict": True,
            },
        }
    ]
    first = client.decode_request(
        {"model": "g", "messages": [{"role": "user", "content": "Weather?"}], "tools": tools}
    )
    body = CODEC.encode_request(first)
    assert body["tools"][0]["functionDeclarations"][0]["parameters"] == {
        "type": "OBJECT",
        "properties": {"city": {"type": "STRING"}},
    }
    answer = CODEC.decode_response(
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
                        ],
                        "role": "model",
                    },
                    "finishReason": "STOP",
                }
            ],
            "responseId": "R1",
        }
    )
    out = client.encode_response(answer)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "call_R1_0"
    second = client.decode_request(
        {
            "model": "g",
            "messages": [
                {"role": "user", "content": "Weather?"},
                choice["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
            ],
            "tools": tools,
        }
    )
    contents = CODEC.encode_request(second)["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}],
    }


def test_a_gemini_stream_reencodes_for_anthropic_clients() -> None:
    from trustgate_proxy.domain.formats import INBOUND

    encoder = INBOUND["anthropic"].stream_encoder("g")
    out = transcode(CODEC.stream_decoder(), encoder, chunks_of(STREAM, 3))
    text = out.decode()
    assert "event: message_start" in text and text.rstrip().endswith("}")
    assert '"stop_reason":"tool_use"' in text.replace(" ", "")
    assert "event: message_stop" in text
