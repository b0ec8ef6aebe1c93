"""Pure parts: severities, OTLP attributes, per-gateway plans."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from trustgate_core.crypto import SecretBox
from trustgate_core.events.requests import RequestEvent
from trustgate_core.models import Gateway
from trustgate_core.settings import DEV_SECRET_KEY
from trustgate_core.telemetry import OtlpDefaults, export_event
from trustgate_telemetry.domain.plan import GatewayPlans
from trustgate_telemetry.domain.records import log_attributes, severity_of


def test_severity_is_info_below_400_warn_for_4xx_and_error_for_5xx() -> None:
    assert [severity_of(s) for s in (200, 399, 400, 499, 500, 503)] == [
        "INFO", "INFO", "WARN", "WARN", "ERROR", "ERROR",
    ]  # fmt: skip


def test_log_attributes_follow_the_conventions_and_cut_bodies() -> None:
    now = datetime.now(UTC)
    event = RequestEvent.model_validate(
        {
            "trace_id": uuid.uuid4().hex,
            "gateway_id": uuid.uuid4(),
            "method": "POST",
            "path": "/v1/chat/completions",
            "provider": "openai",
            "requested_model": "gpt-4o-mini",
            "status": 429,
            "error_kind": "upstream_status",
            "timings": {"total_ms": 3.0, "gateway_ms": 1.0},
            "usage": {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7},
            "started_at": now,
            "ended_at": now,
            "request_body": "x" * 50,
        }
    )
    attrs = log_attributes(export_event(event), max_body_bytes=8)
    assert attrs["event.name"] == "gateway.request"
    assert attrs["http.response.status_code"] == 429
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["trustgate.status.outcome"] == "retryable"
    assert attrs["trustgate.request.body"] == "x" * 8
    assert "trustgate.response.body" not in attrs


def test_plans_follow_gateway_updates_and_share_equal_settings() -> None:
    gid = uuid.uuid4()
    now = datetime.now(UTC)
    otlp = {"name": "otlp", "settings": {"endpoint": "c:4317"}}
    gw = Gateway(id=gid, gateway_id=gid, slug="g", created_at=now, updated_at=now)
    gateways = {gid: gw}
    box = SecretBox(DEV_SECRET_KEY)
    plans = GatewayPlans(gateways, OtlpDefaults(timeout=3.0), box)  # type: ignore[arg-type]
    assert plans.get(gid).otlp == ()
    gateways[gid] = gw.model_copy(
        update={"telemetry": {"exporters": [otlp, {**otlp, "name": "again", "type": "otlp"}]}}
    )
    (resolved,) = plans.get(gid).otlp  # two equal settings: one pipeline
    assert (resolved.endpoint, resolved.protocol, resolved.timeout) == ("c:4317", "grpc", 3.0)
    assert plans.get(uuid.uuid4()).otlp == ()
