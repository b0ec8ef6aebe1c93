"""Request events through the proxy reach Kafka (exactly once each, documented schema) and,
for a gateway that opted in, an OTLP collector; a hung collector slows nobody; /metrics
counts it all."""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import orjson
from nats.aio.client import Client as NATS
from nats.js.errors import NotFoundError

from trustgate_core.telemetry import exported_event_json_schema
from trustgate_testkit import wait_for
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.otlp import serve_otlp_collector
from trustgate_testkit.proxy.mock_upstream import MockUpstream
from trustgate_testkit.proxy.server import RunningProxy, until_known
from trustgate_testkit.proxy.tenant import Tenant, new_tenant
from trustgate_testkit.telemetry import counter, publish_events, read_topic, run_telemetry

N = 6


async def _tenant(bus: NATS, upstream: MockUpstream, telemetry: dict[str, Any] | None) -> Tenant:
    tenant = await new_tenant(bus)
    if telemetry is not None:
        await tenant.put_gateway(telemetry=telemetry)
    await tenant.add_registry("primary", upstream.url)
    await tenant.add_consumer("app", ["primary"])
    return tenant


def _otlp(endpoint: str, **settings: Any) -> dict[str, Any]:
    return {
        "exporters": [
            {"name": "otlp", "settings": {"endpoint": endpoint, "insecure": True, **settings}}
        ]
    }


async def test_n_requests_become_n_kafka_records_and_n_otlp_logs_only_for_the_opted_in_gateway(
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
        run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic) as tel,
        read_topic(kafka, topic) as kafka_records,
    ):
        opted = await _tenant(bus, upstream, _otlp(collector.grpc_endpoint, protocol="grpc"))
        plain = await _tenant(bus, upstream, None)
        await until_known(proxy, opted)
        await until_known(proxy, plain)
        opted_ids = [(await chat(proxy, opted))[0] for _ in range(N)]
        plain_ids = [(await chat(proxy, plain))[0] for _ in range(N)]

        await wait_for(lambda: len(kafka_records.records) >= 2 * N, timeout=20)
        await wait_for(lambda: len(collector.logs) >= N, timeout=20)
        text = await tel.metrics_text()

    docs = kafka_records.docs
    assert sorted(d["trace_id"] for d in docs) == sorted(opted_ids + plain_ids)
    schema = exported_event_json_schema()
    for doc in docs:
        jsonschema.validate(doc, schema)
        assert doc["schema_version"] == 1
        assert doc["usage"]["total_tokens"] > 0
        assert doc["request"]["body"] is None  # neither gateway asked for bodies
    by_gateway = {r.key.decode() for r in kafka_records.records}
    assert by_gateway == {str(opted.gateway.id), str(plain.gateway.id)}

    assert len(collector.logs) == N
    for log in collector.logs:
        attrs = log.attributes
        assert attrs["event.name"] == "gateway.request"
        assert attrs["trustgate.gateway_id"] == str(opted.gateway.id)
        assert attrs["http.response.status_code"] == 200
        assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
        assert attrs["gen_ai.usage.input_tokens"] >= 0
        assert log.record.severity_text == "INFO"
    assert sorted(log.attributes["trustgate.trace_id"] for log in collector.logs) == sorted(
        opted_ids
    )

    assert counter(text, "trustgate_telemetry_events_consumed_total") == 2 * N
    assert counter(text, "trustgate_telemetry_events_exported_total", exporter="kafka") == 2 * N
    assert counter(text, "trustgate_telemetry_events_exported_total", exporter="otlp") == N
    assert counter(text, "trustgate_telemetry_export_failures_total", exporter="kafka") == 0
    assert counter(text, "trustgate_telemetry_otlp_dropped_total") == 0
    assert counter(text, "trustgate_telemetry_poison_messages_total") == 0


