"""The request event names every upstream attempt of a call (where it went, how it ended,
its status and latency), the last attempt's outcome and the call's session; the exported
event's ``status.outcome`` is that last attempt's; events written before these fields
existed still decode."""

from __future__ import annotations

from uuid import UUID

import jsonschema
import orjson

from trustgate_core.events.requests import RequestAttempt, RequestEvent, decode_request_event
from trustgate_core.telemetry.event import export_event, exported_event_json_schema
from trustgate_proxy.domain.call import AttemptRecord, Call, event_payload
from trustgate_testkit.proxy.local import EventLog, local_proxy
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.sdk_clients import openai_sdk
from trustgate_testkit.proxy.server import poll, until_known

PRIMARY = UUID(int=11)
BACKUP = UUID(int=12)


def finished_call(status: int = 200) -> Call:
    call = Call("cd" * 16, "POST", "/v1/chat/completions", 10.0, 1_700_000_000.0)
    call.gateway_id = UUID(int=1)
    call.status = status
    call.ended = 10.5
    return call


def event_of(call: Call) -> RequestEvent:
    return decode_request_event(orjson.dumps(event_payload(call)))


def test_a_retried_then_fallen_back_call_lists_each_attempt_in_order() -> None:
    call = finished_call()
    call.attempts = [
        AttemptRecord(PRIMARY, "openai", "gpt-4o", "retryable", 503, 0.0123, 1),
        AttemptRecord(PRIMARY, "openai", "gpt-4o", "retryable", 0, 0.2, 2),
        AttemptRecord(BACKUP, "anthropic", "claude-3-5-haiku", "success", 200, 0.4, 3, True),
    ]
    event = event_of(call)
    assert event.attempts == [
        RequestAttempt(
            registry_id=PRIMARY,
            provider="openai",
            attempt=1,
            fallback=False,
            route_model="gpt-4o",
            outcome="retryable",
            status_code=503,
            latency_ms=12.3,
        ),
        RequestAttempt(
            registry_id=PRIMARY,
            provider="openai",
            attempt=2,
            route_model="gpt-4o",
            outcome="retryable",
            status_code=None,  # no answer (a transport error)
            latency_ms=200.0,
        ),
        RequestAttempt(
            registry_id=BACKUP,
            provider="anthropic",
            attempt=3,
            fallback=True,
            route_model="claude-3-5-haiku",
            outcome="success",
            status_code=200,
            latency_ms=400.0,
        ),
    ]
    assert event.outcome == "success"
    exported = export_event(event)
    assert exported.status.outcome == "success"
    assert [(a.attempt, a.fallback, a.status_code) for a in exported.attempts] == [
        (1, False, 503),
        (2, False, None),
        (3, True, 200),
    ]
    jsonschema.validate(exported.model_dump(mode="json"), exported_event_json_schema())


def test_the_outcome_is_the_last_attempts_whatever_the_status_the_client_got() -> None:
    # every route answered 503: the last answer is relayed, and it was retryable
    call = finished_call(503)
    call.error_kind = "upstream_status"
    call.attempts = [AttemptRecord(PRIMARY, "openai", None, "retryable", 503, 0.01)]
    assert export_event(event_of(call)).status.outcome == "retryable"
    # a 400 from the upstream is terminal
    call = finished_call(400)
    call.error_kind = "upstream_status"
    call.attempts = [AttemptRecord(PRIMARY, "openai", None, "terminal", 400, 0.01)]
    event = event_of(call)
    assert (event.outcome, export_event(event).status.outcome) == ("terminal", "terminal")
    # a client that left mid-stream after a successful open: the attempt succeeded
    call = finished_call(499)
    call.error_kind = "client_disconnected"
    call.attempts = [AttemptRecord(PRIMARY, "openai", None, "success", 200, 0.01)]
    assert export_event(event_of(call)).status.outcome == "success"


def test_a_call_refused_before_any_upstream_has_no_attempts_and_an_outcome_from_its_status() -> (
    None
):
    call = finished_call(401)
    call.error_kind = "unauthenticated"
    event = event_of(call)
    assert (event.attempts, event.outcome, event.session_id) == ([], None, None)
    assert export_event(event).status.outcome == "terminal"


def test_the_session_is_in_the_event_and_the_export() -> None:
    call = finished_call()
    call.session_id = "conv-42"
    event = event_of(call)
    assert event.session_id == "conv-42"
    assert export_event(event).session_id == "conv-42"


def test_an_event_from_before_attempts_and_sessions_still_decodes() -> None:
    doc = orjson.loads(orjson.dumps(event_payload(finished_call())))
    for key in ("attempts", "outcome", "session_id"):
        del doc[key]
    event = decode_request_event(orjson.dumps(doc))
    assert (event.attempts, event.outcome, event.session_id) == ([], None, None)
    assert export_event(event).status.outcome == "success"


def test_an_outcome_unknown_to_this_version_still_decodes_and_exports_from_the_status() -> None:
    doc = orjson.loads(orjson.dumps(event_payload(finished_call(502))))
    doc["outcome"] = "hedged"
    event = decode_request_event(orjson.dumps(doc))
    assert event.outcome == "hedged"
    assert export_event(event).status.outcome == "retryable"


async def test_a_call_rescued_by_a_second_route_reports_both_attempts_in_its_event() -> None:
    """Through the in-process proxy: the first route answers 429 (with a long
    Retry-After, so it is not retried), the second serves the call."""
    async with serve_mock("busy") as busy, serve_mock("spare") as spare, local_proxy() as proxy:
        tenant = await proxy.new_tenant()
        first = await tenant.add_registry("busy", busy.url)
        second = await tenant.add_registry(
            "spare",
            "",
            options={"base_url": spare.url, "model_mapping": {"gpt-4o-ratelimited": "gpt-4o"}},
        )
        await tenant.add_consumer("app", ["busy", "spare"])
        await until_known(proxy, tenant)
        log = EventLog(proxy.sink, tenant.gateway.id)
        raw = await openai_sdk(proxy, tenant).chat.completions.with_raw_response.create(
            model="gpt-4o-ratelimited", messages=[{"role": "user", "content": "Hi"}]
        )
        assert raw.parse().choices[0].message.content == "Hello from spare"
        trace = raw.headers["x-ag-trace-id"]
        await poll(lambda: bool(log.by_trace(trace)), 5.0)
        (event,) = log.by_trace(trace)
    assert [
        (a.registry_id, a.attempt, a.route_model, a.outcome, a.status_code) for a in event.attempts
    ] == [
        (first.id, 1, "gpt-4o-ratelimited", "retryable", 429),
        (second.id, 2, "gpt-4o", "success", 200),
    ]
    assert event.outcome == "success"
    assert export_event(event).status.outcome == "success"
