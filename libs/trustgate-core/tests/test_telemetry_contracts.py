"""Telemetry contracts: exporter settings validation, env fallbacks, the exported event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from trustgate_core.errors import ValidationFailed
from trustgate_core.events.requests import RequestEvent
from trustgate_core.telemetry import (
    OtlpDefaults,
    body_capture_limit,
    export_event,
    exported_event_json_schema,
    generate_json_schema,
    resolve_otlp,
    validate_telemetry,
)


def _otlp(**settings: Any) -> dict[str, Any]:
    return {"exporters": [{"name": "otlp", "settings": settings}]}


def _kafka(**settings: Any) -> dict[str, Any]:
    return {"exporters": [{"name": "kafka", "settings": settings}]}


@pytest.mark.parametrize(
    ("telemetry", "field"),
    [
        (_otlp(protocol="thrift"), "telemetry.exporters[0].settings.protocol"),
        (_otlp(signal="traces"), "telemetry.exporters[0].settings.signal"),
        (
            _otlp(insecure=True, tls={"ca_file": "/ca.pem"}),
            "telemetry.exporters[0].settings.insecure",
        ),
        (_otlp(timeout="0s"), "telemetry.exporters[0].settings.timeout"),
        (_otlp(timeout=-5), "telemetry.exporters[0].settings.timeout"),
        (_otlp(timeout="soon"), "telemetry.exporters[0].settings.timeout"),
        (_otlp(compression="br"), "telemetry.exporters[0].settings.compression"),
        (_otlp(endpoint=""), "telemetry.exporters[0].settings.endpoint"),
        (_otlp(endpoint="c:4317/v1", protocol="grpc"), "telemetry.exporters[0].settings.endpoint"),
        (_otlp(tls={"cert_file": "c.pem"}), "telemetry.exporters[0].settings.tls.key_file"),
        (_otlp(colour="red"), "telemetry.exporters[0].settings.colour"),
        ({"exporters": [{"name": "splunk"}]}, "telemetry.exporters[0].name"),
        ({"exporters": [{"settings": {}}]}, "telemetry.exporters[0].name"),
        ({"exporters": [{"name": "otlp"}, {"name": "otlp"}]}, "telemetry.exporters[1].name"),
        ({"exporters": [{"type": "otlp", "class": "full"}]}, "telemetry.exporters[0].class"),
        ({"exporters": {}}, "telemetry.exporters"),
        ({"max_body_bytes": "lots"}, "telemetry.max_body_bytes"),
        (_kafka(brokers="k:9092", topic="t"), "telemetry.exporters[0].settings.brokers"),
        (_kafka(topic="bad topic"), "telemetry.exporters[0].settings.topic"),
        (_kafka(topic=".."), "telemetry.exporters[0].settings.topic"),
        (_kafka(topic=7), "telemetry.exporters[0].settings.topic"),
        (_kafka(partition=1), "telemetry.exporters[0].settings.partition"),
    ],
)
def test_invalid_exporter_settings_name_the_field(telemetry: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_telemetry(telemetry)
    assert caught.value.message.startswith(f"{field}: ")
    assert caught.value.status == 422


def test_a_kafka_exporter_names_the_gateways_own_topic_and_no_brokers() -> None:
    assert validate_telemetry(_kafka(topic=" tenant-a.requests ")).kafka_topic == (
        "tenant-a.requests"
    )
    assert validate_telemetry(_kafka()).kafka_topic is None
    assert validate_telemetry({"exporters": [{"name": "kafka"}]}).kafka_topic is None
    off = {"exporters": [{"name": "kafka", "enabled": False, "settings": {"topic": "t"}}]}
    assert validate_telemetry(off).kafka_topic is None
    with pytest.raises(ValidationFailed, match="process-wide: set KAFKA_BROKERS"):
        validate_telemetry(_kafka(brokers=["k:9092"]))


def test_the_seed_example_is_valid_and_keeps_every_setting() -> None:
    config = validate_telemetry(
        _otlp(
            endpoint="collector:4317",
            protocol="grpc",
            headers={"Authorization": "Bearer t"},
            compression="gzip",
            timeout="10s",
            insecure=False,
        )
    )
    (otlp,) = config.otlp
    assert otlp.otlp is not None
    assert otlp.otlp.timeout == 10.0
    assert otlp.otlp.headers == (("authorization", "Bearer t"),)
    assert not config.wants_bodies


def test_type_and_class_are_accepted_and_raw_asks_for_bodies() -> None:
    config = validate_telemetry(
        {"exporters": [{"name": "mine", "type": "otel", "class": "raw", "settings": {}}]}
    )
    assert config.otlp[0].type == "otlp"
    assert config.otlp[0].name == "mine"
    assert config.body_limit == 4096
    assert body_capture_limit({"capture_bodies": True, "max_body_bytes": 10}) == 10
    assert body_capture_limit({"exporters": [{"name": "kafka"}]}) == 0
    assert body_capture_limit(None) == 0


def _timeout(value: object) -> float | None:
    otlp = validate_telemetry(_otlp(endpoint="collector:4317", timeout=value)).otlp[0].otlp
    assert otlp is not None
    return otlp.timeout


def test_otlp_timeouts_accept_go_strings_and_read_bare_numbers_as_milliseconds() -> None:
    assert _timeout("10s") == 10.0
    assert _timeout("1m30s") == 90.0
    assert _timeout("250ms") == 0.25
    assert _timeout(10000) == 10.0
    assert _timeout("10000") == 10.0
    assert OtlpDefaults.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "2500"}).timeout == 2.5
    assert OtlpDefaults.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "3s"}).timeout == 3.0
    with pytest.raises(ValidationFailed, match=r"settings\.timeout: must be a duration"):
        _timeout("10 parsecs")
    with pytest.raises(ValidationFailed, match=r"settings\.timeout: must be > 0"):
        _timeout("-5s")
    with pytest.raises(ValidationFailed, match="OTEL_EXPORTER_OTLP_TIMEOUT: must be > 0"):
        OtlpDefaults.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "-1"})


def test_gateway_settings_win_over_env_fallbacks_key_by_key() -> None:
    defaults = OtlpDefaults.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=a,authorization=Bearer%20env",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
        }
    )
    assert defaults.timeout == 2.5
    only_env = resolve_otlp(validate_telemetry(_otlp()).otlp[0], defaults)
    assert only_env is not None
    assert only_env.endpoint == "http://env:4318"
    assert only_env.protocol == "http/protobuf"
    assert only_env.insecure
    assert dict(only_env.headers) == {"x-tenant": "a", "authorization": "Bearer env"}
    mixed = resolve_otlp(
        validate_telemetry(
            _otlp(endpoint="gw:4317", protocol="grpc", headers={"authorization": "gw"})
        ).otlp[0],
        defaults,
    )
    assert mixed is not None
    assert (mixed.endpoint, mixed.protocol, mixed.timeout) == ("gw:4317", "grpc", 2.5)
    assert dict(mixed.headers) == {"x-tenant": "a", "authorization": "gw"}
    assert resolve_otlp(validate_telemetry(_otlp()).otlp[0], OtlpDefaults()) is None
    with pytest.raises(ValidationFailed, match="OTEL_EXPORTER_OTLP_TIMEOUT"):
        OtlpDefaults.from_env({"OTEL_EXPORTER_OTLP_TIMEOUT": "-1"})


def _request_event(**extra: Any) -> RequestEvent:
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "trace_id": uuid.uuid4().hex,
        "gateway_id": uuid.uuid4(),
        "consumer_id": uuid.uuid4(),
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "timings": {"total_ms": 12.0, "upstream_ms": 10.0, "gateway_ms": 2.0},
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        "started_at": now,
        "ended_at": now,
        **extra,
    }
    return RequestEvent.model_validate(fields)


def test_the_shipped_json_schema_file_matches_the_model() -> None:
    assert exported_event_json_schema() == generate_json_schema(), (
        "regenerate: python -c 'from trustgate_core.telemetry.event import render_json_schema;"
        ' print(render_json_schema(), end="")\' > '
        "libs/trustgate-core/src/trustgate_core/telemetry/exported_event.schema.json"
    )


def test_an_exported_event_validates_against_the_schema_and_cuts_bodies() -> None:
    event = _request_event(request_body="é" * 10, response_body="ok")
    exported = export_event(event, max_body_bytes=5)
    doc = exported.model_dump(mode="json")
    jsonschema.validate(doc, exported_event_json_schema())
    assert doc["schema_version"] == 1
    assert doc["request"]["body"] == "éé"  # 5 bytes, never half a character
    assert doc["request"]["body_truncated"] is True
    assert doc["response"]["body"] == "ok"
    assert doc["usage"]["total_tokens"] == 7
    assert doc["status"]["outcome"] == "success"
    assert "key" not in str(doc).lower().replace("auth_id", "")


def test_failures_are_classified_retryable_or_terminal() -> None:
    assert export_event(_request_event(status=503, error_kind="unavailable")).status.outcome == (
        "retryable"
    )
    timeout = export_event(_request_event(status=504, error_kind="upstream_timeout"))
    assert timeout.status.is_timeout
    assert export_event(
        _request_event(status=401, error_kind="unauthenticated")
    ).status.outcome == ("terminal")
