"""A gateway's telemetry exporters are validated on create and update: 422 naming the field."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest


def _otlp(**settings: Any) -> dict[str, Any]:
    return {"exporters": [{"name": "otlp", "settings": {"endpoint": "collector:4317", **settings}}]}


INVALID = [
    (_otlp(protocol="thrift"), "telemetry.exporters[0].settings.protocol"),
    (_otlp(signal="traces"), "telemetry.exporters[0].settings.signal"),
    (_otlp(insecure=True, tls={"ca_file": "/ca.pem"}), "telemetry.exporters[0].settings.insecure"),
    (_otlp(timeout="0s"), "telemetry.exporters[0].settings.timeout"),
    (_otlp(timeout=-1), "telemetry.exporters[0].settings.timeout"),
    (
        {"exporters": [{"name": "kafka", "settings": {"brokers": "k:9092", "topic": "t"}}]},
        "telemetry.exporters[0].settings.brokers",
    ),
    (
        {"exporters": [{"name": "kafka", "settings": {"topic": "no spaces"}}]},
        "telemetry.exporters[0].settings.topic",
    ),
]


def _slug() -> str:
    return f"tel-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("telemetry", "field"), INVALID)
async def test_invalid_exporter_settings_on_create_are_422_naming_the_field(
    api: httpx.AsyncClient, telemetry: dict[str, Any], field: str
) -> None:
    r = await api.post("/v1/gateways", json={"slug": _slug(), "telemetry": telemetry})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
    assert field in r.json()["message"]


@pytest.mark.parametrize(("telemetry", "field"), INVALID)
async def test_invalid_exporter_settings_on_update_are_422_and_change_nothing(
    api: httpx.AsyncClient, telemetry: dict[str, Any], field: str
) -> None:
    created = await api.post("/v1/gateways", json={"slug": _slug()})
    gateway = created.json()["id"]
    r = await api.put(f"/v1/gateways/{gateway}", json={"telemetry": telemetry})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_failed"
    assert field in r.json()["message"]
    assert (await api.get(f"/v1/gateways/{gateway}")).json().get("telemetry") is None


async def test_the_seed_otlp_exporter_is_accepted_and_kept(api: httpx.AsyncClient) -> None:
    telemetry = {
        "exporters": [
            {
                "name": "otlp",
                "settings": {
                    "endpoint": "collector:4317",
                    "protocol": "grpc",
                    "headers": {"authorization": "Bearer <token>"},
                    "compression": "gzip",
                    "timeout": "10s",
                    "insecure": False,
                },
            }
        ]
    }
    r = await api.post("/v1/gateways", json={"slug": _slug(), "telemetry": telemetry})
    assert r.status_code == 201, r.text
    shown = r.json()["telemetry"]
    assert shown["exporters"][0]["settings"].pop("headers") == {"authorization": "***ken>"}
    del telemetry["exporters"][0]["settings"]["headers"]
    assert shown == telemetry  # the rest as sent; the header is a secret, masked
    gateway = r.json()["id"]
    update = {"capture_bodies": True, "exporters": [{"type": "otlp", "class": "raw"}]}
    r = await api.put(f"/v1/gateways/{gateway}", json={"telemetry": update})
    assert r.status_code == 200, r.text
    assert r.json()["telemetry"] == update