async def test_bodies_are_exported_only_when_the_gateway_asks_and_cut_to_max_body_bytes(
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
        telemetry = {
            "capture_bodies": True,
            "max_body_bytes": 20,
            "exporters": [
                {
                    "name": "otlp",
                    "class": "raw",
                    "settings": {
                        "endpoint": collector.http_endpoint,
                        "protocol": "http/protobuf",
                        "max_body_bytes": 10,
                    },
                }
            ],
        }
        tenant = await _tenant(bus, upstream, telemetry)
        await until_known(proxy, tenant)
        trace_id, _ = await chat(proxy, tenant)
        await wait_for(lambda: kafka_records.records and collector.logs, timeout=20)

    (doc,) = kafka_records.docs
    assert doc["trace_id"] == trace_id
    assert doc["request"]["body"].startswith('{"')
    assert len(doc["request"]["body"].encode()) == 20
    assert doc["request"]["body_truncated"] is True
    assert doc["response"]["body"] and len(doc["response"]["body"].encode()) <= 20
    (log,) = collector.logs
    assert log.transport == "http"
    assert len(log.attributes["trustgate.request.body"].encode()) <= 10
    assert "sk-upstream" not in orjson.dumps(doc).decode()  # no credential ever


async def test_a_hung_collector_slows_neither_kafka_nor_requests_and_drops_are_counted(
    nats_server: NatsServer,
    bus: NATS,
    proxy: RunningProxy,
    upstream: MockUpstream,
    kafka: str,
    topic: str,
    chat: Any,
) -> None:
    requests = 12
    async with (
        serve_otlp_collector(hang=True) as collector,
        run_telemetry(
            nats_server.url,
            KAFKA_BROKERS=kafka,
            TELEMETRY_KAFKA_TOPIC=topic,
            TELEMETRY_OTLP_QUEUE_SIZE=2,
            TELEMETRY_OTLP_BATCH_SIZE=1,
        ) as tel,
        read_topic(kafka, topic) as kafka_records,
    ):
        tenant = await _tenant(
            bus, upstream, _otlp(collector.grpc_endpoint, protocol="grpc", timeout="60s")
        )
        await until_known(proxy, tenant)
        took = [(await chat(proxy, tenant))[1] for _ in range(requests)]
        await wait_for(lambda: len(kafka_records.records) >= requests, timeout=20)
        await wait_for(lambda: collector.hung >= 1, timeout=10)
        text = await tel.metrics_text()
        assert collector.logs == []

    assert max(took) < 2.0  # generous: a mock upstream answers in milliseconds
    assert len(kafka_records.records) == requests
    # one record held by the hung export, two queued, the rest dropped (the in-flight one
    # may not have been taken yet when the queue filled)
    dropped = counter(text, "trustgate_telemetry_otlp_dropped_total")
    assert requests - 3 <= dropped <= requests - 2
    assert counter(text, "trustgate_telemetry_events_exported_total", exporter="kafka") == requests


async def test_poison_messages_are_terminated_and_counted_and_valid_ones_still_flow(
    nats_server: NatsServer, bus: NATS, kafka: str, topic: str
) -> None:
    import uuid

    gateway_id = uuid.uuid4()
    async with (
        run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic) as tel,
        read_topic(kafka, topic) as kafka_records,
    ):
        js = bus.jetstream()
        await js.publish(f"trustgate.requests.{gateway_id}", b"not json at all")
        await js.publish(f"trustgate.requests.{gateway_id}", b'{"schema_version": 1}')
        ids = await publish_events(bus, gateway_id, 3)
        await wait_for(lambda: len(kafka_records.records) >= 3, timeout=20)

        async def poison_counted() -> bool:
            text = await tel.metrics_text()
            return counter(text, "trustgate_telemetry_poison_messages_total") == 2

        await wait_for(poison_counted, timeout=10)

        async def nothing_pending() -> bool:
            info = await js.consumer_info("TRUSTGATE_REQUESTS", "telemetry")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await wait_for(nothing_pending, timeout=10)
    assert sorted(kafka_records.trace_ids) == sorted(ids)


async def test_telemetry_disabled_is_ready_and_consumes_nothing(
    nats_server: NatsServer, bus: NATS, kafka: str, topic: str
) -> None:
    import httpx

    async with run_telemetry(
        nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic, TELEMETRY_ENABLED=False
    ) as tel:
        async with httpx.AsyncClient(timeout=5) as client:
            ready = await client.get(f"{tel.url}/readyz")
            health = await client.get(f"{tel.url}/healthz")
        assert ready.status_code == 200
        assert ready.json()["dependencies"] == {"telemetry": "disabled"}
        assert health.status_code == 200
        assert health.json()["status"] == "healthy"
        assert health.json()["service"] == "trustgate-telemetry"
        await asyncio.sleep(0)  # let any (wrongly) started task run once
        try:
            await bus.jetstream().consumer_info("TRUSTGATE_REQUESTS", "telemetry")
            created = True
        except NotFoundError:
            created = False
        assert not created
