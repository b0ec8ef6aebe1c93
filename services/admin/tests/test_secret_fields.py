"""Credentials in free-form documents: a registry's ``provider_options`` (its ``headers``,
any field named like a secret) and a gateway's exporter ``headers`` are sealed on the bus,
masked in every answer, kept when a PUT sends the mask back; URLs carrying a password are
refused."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import nats
import pytest

from trustgate_core.crypto import SecretBox
from trustgate_core.events import decode_config_event
from trustgate_testkit.admin import RunningAdmin
from trustgate_testkit.fixtures import NatsServer, wait_for

HEADER_SECRET = "Bearer hdr-secret-0001-abcd"
OPTION_SECRET = "opt-secret-0002-efgh"
OTLP_SECRET = "Bearer otlp-secret-0003-ijkl"
URL_PASSWORD = "url-password-0004"


@asynccontextmanager
async def raw_config_events(nats_url: str) -> AsyncIterator[list[bytes]]:
    """The bytes of every config event published meanwhile, as any subscriber gets them."""
    nc = await nats.connect(nats_url)
    payloads: list[bytes] = []

    async def on_msg(msg: Any) -> None:
        payloads.append(msg.data)

    sub = await nc.subscribe("trustgate.config.>", cb=on_msg)
    await nc.flush()
    try:
        yield payloads
    finally:
        await sub.unsubscribe()
        await nc.close()


def _options() -> dict[str, Any]:
    return {
        "base_url": "https://llm.example.com/v1",
        "headers": {"Authorization": HEADER_SECRET, "anthropic-beta": "tools-2024"},
        "X-Api-Key": OPTION_SECRET,
        "model_mapping": {"fast": "gpt-4o-mini"},
    }


def _telemetry(endpoint: str = "collector:4317") -> dict[str, Any]:
    return {
        "exporters": [
            {
                "name": "otlp",
                "settings": {"endpoint": endpoint, "headers": {"authorization": OTLP_SECRET}},
            }
        ]
    }


async def _gateway(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    r = await api.post("/v1/gateways", json={"slug": f"sec-{uuid.uuid4().hex[:8]}", **fields})
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _registry(
    api: httpx.AsyncClient, gateway_id: str, options: dict[str, Any]
) -> httpx.Response:
    return await api.post(
        f"/v1/gateways/{gateway_id}/registries",
        json={
            "name": f"reg-{uuid.uuid4().hex[:6]}",
            "provider": "openai_compatible",
            "provider_options": options,
            "auth": {"type": "api_key", "api_key": {"api_key": "sk-upstream-key-1234"}},
        },
    )


def _sealed_in(events: list[bytes], gateway_id: str, kind: str) -> list[Any]:
    decoded = [decode_config_event(p) for p in events]
    return [e for e in decoded if str(e.gateway_id) == gateway_id and e.kind.value == kind]


async def test_registry_option_secrets_are_masked_in_every_answer(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    created = await _registry(api, gw["id"], _options())
    assert created.status_code == 201, created.text
    got = await api.get(f"/v1/gateways/{gw['id']}/registries/{created.json()['id']}")
    listed = await api.get(f"/v1/gateways/{gw['id']}/registries")
    for options in (
        created.json()["provider_options"],
        got.json()["provider_options"],
        listed.json()["items"][0]["provider_options"],
    ):
        assert options["headers"] == {"Authorization": "***abcd", "anthropic-beta": "***2024"}
        assert options["X-Api-Key"] == "***efgh"
        assert options["base_url"] == "https://llm.example.com/v1"
        assert options["model_mapping"] == {"fast": "gpt-4o-mini"}
    for answer in (created, got, listed):
        assert HEADER_SECRET not in answer.text and OPTION_SECRET not in answer.text


async def test_registry_option_secrets_are_sealed_on_the_bus_and_kept_by_a_masked_put(
    admin: RunningAdmin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    box = SecretBox(admin.settings.secrets_material)
    gw = await _gateway(api)
    async with raw_config_events(bus.url) as payloads:
        created = (await _registry(api, gw["id"], _options())).json()
        shown = created["provider_options"]
        r = await api.put(
            f"/v1/gateways/{gw['id']}/registries/{created['id']}",
            json={"provider_options": {**shown, "api": "completions"}},
        )
        assert r.status_code == 200, r.text
        await wait_for(lambda: len(_sealed_in(payloads, gw["id"], "registry")) >= 2, timeout=10)
    assert not any(HEADER_SECRET.encode() in p or OPTION_SECRET.encode() in p for p in payloads)
    for event in _sealed_in(payloads, gw["id"], "registry"):
        options = event.entity.provider_options
        assert options["headers"]["Authorization"].startswith("tgs1:")
        assert box.open_fields(options)["headers"]["Authorization"] == HEADER_SECRET
        assert box.open_fields(options)["X-Api-Key"] == OPTION_SECRET
        assert options["model_mapping"] == {"fast": "gpt-4o-mini"}
    assert r.json()["provider_options"]["api"] == "completions"


async def test_a_masked_value_cannot_create_a_registry(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    r = await _registry(api, gw["id"], {**_options(), "headers": {"Authorization": "***abcd"}})
    assert r.status_code == 422, r.text
    assert "provider_options.headers.Authorization" in r.json()["message"]


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": f"http://user:{URL_PASSWORD}@llm.example.com/v1"},
        {"base_url": "https://llm.example.com/v1", "endpoint": f"https://u:{URL_PASSWORD}@h"},
    ],
)
async def test_a_url_with_a_password_is_refused_without_echoing_it(
    api: httpx.AsyncClient, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    gw = await _gateway(api)
    with caplog.at_level(logging.DEBUG):
        r = await _registry(api, gw["id"], options)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_failed"
    assert "credentials" in body["message"] and "headers" in body["message"]
    assert URL_PASSWORD not in r.text
    assert URL_PASSWORD not in caplog.text


async def test_a_url_with_a_password_is_refused_on_update(api: httpx.AsyncClient) -> None:
    gw = await _gateway(api)
    created = (await _registry(api, gw["id"], _options())).json()
    r = await api.put(
        f"/v1/gateways/{gw['id']}/registries/{created['id']}",
        json={"provider_options": {"base_url": f"http://me:{URL_PASSWORD}@llm.example.com"}},
    )
    assert r.status_code == 422, r.text
    assert URL_PASSWORD not in r.text


async def test_exporter_headers_are_masked_sealed_and_kept_by_a_masked_put(
    admin: RunningAdmin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    box = SecretBox(admin.settings.secrets_material)
    async with raw_config_events(bus.url) as payloads:
        gw = await _gateway(api, telemetry=_telemetry())
        shown = gw["telemetry"]
        assert shown["exporters"][0]["settings"]["headers"] == {"authorization": "***ijkl"}
        got = await api.get(f"/v1/gateways/{gw['id']}")
        listed = await api.get("/v1/gateways", params={"slug": gw["slug"]})
        for answer in (got, listed):
            assert OTLP_SECRET not in answer.text and "***ijkl" in answer.text
        shown["capture_bodies"] = True
        r = await api.put(f"/v1/gateways/{gw['id']}", json={"telemetry": shown})
        assert r.status_code == 200, r.text
        await wait_for(lambda: len(_sealed_in(payloads, gw["id"], "gateway")) >= 2, timeout=10)
    assert not any(OTLP_SECRET.encode() in p for p in payloads)
    for event in _sealed_in(payloads, gw["id"], "gateway"):
        headers = event.entity.telemetry["exporters"][0]["settings"]["headers"]
        assert headers["authorization"].startswith("tgs1:")
        assert box.open_fields(headers)["authorization"] == OTLP_SECRET
    assert r.json()["telemetry"]["capture_bodies"] is True


async def test_exporter_endpoint_with_a_password_is_refused(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/v1/gateways",
        json={
            "slug": f"sec-{uuid.uuid4().hex[:8]}",
            "telemetry": _telemetry(f"https://otel:{URL_PASSWORD}@collector.example.com:4318"),
        },
    )
    assert r.status_code == 422, r.text
    assert "telemetry.exporters[0].settings.endpoint" in r.json()["message"]
    assert URL_PASSWORD not in r.text


async def test_a_masked_exporter_header_cannot_create_a_gateway(api: httpx.AsyncClient) -> None:
    telemetry = _telemetry()
    telemetry["exporters"][0]["settings"]["headers"]["authorization"] = "***ijkl"
    r = await api.post(
        "/v1/gateways", json={"slug": f"sec-{uuid.uuid4().hex[:8]}", "telemetry": telemetry}
    )
    assert r.status_code == 422, r.text
    assert "telemetry.exporters[0].settings.headers.authorization" in r.json()["message"]


async def test_secrets_stay_out_of_the_logs(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        gw = await _gateway(api, telemetry=_telemetry())
        created = (await _registry(api, gw["id"], _options())).json()
        await api.put(
            f"/v1/gateways/{gw['id']}/registries/{created['id']}",
            json={"provider_options": created["provider_options"]},
        )
        await api.put(f"/v1/gateways/{gw['id']}", json={"telemetry": gw["telemetry"]})
    for secret in (HEADER_SECRET, OPTION_SECRET, OTLP_SECRET):
        assert secret not in caplog.text


async def test_republish_seals_rows_stored_in_clear_before_sealing(
    admin: RunningAdmin, api: httpx.AsyncClient, bus: NatsServer
) -> None:
    from sqlalchemy import text

    from trustgate_admin.services.republish import republish

    legacy = "Bearer legacy-secret-0005-mnop"
    gw = await _gateway(api)
    reg = (await _registry(api, gw["id"], _options())).json()
    clear_options = {"base_url": "https://llm.example.com/v1", "headers": {"Authorization": legacy}}
    clear_telemetry = _telemetry()
    clear_telemetry["exporters"][0]["settings"]["headers"]["authorization"] = legacy
    async with admin.container.engine.begin() as conn:  # rows as an older admin wrote them
        await conn.execute(
            text("UPDATE registries SET provider_options = CAST(:v AS jsonb) WHERE id = :id"),
            {"v": json.dumps(clear_options), "id": reg["id"]},
        )
        await conn.execute(
            text("UPDATE gateways SET telemetry = CAST(:v AS jsonb) WHERE id = :id"),
            {"v": json.dumps(clear_telemetry), "id": gw["id"]},
        )
    async with raw_config_events(bus.url) as payloads:
        await republish(admin.container.uow())
        await wait_for(
            lambda: (
                _sealed_in(payloads, gw["id"], "registry")
                and _sealed_in(payloads, gw["id"], "gateway")
            ),
            timeout=10,
        )
    assert not any(legacy.encode() in p for p in payloads)
    async with admin.container.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT provider_options::text FROM registries WHERE id = :id"),
                {"id": reg["id"]},
            )
        ).scalar_one()
    assert legacy not in stored
    shown = (await api.get(f"/v1/gateways/{gw['id']}/registries/{reg['id']}")).json()
    assert shown["provider_options"]["headers"] == {"Authorization": "***mnop"}
