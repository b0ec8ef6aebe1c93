"""Load-balancing strategies and failure recognition, without I/O: weights hold their
ratio, ip-hash keeps a client on its route and moves about 1/N of clients when a route
is added, least-connections never counts below zero, latency prefers the faster route,
and each provider's real context-window and content-filter errors are recognised (a
plain 400 is not)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway, Registry
from trustgate_proxy.domain.call import Call
from trustgate_proxy.domain.exchange import Exchange
from trustgate_proxy.domain.outcomes import (
    CONTENT_FILTER,
    CONTEXT_WINDOW,
    HTTP_5XX,
    HTTP_429,
    TIMEOUT,
    failure_of_status,
    filtered_answer,
    provider_error_in,
)
from trustgate_proxy.domain.routing import Binding, Route
from trustgate_proxy.domain.strategies import (
    IpHash,
    Latency,
    LeastConnections,
    StrategyDeps,
    WeightedRoundRobin,
    trusted_networks,
)

NOW = datetime(2025, 1, 1, tzinfo=UTC)
GW = uuid7()


def route(name: str, weight: int = 1) -> Route:
    registry = Registry(
        id=uuid7(), gateway_id=GW, created_at=NOW, updated_at=NOW, name=name, provider="openai"
    )
    return Route(Binding(registry, "openai", weight), "m")


def exchange(peer: str | None, headers: list[tuple[bytes, bytes]] | None = None) -> Exchange:
    gateway = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")
    consumer = Consumer(
        id=uuid7(), gateway_id=GW, created_at=NOW, updated_at=NOW, name="c", slug="abcdEFGH"
    )
    ex = Exchange(
        Call("t", "POST", "/v1/chat/completions", 0.0, 0.0), gateway, consumer, headers or []
    )
    ex.client_host = peer
    return ex


def first(strategy: Any, routes: tuple[Route, ...], ex: Exchange) -> Route:
    return asyncio.run(strategy.order(routes, ex))[0]


def test_weighted_round_robin_holds_the_weights_within_2_percent_over_10000_picks() -> None:
    routes = (route("a", 3), route("b", 1), route("c", 6))
    strategy = WeightedRoundRobin()
    picks = Counter(strategy.pick(routes)[0].binding.registry.name for _ in range(10_000))
    for name, weight in (("a", 3), ("b", 1), ("c", 6)):
        assert abs(picks[name] / 10_000 - weight / 10) < 0.02 * weight / 10


def test_ip_hash_keeps_a_client_on_its_route_and_moves_about_one_in_n_when_one_is_added() -> None:
    routes = tuple(route(n) for n in "abcd")
    strategy = IpHash()
    clients = [f"10.0.{i // 250}.{i % 250}" for i in range(2000)]
    before = {c: first(strategy, routes, exchange(c)) for c in clients}
    assert all(first(strategy, routes, exchange(c)) is before[c] for c in clients[:50])
    grown = (*routes, route("e"))
    after = {c: first(strategy, grown, exchange(c)) for c in clients}
    moved = [c for c in clients if after[c].key != before[c].key]
    assert all(after[c] is grown[4] for c in moved)  # only to the new route
    assert 0.12 < len(moved) / len(clients) < 0.28  # ~1/5


def test_ip_hash_reads_x_forwarded_for_only_from_trusted_proxies() -> None:
    routes = tuple(route(n) for n in "abcdefgh")
    trusted = IpHash(deps=StrategyDeps(trusted_networks("10.0.0.0/8, 192.168.1.1")))
    hop = [(b"x-forwarded-for", b"203.0.113.7, 10.1.2.3")]
    assert trusted.client_of(exchange("10.9.9.9", hop)) == "203.0.113.7"
    assert trusted.client_of(exchange("198.51.100.1", hop)) == "198.51.100.1"  # untrusted peer
    assert IpHash().client_of(exchange("10.9.9.9", hop)) == "10.9.9.9"
    spoofed = [(b"x-forwarded-for", b"1.1.1.1, 203.0.113.7")]
    assert trusted.client_of(exchange("10.9.9.9", spoofed)) == "203.0.113.7"  # right-most
    a = first(trusted, routes, exchange("10.9.9.9", hop))
    b = first(trusted, routes, exchange("10.8.8.8", hop))
    assert a is b  # the same client behind two proxies


def test_least_connections_prefers_the_idle_route_and_never_goes_below_zero() -> None:
    a, b = route("a"), route("b")
    strategy = LeastConnections()
    strategy.started(a)
    assert first(strategy, (a, b), exchange(None)) is b
    strategy.finished(a, "success", 0.1)
    strategy.finished(a, "terminal", 0.0)  # a stray second end
    assert strategy.in_flight == {}
    strategy.started(b)
    assert first(strategy, (a, b), exchange(None)) is a


def test_latency_prefers_the_route_with_the_faster_first_byte_and_fewer_errors() -> None:
    fast, slow = route("fast"), route("slow")
    strategy = Latency()
    for _ in range(5):
        strategy.finished(fast, "success", 0.05)
        strategy.finished(slow, "success", 0.5)
    picks = Counter(first(strategy, (fast, slow), exchange(None)).key for _ in range(200))
    assert picks[fast.key] == 200  # two routes: both are always the two choices
    for _ in range(10):
        strategy.finished(fast, "retryable", 0.0)
    assert first(strategy, (fast, slow), exchange(None)) is slow


def _body(doc: Any) -> bytes:
    return orjson.dumps(doc)


# Real error bodies, as each provider documents or sends them.
CONTEXT_ERRORS = {
    "openai": _body(
        {
            "error": {
                "message": "This model's maximum context length is 8192 tokens. However, your"
                " messages resulted in 8241 tokens. Please reduce the length of the messages.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    ),
    "azure": _body(
        {
            "error": {
                "message": "This model's maximum context length is 128000 tokens.",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    ),
    "anthropic": _body(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "prompt is too long: 208310 tokens > 200000 maximum",
            },
        }
    ),
    "gemini": _body(
        {
            "error": {
                "code": 400,
                "message": "The input token count (1200293) exceeds the maximum number of"
                " tokens allowed (1048576).",
                "status": "INVALID_ARGUMENT",
            }
        }
    ),
    "bedrock": _body({"message": "Input is too long for requested model."}),
}
FILTER_ERRORS = {
    "azure": _body(
        {
            "error": {
                "message": "The response was filtered due to the prompt triggering Azure"
                " OpenAI's content management policy. Please modify your prompt and retry.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {"hate": {"filtered": True, "severity": "high"}},
                },
            }
        }
    ),
    "openai": _body(
        {
            "error": {
                "message": "Invalid prompt: your prompt was flagged as potentially violating"
                " our usage policy.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_prompt",
            }
        }
    ),
    "anthropic": _body(
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "Output blocked by content filtering policy",
            },
        }
    ),
}
FILTERED_ANSWERS = {
    "azure": {
        "choices": [{"index": 0, "message": {"content": ""}, "finish_reason": "content_filter"}]
    },
    "anthropic": {"type": "message", "content": [], "stop_reason": "refusal"},
    "gemini": {"promptFeedback": {"blockReason": "SAFETY"}},
    "gemini-candidate": {"candidates": [{"content": {}, "finishReason": "SAFETY"}]},
    "bedrock": {"output": {"message": {"content": []}}, "stopReason": "guardrail_intervened"},
}


@pytest.mark.parametrize("provider", sorted(CONTEXT_ERRORS))
def test_each_providers_context_window_error_is_recognised(provider: str) -> None:
    assert failure_of_status(400, CONTEXT_ERRORS[provider]) == CONTEXT_WINDOW


@pytest.mark.parametrize("provider", sorted(FILTER_ERRORS))
def test_each_providers_content_filter_refusal_is_recognised(provider: str) -> None:
    assert failure_of_status(400, FILTER_ERRORS[provider]) == CONTENT_FILTER


@pytest.mark.parametrize("provider", sorted(FILTERED_ANSWERS))
def test_a_2xx_answer_stopped_by_a_safety_system_is_recognised(provider: str) -> None:
    assert filtered_answer(_body(FILTERED_ANSWERS[provider]))


def test_plain_answers_and_plain_errors_match_no_trigger() -> None:
    plain_400 = _body({"error": {"message": "Invalid 'temperature'", "code": "invalid_value"}})
    assert failure_of_status(400, plain_400) is None
    assert failure_of_status(401, CONTEXT_ERRORS["openai"]) is None  # not a size problem
    answer = _body(
        {"choices": [{"message": {"content": "the SAFETY manual"}, "finish_reason": "stop"}]}
    )
    assert not filtered_answer(answer)
    assert not provider_error_in(answer)
    assert provider_error_in(_body({"error": {"message": "overloaded"}}))
    assert [failure_of_status(s, b"") for s in (500, 503, 0, 429, 408)] == [
        HTTP_5XX,
        HTTP_5XX,
        HTTP_5XX,
        HTTP_429,
        TIMEOUT,
    ]
