"""A call's cost and its policies' decisions reach the exports: the Kafka record (in the
documented schema) and the OTLP log's flat attributes; events without them export as
before."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
from nats.aio.client import Client as NATS

from trustgate_core.events.requests import RequestEvent
from trustgate_core.telemetry import export_event, exported_event_json_schema
from trustgate_telemetry.domain.records import log_attributes
from trustgate_testkit import wait_for
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.otlp import serve_otlp_collector
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import new_tenant
from trustgate_testkit.telemetry import read_topic, run_telemetry

# gpt-4o-mini with the mock's usage: 8 fresh + 3 cached prompt tokens, 7 completion tokens
GPT_4O_MINI_COST = {
    "prompt_usd": 0.0000012,
    "completion_usd": 0.0000042,
    "cached_usd": 0.000000225,
    "total_usd": 0.000005625,
    "currency": "USD",
}


def request_event(**fields: Any) -> RequestEvent:
    now = datetime.now(UTC)
    return RequestEvent.model_validate(
        {
            "trace_id": uuid.uuid4().hex,
            "gateway_id": uuid.uuid4(),
            "method": "POST",
            "path": "/v1/chat/completions",
            "status": 200,
            "timings": {"total_ms": 9.0, "upstream_ms": 5.0, "gateway_ms": 1.5},
            "started_at": now,
            "ended_at": now,
            **fields,
        }
    )


async def test_a_priced_call_exports_its_cost_to_kafka_and_otlp(
    nats_server: NatsServer,
    bus: NATS,
    proxy: RunningProxy,
    upstream: MockUpstream,
    kafka: str,
    topic: str,
    chat: Any,
) -> None:
    async with (
        serve_otlp_collector() as collector,
        run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic),
        read_topic(kafka, topic) as kafka_records,
    ):
        tenant = await new_tenant(bus)
        await tenant.put_gateway(
            telemetry={
                "exporters": [
                    {
                        "name": "otlp",
                        "settings": {"endpoint": collector.grpc_endpoint, "insecure": True},
                    }
                ]
            }
        )
        await tenant.add_registry("primary", upstream.url)
        await tenant.add_consumer("app", ["primary"])
        await until_known(proxy, tenant)
        trace_id, _ = await chat(proxy, tenant)
        await wait_for(lambda: kafka_records.records and collector.logs, timeout=20)

    (doc,) = kafka_records.docs
    jsonschema.validate(doc, exported_event_json_schema())
    assert doc["trace_id"] == trace_id
    assert doc["cost"] == GPT_4O_MINI_COST
    assert doc["policy_chain"] == [] and doc["latency"]["policies_ms"] is None
    (log,) = collector.logs
    assert log.attributes["trustgate.cost.total_usd"] == 0.000005625
    assert not any(k.startswith("trustgate.policies.") for k in log.attributes)


def test_policy_decisions_and_their_time_are_exported() -> None:
    blocker = uuid.uuid4()
    event = request_event(
        status=429,
        error_kind="dollar_budget_exceeded",
        timings={"total_ms": 4.0, "gateway_ms": 1.5, "policies_ms": 2.5},
        policy_chain=[
            {
                "name": "rpm",
                "plugin": "rate_limiter",
                "stage": "pre_request",
                "decision": "pass",
                "latency_ms": 0.5,
            },
            {
                "policy_id": blocker,
                "name": "team budget",
                "plugin": "token_rate_limiter",
                "stage": "pre_request",
                "decision": "block",
                "latency_ms": 2.0,
                "status_code": 429,
            },
        ],
    )
    exported = export_event(event)
    jsonschema.validate(exported.model_dump(mode="json"), exported_event_json_schema())
    assert [(d.plugin, d.decision, d.status_code) for d in exported.policy_chain] == [
        ("rate_limiter", "pass", None),
        ("token_rate_limiter", "block", 429),
    ]
    assert exported.policy_chain[1].policy_id == blocker
    assert exported.latency.policies_ms == 2.5 and exported.cost is None

    attrs = log_attributes(exported, max_body_bytes=0)
    assert attrs["trustgate.policies.decisions"] == "rate_limiter=pass,token_rate_limiter=block"
    assert attrs["trustgate.policies.blocked_by"] == "team budget"
    assert attrs["trustgate.latency.policies_ms"] == 2.5
    assert attrs["trustgate.status.reason"] == "dollar_budget_exceeded"
    assert "trustgate.cost.total_usd" not in attrs


def test_an_observed_chain_names_no_blocker() -> None:
    event = request_event(
        policy_chain=[
            {
                "name": "rpm",
                "plugin": "rate_limiter",
                "stage": "pre_request",
                "decision": "observe",
                "latency_ms": 0.5,
                "status_code": 429,
            },
        ],
    )
    attrs = log_attributes(export_event(event), max_body_bytes=0)
    assert attrs["trustgate.policies.decisions"] == "rate_limiter=observe"
    assert "trustgate.policies.blocked_by" not in attrs


def test_an_mcp_tool_call_is_exported_with_its_method_tool_and_server() -> None:
    event = request_event(
        kind="mcp",
        path="/mcp",
        provider="mcp",
        mcp={
            "method": "tools/call",
            "tool": "weather_search",
            "upstream_tool": "search",
            "server": "weather",
            "is_error": True,
            "rpc_error_code": None,
        },
    )
    exported = export_event(event)
    jsonschema.validate(exported.model_dump(mode="json"), exported_event_json_schema())
    assert exported.kind == "mcp" and exported.mcp is not None
    assert exported.mcp.upstream_tool == "search"

    attrs = log_attributes(exported, max_body_bytes=0)
    assert attrs["trustgate.kind"] == "mcp"
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["gen_ai.tool.name"] == "weather_search"
    assert attrs["trustgate.mcp.upstream_tool"] == "search"
    assert attrs["trustgate.mcp.server"] == "weather"
    assert attrs["trustgate.mcp.is_error"] is True
    assert "rpc.jsonrpc.error_code" not in attrs  # none: the call was answered


def test_a_refused_mcp_read_names_its_uri_and_json_rpc_code() -> None:
    event = request_event(
        kind="mcp",
        status=429,
        error_kind="rate_limited",
        mcp={"method": "resources/read", "tool": "docs://readme", "rpc_error_code": -32004},
    )
    attrs = log_attributes(export_event(event), max_body_bytes=0)
    assert attrs["mcp.resource.uri"] == "docs://readme"
    assert attrs["rpc.jsonrpc.error_code"] == -32004
    assert "gen_ai.tool.name" not in attrs
