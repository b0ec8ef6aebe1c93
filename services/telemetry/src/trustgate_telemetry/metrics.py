"""The service's Prometheus metrics, in its own registry (nothing global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class TelemetryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.consumed = Counter(
            "trustgate_telemetry_events_consumed",
            "Request events taken off the bus (redeliveries included).",
            registry=r,
        )
        self.exported = Counter(
            "trustgate_telemetry_events_exported",
            "Events an exporter accepted (kafka: broker-acknowledged; otlp: collector-accepted).",
            ["exporter"],
            registry=r,
        )
        self.failures = Counter(
            "trustgate_telemetry_export_failures",
            "Export attempts that failed (kafka: the event is redelivered; otlp: it is lost).",
            ["exporter"],
            registry=r,
        )
        self.otlp_dropped = Counter(
            "trustgate_telemetry_otlp_dropped",
            "OTLP records dropped because a pipeline's queue was full (or left at shutdown).",
            registry=r,
        )
        self.otlp_unresolved = Counter(
            "trustgate_telemetry_otlp_unresolved",
            "OTLP records not sent because the gateway's otlp exporter has no endpoint (neither "
            "in its settings nor OTEL_EXPORTER_OTLP_ENDPOINT).",
            registry=r,
        )
        self.poison = Counter(
            "trustgate_telemetry_poison_messages",
            "Bus messages that could not be decoded, terminated (never redelivered).",
            registry=r,
        )
        self.lag = Gauge(
            "trustgate_telemetry_consumer_lag",
            "Messages on the stream not yet delivered to the durable consumer (num_pending).",
            registry=r,
        )
        self.otlp_pending = Gauge(
            "trustgate_telemetry_otlp_pending",
            "OTLP records queued, waiting for their collector.",
            registry=r,
        )
        for exporter in ("kafka", "otlp"):
            self.exported.labels(exporter)
            self.failures.labels(exporter)
