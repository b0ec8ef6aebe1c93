"""The request event's policy fields: each policy's decision in the order it ran, the
time policies took (out of ``gateway_ms``), a policy's own cost over the catalog's; and
events written before these fields existed still decode."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import orjson

from trustgate_core.events.requests import PolicyDecision, RequestEvent, decode_request_event
from trustgate_core.policy import PolicyRecord
from trustgate_core.pricing import Cost
from trustgate_proxy.domain.call import Call, event_payload


@dataclass
class Decision:  # the engine's record, duck-typed
    policy_id: UUID | None
    name: str
    plugin: str
    stage: str
    decision: str
    latency: float
    status_code: int
    error: str | None

    as_event = PolicyRecord.as_event


def finished_call() -> Call:
    call = Call("ab" * 16, "POST", "/v1/chat/completions", 10.0, 1_700_000_000.0)
    call.gateway_id = UUID(int=1)
    call.status = 200
    call.upstream_start, call.upstream_ttfb, call.upstream_end = 10.001, 10.003, 10.004
    call.ended = 10.005
    return call


def event_of(call: Call) -> RequestEvent:
    return RequestEvent.model_validate_json(orjson.dumps(event_payload(call)))


def test_each_policy_decision_is_in_the_event_and_their_time_is_not_the_gateways() -> None:
    call = finished_call()
    call.policy_chain = [
        Decision(UUID(int=7), "per minute", "rate_limiter", "pre_request", "pass", 0.0004, 0, None),
        Decision(
            None,
            "budget",
            "token_rate_limiter",
            "pre_request",
            "observe",
            0.0002,
            429,
            "redis: timeout",
        ),
    ]
    call.policies_time = 0.0006
    event = event_of(call)
    assert event.policy_chain == [
        PolicyDecision(
            policy_id=UUID(int=7),
            name="per minute",
            plugin="rate_limiter",
            stage="pre_request",
            decision="pass",
            latency_ms=0.4,
        ),
        PolicyDecision(
            name="budget",
            plugin="token_rate_limiter",
            stage="pre_request",
            decision="observe",
            latency_ms=0.2,
            status_code=429,
            error="redis: timeout",
        ),
    ]
    t = event.timings
    assert (t.total_ms, t.upstream_ms, t.policies_ms, t.gateway_ms) == (5.0, 3.0, 0.6, 1.4)


def test_a_call_without_policies_has_an_empty_chain_and_no_policy_time() -> None:
    assert Call("ab" * 16, "GET", "/", 0.0, 0.0).policy_chain == ()
    event = event_of(finished_call())
    assert event.policy_chain == [] and event.timings.policies_ms is None
    assert event.timings.gateway_ms == 2.0


def test_gateway_time_is_never_negative_when_policies_overlap_the_upstream() -> None:
    call = finished_call()
    call.policies_time = 0.004  # a post_response policy ran while the answer streamed
    assert event_of(call).timings.gateway_ms == 0.0


def test_a_policys_cost_wins_over_the_catalogs() -> None:
    call = finished_call()
    call.model, call.provider = "gpt-4o-mini", "openai"
    call.usage = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
    catalog = event_of(call).cost
    assert catalog is not None and catalog.total_usd == 0.00075
    call.cost = Cost(prompt_usd=0.001, completion_usd=0.002, cached_usd=0.0, total_usd=0.003)
    custom = event_of(call).cost
    assert custom is not None and custom.total_usd == 0.003


def test_no_usage_or_no_model_means_no_cost() -> None:
    call = finished_call()
    call.model = "gpt-4o-mini"
    assert event_of(call).cost is None
    call.model, call.usage = None, {"prompt_tokens": 5, "completion_tokens": 1}
    assert event_of(call).cost is None


def test_an_event_from_before_cost_and_policies_still_decodes() -> None:
    old = {
        "schema_version": 1,
        "trace_id": "0" * 32,
        "gateway_id": str(UUID(int=1)),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "timings": {"total_ms": 5.0, "upstream_ms": 3.0, "gateway_ms": 2.0},
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        "started_at": "2026-01-01T00:00:00Z",
        "ended_at": "2026-01-01T00:00:00.005Z",
    }
    event = decode_request_event(orjson.dumps(old))
    assert event.cost is None and event.policy_chain == []
    assert event.timings.policies_ms is None and event.timings.gateway_ms == 2.0


def test_a_policy_decision_or_error_kind_from_a_newer_proxy_still_decodes() -> None:
    call = finished_call()
    call.error_kind = "dollar_budget_exceeded"
    payload = event_payload(call)
    payload["policy_chain"] = [
        {
            "name": "n",
            "plugin": "p",
            "stage": "pre_request",
            "decision": "queued",
            "latency_ms": 1.0,
            "a_newer_field": True,
        },
    ]
    event = decode_request_event(orjson.dumps(payload))
    assert event.error_kind == "dollar_budget_exceeded"
    assert event.policy_chain[0].decision == "queued"
