"""A gateway's exporter ``headers`` arrive sealed on the bus (as the admin seals them): the
telemetry service opens them, so the OTLP collector receives the real values."""

from __future__ import annotations

import logging

import pytest
from nats.aio.client import Client as NATS

from trustgate_testkit import wait_for
from trustgate_testkit.fixtures import NatsServer
from trustgate_testkit.otlp import serve_otlp_collector
from trustgate_testkit.proxy.tenant import Tenant, new_tenant
from trustgate_testkit.telemetry import publish_events, read_topic, run_telemetry

OTLP_SECRET = "Bearer otlp-secret-0001-wxyz"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
async def test_sealed_exporter_headers_reach_the_collector_opened(
    nats_server: NatsServer,
    bus: NATS,
    kafka: str,
    topic: str,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await new_tenant(bus)
    async with serve_otlp_collector() as collector:
        endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
        settings = {
            "endpoint": endpoint,
            "protocol": protocol,
            "insecure": True,
            "headers": {"authorization": OTLP_SECRET},
        }
        telemetry = {"exporters": [{"name": "otlp", "settings": settings}]}
        sealed = tenant.box.seal_fields(telemetry)
        assert OTLP_SECRET not in str(sealed)
        await tenant.put_gateway(telemetry=sealed)
        with caplog.at_level(logging.DEBUG):
            async with run_telemetry(
                nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic
            ):
                ids = await publish_events(bus, tenant.gateway.id, 3)
                await wait_for(lambda: len(collector.logs) >= len(ids), timeout=20)
    received = [{k.lower(): v for k, v in log.headers.items()} for log in collector.logs]
    assert [h.get("authorization") for h in received] == [OTLP_SECRET] * len(ids)
    assert OTLP_SECRET not in caplog.text


async def _gateway_warnings_while_exporting(
    nats_server: NatsServer,
    bus: NATS,
    kafka: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
    tenant: Tenant,
    **env: str,
) -> list[str]:
    """Telemetry (``env`` added) runs over three of ``tenant``'s events until Kafka has
    them all; the warnings that name the gateway."""
    with caplog.at_level(logging.WARNING, logger="trustgate_telemetry.handlers.requests"):
        async with (
            read_topic(kafka, topic) as records,
            run_telemetry(nats_server.url, KAFKA_BROKERS=kafka, TELEMETRY_KAFKA_TOPIC=topic, **env),
        ):
            ids = await publish_events(bus, tenant.gateway.id, 3)
            await wait_for(lambda: set(ids) <= set(records.trace_ids), timeout=20)
    gateway = str(tenant.gateway.id)
    return [r.getMessage() for r in caplog.records if gateway in r.getMessage()]


async def test_settings_sealed_with_another_key_are_reported_once_not_sent(
    nats_server: NatsServer,
    bus: NATS,
    kafka: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await new_tenant(bus)
    async with serve_otlp_collector() as collector:
        settings = {
            "endpoint": collector.http_endpoint,
            "insecure": True,
            "headers": {"authorization": OTLP_SECRET},
        }
        telemetry = {"exporters": [{"name": "otlp", "settings": settings}]}
        await tenant.put_gateway(telemetry=tenant.box.seal_fields(telemetry))
        warnings = await _gateway_warnings_while_exporting(
            nats_server,
            bus,
            kafka,
            topic,
            caplog,
            tenant,
            TRUSTGATE_SECRETS_KEY="another-key-than-the-admins-0123456789",
        )
    assert collector.logs == []
    assert len(warnings) == 1
    assert "TRUSTGATE_SECRETS_KEY" in warnings[0]


async def test_an_endpoint_stored_with_a_password_before_the_rule_is_reported_once_not_sent(
    nats_server: NatsServer,
    bus: NATS,
    kafka: str,
    topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The admin now refuses ``user:password@`` in an endpoint; one stored before is not
    sent to (its password would travel in clear), and the operator is told once, without
    the password."""
    tenant = await new_tenant(bus)
    async with serve_otlp_collector() as collector:
        endpoint = collector.http_endpoint.replace("://", "://user:hunter2-secret@", 1)
        telemetry = {"exporters": [{"name": "otlp", "settings": {"endpoint": endpoint}}]}
        await tenant.put_gateway(telemetry=telemetry)
        warnings = await _gateway_warnings_while_exporting(
            nats_server, bus, kafka, topic, caplog, tenant
        )
    assert collector.logs == []
    assert len(warnings) == 1
    assert "credentials" in warnings[0] and "hunter2-secret" not in caplog.text
