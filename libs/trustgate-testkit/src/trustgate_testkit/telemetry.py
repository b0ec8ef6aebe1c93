"""Test support: the telemetry service on a free port, and a plain Kafka reader."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from nats.aio.client import Client as NATS

from trustgate_core.events.subjects import requests_subject
from trustgate_core.serving import EmbeddedServer
from trustgate_telemetry.bootstrap import TelemetryRuntime
from trustgate_telemetry.main import server_config
from trustgate_telemetry.settings import TelemetrySettings
from trustgate_testkit.fixtures import wait_for


@dataclass
class RunningTelemetry:
    url: str
    runtime: TelemetryRuntime

    async def metrics_text(self) -> str:
        import httpx

        async with httpx.AsyncClient(timeout=5) as client:
            r = await client.get(f"{self.url}/metrics")
            r.raise_for_status()
            return r.text


@contextlib.asynccontextmanager
async def run_telemetry(
    nats_url: str, *, otel_env: Mapping[str, str] | None = None, **env: Any
) -> AsyncIterator[RunningTelemetry]:
    """The service with ``env`` as settings (``OTEL_*`` from ``otel_env`` only)."""
    settings = TelemetrySettings(NATS_URL=nats_url, **env)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    async with TelemetryRuntime(settings, env=dict(otel_env or {})) as runtime:
        server = EmbeddedServer(server_config(runtime, settings))
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await wait_for(lambda: server.started, timeout=5, message="telemetry serving")
            yield RunningTelemetry(f"http://127.0.0.1:{port}", runtime)
        finally:
            server.should_exit = True
            await serving
            sock.close()


@dataclass
class KafkaRecords:
    records: list[Any] = field(default_factory=list)

    @property
    def docs(self) -> list[dict[str, Any]]:
        return [orjson.loads(r.value) for r in self.records]

    @property
    def trace_ids(self) -> list[str]:
        return [d["trace_id"] for d in self.docs]


@contextlib.asynccontextmanager
async def read_topic(bootstrap: str, topic: str) -> AsyncIterator[KafkaRecords]:
    """Everything on ``topic`` from the beginning, read by a plain aiokafka consumer in the
    background (it keeps trying while the broker is away)."""
    from aiokafka import AIOKafkaConsumer

    seen = KafkaRecords()

    async def consume() -> None:
        while True:
            consumer = AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                group_id=None,
                metadata_max_age_ms=500,
                request_timeout_ms=5000,
            )
            try:
                await consumer.start()
                async for record in consumer:
                    seen.records.append(record)
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    task = asyncio.create_task(consume())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def event_payload(gateway_id: UUID, trace_id: str | None = None) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "schema_version": 1,
        "trace_id": trace_id or uuid.uuid4().hex,
        "gateway_id": str(gateway_id),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "timings": {"total_ms": 5.0, "gateway_ms": 1.0, "upstream_ms": 4.0},
        "started_at": now,
        "ended_at": now,
    }


async def publish_events(nc: NATS, gateway_id: UUID, count: int) -> list[str]:
    """Request events published straight to the bus, as the proxy would."""
    js = nc.jetstream()
    ids = []
    for _ in range(count):
        payload = event_payload(gateway_id)
        await js.publish(
            requests_subject(gateway_id),
            orjson.dumps(payload),
            headers={"Nats-Msg-Id": payload["trace_id"]},
        )
        ids.append(payload["trace_id"])
    return ids


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def counter(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)
