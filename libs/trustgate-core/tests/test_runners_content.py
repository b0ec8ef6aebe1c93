"""The content runners on their own: cors answers, model and tool allow-lists, and
regex_replace on requests, whole answers and streams cut anywhere (the proxy tests drive
them through the SDKs)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from trustgate_core.errors import PolicyRejected
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway
from trustgate_core.models.policy import Mode
from trustgate_core.plugins.cors import CorsSettings
from trustgate_core.plugins.guards import ModelAllowlistSettings, ToolAllowlistSettings
from trustgate_core.plugins.transform import RegexReplaceSettings
from trustgate_core.policy import PolicyDeps, PolicyExchange, PolicyInfo
from trustgate_core.policy.runners.content import (
    RUNNERS,
    ModelAllowlistRunner,
    ToolAllowlistRunner,
)
from trustgate_core.policy.runners.cors import CorsRunner
from trustgate_core.policy.runners.rewrite import (
    MAX_HOLD,
    RegexReplaceRunner,
    ResponseRewriter,
    Rules,
)

NOW = datetime.now(UTC)
GW = uuid7()
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")
CONSUMER = Consumer(id=uuid7(), gateway_id=GW, created_at=NOW, updated_at=NOW, name="c", slug="c")
APP = "https://app.example.com"


class Call(PolicyExchange):
    __slots__ = ("_path", "route_model")

    def __init__(
        self, path: str, doc: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(GATEWAY, CONSUMER, headers or [])
        self._path = path
        self.doc = doc
        self.route_model: str | None = None

    @property
    def path(self) -> str:
        return self._path

    @property
    def requested_model(self) -> str | None:
        model = self.doc.get("model")
        return model if isinstance(model, str) else self.route_model


def info(plugin: str, mode: Mode = "enforce") -> PolicyInfo:
    return PolicyInfo(id=uuid7(), name=plugin, plugin=plugin, mode=mode)


def cors(mode: Mode = "enforce", **settings: Any) -> CorsRunner:
    return CorsRunner(info("cors", mode), CorsSettings.model_validate(settings), PolicyDeps())


def allowlist(mode: Mode = "enforce", **settings: Any) -> ModelAllowlistRunner:
    return ModelAllowlistRunner(
        info("model_allowlist", mode), ModelAllowlistSettings.model_validate(settings), PolicyDeps()
    )


def tools(mode: Mode = "enforce", **settings: Any) -> ToolAllowlistRunner:
    return ToolAllowlistRunner(
        info("tool_allowlist", mode), ToolAllowlistSettings.model_validate(settings), PolicyDeps()
    )


def regex(target: str, *rules: dict[str, Any], mode: Mode = "enforce") -> RegexReplaceRunner:
    settings = RegexReplaceSettings.model_validate({"target": target, "rules": list(rules)})
    return RegexReplaceRunner(info("regex_replace", mode), settings, PolicyDeps())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_content_plugins_are_registered() -> None:
    assert set(RUNNERS) == {"cors", "model_allowlist", "tool_allowlist", "regex_replace"}


# --------------------------------------------------------------------------- cors


def test_an_allowed_origin_is_echoed_with_vary_and_the_gateway_headers_exposed() -> None:
    runner = cors(allowed_origins=[APP], expose_headers=["X-My-Header"])
    headers = dict(runner.allow(APP))
    assert headers[b"access-control-allow-origin"] == APP.encode()
    assert headers[b"vary"] == b"Origin"
    exposed = headers[b"access-control-expose-headers"].decode().split(", ")
    assert {"X-AG-Trace-Id", "X-RateLimit-Consumer-Remaining", "X-My-Header"} <= set(exposed)
    assert b"access-control-allow-credentials" not in headers
    assert runner.allow("https://evil.example.com") == []


def test_a_wildcard_origin_answers_star_and_credentials_echo_the_origin() -> None:
    assert (
        dict(cors(allowed_origins=["*"]).allow("https://any.where"))[b"access-control-allow-origin"]
        == b"*"
    )
    with_credentials = dict(cors(allowed_origins=[APP], allow_credentials=True).allow(APP))
    assert with_credentials[b"access-control-allow-origin"] == APP.encode()
    assert with_credentials[b"access-control-allow-credentials"] == b"true"


def test_origin_globs_match_subdomains_only() -> None:
    runner = cors(allowed_origins=["https://*.example.com"])
    assert runner.allowed("https://a.example.com")
    assert runner.allowed("HTTPS://B.EXAMPLE.COM")
    assert not runner.allowed("https://example.com.evil.io")
    assert not runner.allowed("http://a.example.com")


def test_a_preflight_allows_the_sdks_headers_and_refuses_others() -> None:
    runner = cors(allowed_origins=[APP], max_age=3600)
    asked = (
        "authorization, content-type, x-stainless-lang, x-stainless-retry-count, "
        "anthropic-version, anthropic-dangerous-direct-browser-access, x-api-key"
    )
    answer = runner.preflight(APP, "POST", asked)
    headers = dict(answer.headers)
    assert answer.status == 204
    assert headers[b"access-control-allow-origin"] == APP.encode()
    assert headers[b"access-control-allow-headers"].decode() == asked
    assert headers[b"access-control-allow-methods"] == b"GET, POST, OPTIONS"
    assert headers[b"access-control-max-age"] == b"3600"
    assert b"Origin" in headers[b"vary"]
    for refused, code in (
        (runner.preflight("https://evil.io", "POST", None), "cors_origin_not_allowed"),
        (runner.preflight(APP, "DELETE", None), "cors_method_not_allowed"),
        (runner.preflight(APP, "POST", "x-secret-thing"), "cors_header_not_allowed"),
    ):
        assert refused.status == 403
        assert orjson.loads(refused.body)["error"] == code
        assert not any(name.startswith(b"access-control-") for name, _ in refused.headers)
    extra = cors(allowed_origins=[APP], allowed_headers=["X-Secret-Thing"])
    assert extra.preflight(APP, "POST", "x-secret-thing").status == 204


def test_a_browser_request_from_a_disallowed_origin_is_refused_unless_observed() -> None:
    evil = [(b"origin", b"https://evil.io")]
    with pytest.raises(PolicyRejected) as refused:
        run(cors(allowed_origins=[APP]).pre_request(Call("/v1/chat/completions", {}, evil)))
    assert refused.value.status == 403 and refused.value.code == "cors_origin_not_allowed"
    assert run(cors(allowed_origins=[APP]).pre_request(Call("/v1/chat/completions", {}))) is None
    ok = [(b"origin", APP.encode())]
    assert run(cors(allowed_origins=[APP]).pre_request(Call("/v1/messages", {}, ok))) is None


# --------------------------------------------------------------------------- model_allowlist


def test_a_model_off_the_list_is_refused_with_the_list() -> None:
    runner = allowlist(allowed_models=["gpt-4o*", "claude-*"])
    for model in ("gpt-4o-mini", "claude-sonnet-4", "@openai/gpt-4o"):
        assert run(runner.pre_request(Call("/v1/chat/completions", {"model": model}))) is None
    with pytest.raises(PolicyRejected) as refused:
        run(runner.pre_request(Call("/v1/chat/completions", {"model": "o1-pro"})))
    assert refused.value.status == 403 and refused.value.code == "model_not_allowed"
    assert refused.value.body() == {
        "error": {
            "type": "model_not_allowed",
            "model": "o1-pro",
            "allowed": ["gpt-4o*", "claude-*"],
        }
    }


def test_substitute_and_default_rewrite_the_model_but_observe_only_records() -> None:
    settings: dict[str, Any] = {
        "allowed_models": ["gpt-4o-mini"],
        "behavior_on_disallowed": "substitute",
        "substitute_with": "gpt-4o-mini",
        "default_model": "gpt-4o-mini",
    }
    for doc in ({"model": "o1-pro"}, {}):
        call = Call("/v1/chat/completions", dict(doc))
        run(allowlist(**settings).pre_request(call))
        assert call.doc["model"] == "gpt-4o-mini" and call.dirty
        observed = Call("/v1/chat/completions", dict(doc))
        with pytest.raises(PolicyRejected):
            run(allowlist("observe", **settings).pre_request(observed))
        assert observed.doc == doc and not observed.dirty


def test_without_a_default_the_route_s_model_is_checked() -> None:
    call = Call("/v1/chat/completions", {})
    call.route_model = "o1-pro"
    with pytest.raises(PolicyRejected):
        run(allowlist(allowed_models=["gpt-4o-mini"]).pre_request(call))
    call.route_model = "gpt-4o-mini"
    assert run(allowlist(allowed_models=["gpt-4o-mini"]).pre_request(call)) is None


# --------------------------------------------------------------------------- tool_allowlist


def chat_tool(name: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": {}}}


def test_tools_are_filtered_in_each_format_and_a_forced_removed_tool_is_dropped() -> None:
    runner = tools(allow_tools=["get_*"], deny_tools=["get_secret"])
    chat = Call(
        "/v1/chat/completions",
        {
            "tools": [chat_tool("get_weather"), chat_tool("get_secret"), chat_tool("rm_rf")],
            "tool_choice": {"type": "function", "function": {"name": "get_secret"}},
        },
    )
    run(runner.pre_request(chat))
    assert [t["function"]["name"] for t in chat.doc["tools"]] == ["get_weather"]
    assert "tool_choice" not in chat.doc and chat.dirty
    messages = Call(
        "/v1/messages",
        {"tools": [{"name": "get_weather"}, {"name": "rm_rf"}], "tool_choice": {"type": "any"}},
    )
    run(runner.pre_request(messages))
    assert messages.doc["tools"] == [{"name": "get_weather"}]
    assert messages.doc["tool_choice"] == {"type": "any"}
    responses = Call(
        "/v1/responses",
        {
            "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}],
            "tool_choice": {
                "type": "allowed_tools",
                "mode": "auto",
                "tools": [{"type": "function", "name": "get_weather"}, {"type": "web_search"}],
            },
        },
    )
    run(runner.pre_request(responses))
    assert responses.doc["tools"] == [{"type": "function", "name": "get_weather"}]
    assert responses.doc["tool_choice"]["tools"] == [{"type": "function", "name": "get_weather"}]


def test_nothing_left_follows_on_empty_after_filter() -> None:
    doc = {"tools": [chat_tool("rm_rf")], "tool_choice": "required", "parallel_tool_calls": True}
    with pytest.raises(PolicyRejected) as refused:
        run(tools(deny_tools=["*"]).pre_request(Call("/v1/chat/completions", dict(doc))))
    assert refused.value.status == 403
    assert refused.value.body()["error"] == {
        "type": "no_tools_allowed",
        "requested": ["rm_rf"],
        "allowed_after_filter": [],
    }
    empty = Call("/v1/chat/completions", dict(doc))
    run(tools(deny_tools=["*"], on_empty_after_filter="pass_through_empty").pre_request(empty))
    assert empty.doc == {"tools": []}
    stripped = Call("/v1/chat/completions", dict(doc))
    run(tools(deny_tools=["*"], on_empty_after_filter="strip_tools_field").pre_request(stripped))
    assert stripped.doc == {}


def test_observed_tool_filtering_changes_nothing() -> None:
    call = Call("/v1/chat/completions", {"tools": [chat_tool("a"), chat_tool("b")]})
    with pytest.raises(PolicyRejected) as recorded:
        run(tools("observe", deny_tools=["a"]).pre_request(call))
    assert recorded.value.code == "tools_filtered"
    assert len(call.doc["tools"]) == 2 and not call.dirty


# --------------------------------------------------------------------------- regex_replace

SSN = {"pattern": r"\b\d{3}-\d{2}-\d{4}\b", "replacement": "[SSN]"}


def test_request_text_is_rewritten_in_every_format_never_the_json_around_it() -> None:
    runner = regex("request", SSN, {"pattern": "user", "replacement": "USER"})
    chat = Call(
        "/v1/chat/completions",
        {
            "model": "user-model",
            "messages": [
                {"role": "user", "content": "my ssn is 123-45-6789"},
                {"role": "user", "content": [{"type": "text", "text": "and 987-65-4321"}]},
            ],
        },
    )
    run(runner.pre_request(chat))
    assert chat.dirty and chat.doc["model"] == "user-model"
    assert chat.doc["messages"][0] == {"role": "user", "content": "my ssn is [SSN]"}
    assert chat.doc["messages"][1]["content"][0]["text"] == "and [SSN]"
    messages = Call(
        "/v1/messages",
        {
            "system": [{"type": "text", "text": "user 111-22-3333"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t", "content": "444-55-6666"}
                    ],
                }
            ],
        },
    )
    run(runner.pre_request(messages))
    assert messages.doc["system"][0]["text"] == "USER [SSN]"
    assert messages.doc["messages"][0]["content"][0]["content"] == "[SSN]"
    responses = Call("/v1/responses", {"instructions": "a user", "input": "777-88-9999"})
    run(runner.pre_request(responses))
    assert responses.doc == {"instructions": "a USER", "input": "[SSN]"}
    untouched = Call("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    run(runner.pre_request(untouched))
    assert not untouched.dirty


def test_go_style_group_references_expand() -> None:
    rules = Rules(
        RegexReplaceSettings.model_validate(
            {
                "target": "request",
                "rules": [
                    {"pattern": r"(\w+)@(?P<host>\w+)\.com", "replacement": "$1 at ${host} $$ $9"}
                ],
            }
        ).rules
    )
    assert rules.apply("mail bob@corp.com") == "mail bob at corp $ "


def rewriter(path: str, *rules: dict[str, Any]) -> ResponseRewriter:
    settings = RegexReplaceSettings.model_validate({"target": "response", "rules": list(rules)})
    return ResponseRewriter(Rules(settings.rules), path)


def chat_stream(*pieces: str) -> bytes:
    chunks = [{"choices": [{"index": 0, "delta": {"content": p}}]} for p in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    return body + b"data: [DONE]\n\n"


def chat_text(stream: bytes) -> tuple[str, list[bytes]]:
    text, others = "", []
    for frame in stream.split(b"\n\n"):
        if not frame:
            continue
        data = frame.removeprefix(b"data: ")
        if data == b"[DONE]":
            others.append(data)
            continue
        for choice in orjson.loads(data)["choices"]:
            text += choice["delta"].get("content") or ""
            if choice.get("finish_reason"):
                others.append(choice["finish_reason"].encode())
    return text, others


def feed_in_pieces(filter_: ResponseRewriter, body: bytes, size: int) -> bytes:
    """``body`` fed as the relays feed it: chunks cut after a line end."""
    out, pending = b"", b""
    for start in range(0, len(body), size):
        chunk = pending + body[start : start + size]
        cut = chunk.rfind(b"\n") + 1
        pending = chunk[cut:]
        if cut:
            out += filter_.feed(chunk[:cut])
    return out + filter_.feed(pending) + filter_.finish()


@pytest.mark.parametrize("size", [1, 7, 64, 10_000])
def test_a_match_split_across_chat_events_is_replaced_whatever_the_chunking(size: int) -> None:
    pieces = ["Call me", " at 555-", "12", "34 or", " 555-9999", " tonight"]
    rule = {"pattern": r"\b\d{3}-\d{4}\b", "replacement": "[PHONE]"}
    out = feed_in_pieces(rewriter("/v1/chat/completions", rule), chat_stream(*pieces), size)
    text, others = chat_text(out)
    assert text == "Call me at [PHONE] or [PHONE] tonight"
    assert others == [b"stop", b"[DONE]"]


def test_an_unbounded_rule_holds_at_most_its_bound_and_flushes_at_the_end() -> None:
    rules = Rules(
        RegexReplaceSettings.model_validate(
            {"target": "response", "rules": [{"pattern": r"\d+", "replacement": "#"}]}
        ).rules
    )
    assert rules.rules[0].hold == MAX_HOLD
    stream = rules.stream()
    out = stream.feed("a" * 1000 + " 12")
    assert len(out) >= 1003 - MAX_HOLD
    out += stream.feed("34 b") + stream.flush()
    assert out == "a" * 1000 + " # b"


def test_anthropic_and_responses_streams_keep_other_events_in_order() -> None:
    def sse(name: str, doc: dict[str, Any]) -> bytes:
        return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(doc) + b"\n\n"

    rule = {"pattern": "sec ret", "replacement": "***"}
    anthropic = b"".join(
        [
            sse("message_start", {"type": "message_start", "message": {}}),
            sse("content_block_start", {"type": "content_block_start", "index": 0}),
            sse("ping", {"type": "ping"}),
            *(
                sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": t},
                    },
                )
                for t in ("the sec", " ret is", " out")
            ),
            sse("content_block_stop", {"type": "content_block_stop", "index": 0}),
            sse("message_stop", {"type": "message_stop"}),
        ]
    )
    out = feed_in_pieces(rewriter("/v1/messages", rule), anthropic, 5)
    events = [orjson.loads(f.split(b"data: ", 1)[1]) for f in out.split(b"\n\n") if f]
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-2:] == ["content_block_stop", "message_stop"]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "the *** is out"

    ids = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    responses = b"".join(
        [
            *(
                sse(
                    "response.output_text.delta",
                    {"type": "response.output_text.delta", **ids, "delta": t},
                )
                for t in ("the sec", " ret")
            ),
            sse(
                "response.output_text.done",
                {"type": "response.output_text.done", **ids, "text": "the sec ret"},
            ),
            sse(
                "response.completed",
                {
                    "type": "response.completed",
                    "response": {
                        "output": [
                            {
                                "type": "message",
                                "content": [{"type": "output_text", "text": "the sec ret"}],
                            }
                        ]
                    },
                },
            ),
        ]
    )
    out = feed_in_pieces(rewriter("/v1/responses", rule), responses, 3)
    events = [orjson.loads(f.split(b"data: ", 1)[1]) for f in out.split(b"\n\n") if f]
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == "the ***"
    assert [e["type"] for e in events][-2:] == ["response.output_text.done", "response.completed"]
    assert events[-2]["text"] == "the ***"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "the ***"


def test_events_without_text_pass_through_byte_for_byte() -> None:
    body = b': keep-alive\n\nevent: ping\r\ndata: {"type":"ping"}\r\n\r\n'
    assert feed_in_pieces(rewriter("/v1/messages", SSN), body, 4) == body


def test_whole_answers_are_rewritten_only_where_text_is() -> None:
    chat = orjson.dumps(
        {"model": "123-45-6789", "choices": [{"message": {"content": "id 123-45-6789"}}]}
    )
    out = orjson.loads(rewriter("/v1/chat/completions", SSN).whole(chat))
    assert out == {"model": "123-45-6789", "choices": [{"message": {"content": "id [SSN]"}}]}
    messages = orjson.dumps({"content": [{"type": "text", "text": "123-45-6789"}]})
    assert (
        orjson.loads(rewriter("/v1/messages", SSN).whole(messages))["content"][0]["text"] == "[SSN]"
    )
    clean = orjson.dumps({"choices": [{"message": {"content": "nothing"}}]})
    assert rewriter("/v1/chat/completions", SSN).whole(clean) is clean


def test_observe_never_rewrites() -> None:
    call = Call("/v1/chat/completions", {"messages": [{"role": "user", "content": "123-45-6789"}]})
    with pytest.raises(PolicyRejected):
        run(regex("request", SSN, mode="observe").pre_request(call))
    assert call.doc["messages"][0]["content"] == "123-45-6789" and not call.dirty
    response = Call("/v1/chat/completions", {})
    run(regex("response", SSN, mode="observe").pre_response(response))
    assert response.response_filters == []


# --------------------------------------------------------------------------- cost


def test_cpu_per_call_stays_in_microseconds() -> None:
    """Not a benchmark: a guard against per-call compiling or parsing creeping in."""
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello " * 20}]}
    runners = [
        cors(allowed_origins=[APP]),
        allowlist(allowed_models=["gpt-4o*", "claude-*"]),
        tools(deny_tools=["rm_*"]),
        regex("request", SSN),
    ]
    headers = [(b"origin", APP.encode())]

    async def loop() -> float:
        call = Call("/v1/chat/completions", chat, headers)
        started = time.process_time()
        for _ in range(2000):
            for runner in runners:
                await runner.pre_request(call)
        return (time.process_time() - started) / 2000 * 1e6

    assert asyncio.run(loop()) < 200
