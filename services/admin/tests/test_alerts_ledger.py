"""End to end with the usage ledger: request events published on the bus are counted by
the admin's ledger, which tells the alert engine after its commit; the alert reaches the
receiver without waiting for the evaluation interval (set far beyond the test)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import pytest
from aiohttp import web

from trustgate_core.embedded import free_port
from trustgate_core.events.requests import RequestEvent
from trustgate_core.events.subjects import requests_subject
from trustgate_testkit.admin import admin_settings, running_admin
from trustgate_testkit.fixtures import DatabaseFactory, NatsServer, wait_for


def _event(gateway_id: str, usd: float) -> RequestEvent:
    """A successful LLM call as the proxy publishes it, costing ``usd``."""
    now = datetime.now(UTC)
    return RequestEvent.model_validate(
        {
            "trace_id": uuid.uuid4().hex,
            "gateway_id": gateway_id,
            "method": "POST",
            "path": "/v1/chat/completions",
            "provider": "openai",
            "requested_model": "gpt-4o",
            "model": "gpt-4o",
            "status": 200,
            "timings": {"total_ms": 100.0, "gateway_ms": 1.0},
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            "cost": {"prompt_usd": usd / 2, "completion_usd": usd / 2, "total_usd": usd},
            "started_at": now,
            "ended_at": now,
        }
    )


@pytest.fixture
async def received() -> AsyncIterator[tuple[str, list[dict[str, object]]]]:
    bodies: list[dict[str, object]] = []

    async def hook(request: web.Request) -> web.Response:
        bodies.append(json.loads(await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/slack", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/slack", bodies
    finally:
        await runner.cleanup()


async def test_request_events_counted_by_the_ledger_fire_the_alert(
    database_factory: DatabaseFactory,
    bus: NatsServer,
    received: tuple[str, list[dict[str, object]]],
) -> None:
    url, bodies = received
    settings = admin_settings(
        await database_factory("tg_alerts_ledger"),
        bus.url,
        LEDGER_ENABLED=True,
        LEDGER_DURABLE=f"ledger-{uuid.uuid4().hex}",
        LEDGER_FETCH_WAIT=0.2,
        ALERT_EVAL_INTERVAL=3600,
    )
    async with running_admin(settings) as admin, admin.client() as api:
        gw = (await api.post("/v1/gateways", json={})).json()["id"]
        rule = {
            "name": "daily",
            "kind": "spend",
            "amount_usd": 10,
            "period": "day",
            "thresholds": [80],
            "channel": {"type": "slack", "url": url},
        }
        assert (await api.post(f"/v1/gateways/{gw}/alerts", json=rule)).status_code == 201
        nc = await nats.connect(bus.url)
        try:
            js = nc.jetstream()
            for _ in range(9):  # $9 of $10: past 80 %
                event = _event(gw, 1.0)
                await js.publish(
                    requests_subject(event.gateway_id), event.model_dump_json().encode()
                )
        finally:
            await nc.close()
        await wait_for(lambda: bodies, timeout=20, message="the alert after the ledger's batch")
        assert len(bodies) == 1 and "daily" in str(bodies[0]["text"])
