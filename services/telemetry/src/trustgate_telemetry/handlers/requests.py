"""The work on ``TRUSTGATE_REQUESTS``: Kafka first, ack after Kafka acked.

One durable pull consumer (``telemetry``, a `trustgate_core.bus.WorkConsumer`) is shared by
every instance, so instances split the work. Each batch fetched is handled by
`RequestExporter.handle_batch`:

- undecodable messages are terminated (never redelivered) and counted;
- every decodable event becomes an `ExportedEvent`, and the whole batch is sent to Kafka
  (key = gateway id, so one gateway's events keep their order on one partition);
- a message is acked only after Kafka acknowledged its record; one Kafka refused is nak'ed
  with a delay (redelivered later: nothing lost, no tight loop) and the loop backs off;
- for gateways that opted in, one OTLP log record per event is queued (never awaited); an
  otlp exporter with no endpoint anywhere is counted (``otlp_unresolved``) and logged once
  per gateway, as is a gateway whose sealed exporter settings do not open with this
  service's key (a key that differs from the admin's).

A crash between Kafka's ack and the bus ack redelivers the message: delivery is
at-least-once and readers dedupe on ``trace_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.msg import Msg
from pydantic import ValidationError

from trustgate_core.events.requests import RequestEvent, decode_request_event
from trustgate_core.observability.tracing import Tracing, consumer_span, span_traceparent
from trustgate_core.telemetry.event import ExportedEvent, export_event
from trustgate_telemetry.adapters.otlp import OtlpExporters
from trustgate_telemetry.domain.plan import GatewayPlans
from trustgate_telemetry.domain.records import log_attributes, severity_of
from trustgate_telemetry.metrics import TelemetryMetrics
from trustgate_telemetry.ports import ExportSink, Record

log = logging.getLogger(__name__)


@dataclass
class _Ready:
    msg: Msg
    event: ExportedEvent
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str | None


_NO_BODIES = {
    "request_body": None,
    "response_body": None,
    "request_body_truncated": False,
    "response_body_truncated": False,
}


class RequestExporter:
    def __init__(
        self,
        sink: ExportSink,
        otlp: OtlpExporters,
        plans: GatewayPlans,
        metrics: TelemetryMetrics,
        *,
        tracing: Tracing | None = None,
        retry_delay: float = 2.0,
    ) -> None:
        self.sink = sink
        self.otlp = otlp
        self.plans = plans
        self.metrics = metrics
        self.tracing = tracing
        self.retry_delay = retry_delay
        self._warned: set[tuple[str, object]] = set()

    async def handle_batch(self, msgs: Sequence[Msg]) -> bool:
        """Export one fetched batch; False when Kafka refused some of it (back off)."""
        self.metrics.consumed.inc(len(msgs))
        ready: list[_Ready] = []
        for msg in msgs:
            prepared = self._prepare(msg)
            if prepared is None:
                self.metrics.poison.inc()
                await _quietly(msg.term())
            else:
                ready.append(prepared)
        if not ready:
            return True
        results = await self.sink.send_batch(
            [Record(r.key, r.value, r.headers, r.topic) for r in ready]
        )
        ok = True
        for item, error in zip(ready, results, strict=True):
            if error is None:
                self.metrics.exported.labels(self.sink.name).inc()
                await _quietly(item.msg.ack())
                self._to_otlp(item.event)
            else:
                ok = False
                self.metrics.failures.labels(self.sink.name).inc()
                await _quietly(item.msg.nak(delay=self.retry_delay))
        if not ok:
            first = next(e for e in results if e is not None)
            log.warning(
                "telemetry: %s refused %d of %d events (%r); they will be redelivered",
                self.sink.name,
                sum(e is not None for e in results),
                len(results),
                first,
            )
        return ok

    def _prepare(self, msg: Msg) -> _Ready | None:
        """Per-message work: decode, sanitize, encode. The bus ``traceparent`` header is
        continued here (a CONSUMER span when tracing is on)."""
        try:
            event: RequestEvent = decode_request_event(msg.data)
        except (ValidationError, ValueError) as exc:
            log.warning(
                "telemetry: undecodable request event on %s terminated: %s",
                msg.subject,
                str(exc)[:200],
            )
            return None
        headers = msg.headers or {}
        attributes = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
            "trustgate.trace_id": event.trace_id,
            "trustgate.gateway_id": str(event.gateway_id),
        }
        # --- tracing seam: the consumer side of the proxy's trace ---------------------------
        with consumer_span(
            self.tracing, "telemetry export", headers.get("traceparent"), attributes
        ) as span:
            plan = self.plans.get(event.gateway_id)
            if plan.max_body_bytes == 0 and (event.request_body or event.response_body):
                event = event.model_copy(update=_NO_BODIES)  # the gateway no longer asks
            exported = export_event(event, max_body_bytes=plan.max_body_bytes or None)
            traceparent = span_traceparent(span)
        value = orjson.dumps(exported.model_dump(mode="json"))
        kafka_headers = [] if traceparent is None else [("traceparent", traceparent.encode())]
        key = str(event.gateway_id).encode()
        return _Ready(msg, exported, key, value, kafka_headers, plan.kafka_topic)

    def _to_otlp(self, event: ExportedEvent) -> None:
        plan = self.plans.get(event.gateway_id)
        if plan.unresolved:
            self._unresolved(event.gateway_id, plan.unresolved)
        if plan.sealed_elsewhere and self._first_warning(event.gateway_id, "sealed"):
            log.warning(
                "telemetry: gateway %s's exporter settings do not open with this service's "
                "key (set TRUSTGATE_SECRETS_KEY or SERVER_SECRET_KEY as on the admin): its "
                "otlp records are not sent",
                event.gateway_id,
            )
        if plan.invalid and self._first_warning(event.gateway_id, "invalid"):
            log.warning(
                "telemetry: gateway %s's exporter settings are invalid (%s): its otlp records "
                "are not sent until they are updated",
                event.gateway_id,
                plan.invalid,
            )
        if not plan.otlp:
            return
        severity = severity_of(event.status.code)
        timestamp_ns = int(event.timestamp.timestamp() * 1e9)
        for settings in plan.otlp:
            record = self.otlp.record(
                log_attributes(event, settings.max_body_bytes), severity, timestamp_ns
            )
            self.otlp.submit(settings, record)

    def _first_warning(self, gateway_id: object, kind: str) -> bool:
        """Whether this warning about this gateway is the first (each is logged once)."""
        key = (kind, gateway_id)
        if key in self._warned:
            return False
        if len(self._warned) > 65_536:
            self._warned.clear()
        self._warned.add(key)
        return True

    def _unresolved(self, gateway_id: object, count: int) -> None:
        self.metrics.otlp_unresolved.inc(count)
        if not self._first_warning(gateway_id, "unresolved"):
            return
        log.warning(
            "telemetry: gateway %s has %d otlp exporter(s) with no endpoint (none in its "
            "settings, no OTEL_EXPORTER_OTLP_ENDPOINT): their records are not sent",
            gateway_id,
            count,
        )


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:  # the bus will redeliver (ack) or already dropped it (term)
        log.debug("telemetry: ack/nak/term failed: %r", exc)
