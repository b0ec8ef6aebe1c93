"""Telemetry contracts: a gateway's exporter settings and the exported event."""

from trustgate_core.telemetry.event import (
    EXPORT_SCHEMA_VERSION,
    ExportedEvent,
    export_event,
    exported_event_json_schema,
    generate_json_schema,
)
from trustgate_core.telemetry.settings import (
    ExporterSpec,
    OtlpDefaults,
    OtlpSettings,
    ResolvedOtlp,
    TelemetryConfig,
    body_capture_limit,
    read_telemetry,
    resolve_otlp,
    validate_telemetry,
)

__all__ = [
    "EXPORT_SCHEMA_VERSION",
    "ExportedEvent",
    "ExporterSpec",
    "OtlpDefaults",
    "OtlpSettings",
    "ResolvedOtlp",
    "TelemetryConfig",
    "body_capture_limit",
    "export_event",
    "exported_event_json_schema",
    "generate_json_schema",
    "read_telemetry",
    "resolve_otlp",
    "validate_telemetry",
]
