"""A gateway's own exporter settings at work: a ``kafka`` exporter's ``topic`` receives that
gateway's events (others keep ``TELEMETRY_KAFKA_TOPIC``); an ``otlp`` exporter with no
endpoint anywhere is counted in a metric and logged once, and Kafka export goes on."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from trustgate_testkit import wait_for
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.proxy.tenant import new_tenant
from trustgate_testkit.telemetry import counter, publish_events, read_topic, run_telemetry


async def test_a_gateways_kafka_topic_gets_its_events_and_others_keep_the_default(
    nats_server: NatsServer, bus: NATS, kafka: str, topic: str
) -> None:
    own_topic = f"{topic}.own"
    own = await new_tenant(bus)
    await own.put_gateway(
        telemetry={"exporters": [{"name": "kafka", "settings": {"topic": own_topic}}]}
    )
    plain = await new_tenant(bus)
    async with (
        read_topic(kafka, topic) as on_default,
        read_topic(kafka, own_topic) as on_own,
        run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic) as tel,
    ):
        own_ids = await publish_events(bus, own.gateway.id, 4)
        plain_ids = await publish_events(bus, plain.gateway.id, 3)
        await wait_for(lambda: set(own_ids) <= set(on_own.trace_ids), timeout=20)
        await wait_for(lambda: set(plain_ids) <= set(on_default.trace_ids), timeout=20)
        text = await tel.metrics_text()
    assert sorted(on_own.trace_ids) == sorted(own_ids)
    assert sorted(on_default.trace_ids) == sorted(plain_ids)
    assert counter(text, "trustgate_telemetry_events_exported_total", exporter="kafka") == 7


async def test_an_otlp_exporter_without_endpoint_is_counted_and_logged_once(
    nats_server: NatsServer,
    bus: NATS,
    kafka: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await new_tenant(bus)
    telemetry: dict[str, Any] = {"exporters": [{"name": "otlp", "settings": {"insecure": True}}]}
    await tenant.put_gateway(telemetry=telemetry)
    with caplog.at_level(logging.WARNING, logger="trustgate_telemetry.handlers.requests"):
        async with (
            read_topic(kafka, topic) as records,
            run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic) as tel,
        ):
            ids = await publish_events(bus, tenant.gateway.id, 5)
            await wait_for(lambda: set(ids) <= set(records.trace_ids), timeout=20)
            text = await tel.metrics_text()
    assert counter(text, "trustgate_telemetry_otlp_unresolved_total") == 5
    assert counter(text, "trustgate_telemetry_events_exported_total", exporter="otlp") == 0
    warnings = [r for r in caplog.records if "with no endpoint" in r.message]
    assert len(warnings) == 1
    assert str(tenant.gateway.id) in warnings[0].getMessage()
