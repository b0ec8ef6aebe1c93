"""Budget alerts fire and are delivered: spend is fed by writing the ledger's hourly rows
(as the ledger does) and telling the engine, a small real HTTP receiver takes the webhooks.

An alert fires once at 80 %, again at 100 %, never again in that window; a receiver that is
down gets the alert once it is back; the HMAC verifies; Slack gets its body; a budget rule
follows a token_rate_limiter's 24h window; an anomaly fires above its factor and not under
it; two admins evaluating at once still fire once; a consumer's rule fires on that
consumer's spend only."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
from aiohttp import web

from trustgate_admin.governance import alert_evaluation
from trustgate_admin.governance.alert_windows import fixed_window
from trustgate_core.embedded import free_port
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

SECRET = "receiver-hmac-secret-0123456789"
FAST = {"ALERT_EVAL_INTERVAL": 0.2, "ALERT_RETRY_MAX_BACKOFF": 0.2}


@dataclass
class Receiver:
    """A webhook receiver on a port: records each POST (its headers and body)."""

    port: int = field(default_factory=free_port)
    status: int = 200
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    held: socket.socket | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def hold_port(self) -> None:
        """Keep the port bound without listening (connections are refused), so nothing
        else takes it while the receiver is down."""
        self.held = socket.socket()
        self.held.bind(("127.0.0.1", self.port))

    async def start(self) -> None:
        if self.held is not None:
            self.held.close()

        async def hook(request: web.Request) -> web.Response:
            self.received.append((dict(request.headers), await request.read()))
            return web.Response(status=self.status)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture(scope="module")
async def alerts_db(database_factory) -> str:  # type: ignore[no-untyped-def]
    return str(await database_factory("tg_alerts"))


@pytest.fixture(scope="module")
async def fast_admin(alerts_db: str, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    async with running_admin(admin_settings(alerts_db, bus.url, **FAST)) as running:
        yield running


@pytest.fixture
async def api(fast_admin: RunningAdmin) -> AsyncIterator[httpx.AsyncClient]:
    async with fast_admin.client() as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


async def _gateway(api: httpx.AsyncClient) -> str:
    r = await api.post("/v1/gateways", json={"slug": f"gw-{uuid.uuid4().hex[:10]}"})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _rule(api: httpx.AsyncClient, gw: str, **body: Any) -> dict[str, Any]:
    r = await api.post(f"/v1/gateways/{gw}/alerts", json={"name": uuid.uuid4().hex[:8], **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _webhook(receiver: Receiver) -> dict[str, str]:
    return {"type": "webhook", "url": receiver.url, "secret": SECRET}


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


async def _spend(
    admin: RunningAdmin,
    gw: str,
    usd: str = "0",
    *,
    hour: datetime | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    consumer: uuid.UUID | None = None,
) -> None:
    """Add to the gateway's ledger row of ``hour`` (this hour), as a ledger batch does."""
    conn = await asyncpg.connect(admin.settings.dsn)
    try:
        await conn.execute(
            "INSERT INTO usage_hourly (gateway_id, hour, consumer_id, model, provider, requests,"
            " input_tokens, output_tokens, cost_usd) VALUES ($1, $2, $3, 'm', 'p', 1, $4, $5, $6)"
            " ON CONFLICT (gateway_id, hour, consumer_id, model, provider) DO UPDATE SET"
            " input_tokens = usage_hourly.input_tokens + EXCLUDED.input_tokens,"
            " output_tokens = usage_hourly.output_tokens + EXCLUDED.output_tokens,"
            " cost_usd = usage_hourly.cost_usd + EXCLUDED.cost_usd",
            uuid.UUID(gw),
            hour or _hour(datetime.now(UTC)),
            consumer or uuid.UUID(int=0),
            input_tokens,
            output_tokens,
            Decimal(usd),
        )
    finally:
        await conn.close()


async def _evaluate_now(admin: RunningAdmin, rule_id: str) -> int:
    """One evaluation of the rule, as another admin would run it (it waits for one in
    flight to commit): the deliveries it queued."""
    container = admin.container
    async with container.sessions() as session, session.begin():
        return await alert_evaluation.evaluate_rule(
            session, container.box, uuid.UUID(rule_id), datetime.now(UTC)
        )


async def _deliveries(api: httpx.AsyncClient, gw: str, rule_id: str) -> list[dict[str, Any]]:
    r = await api.get(f"/v1/gateways/{gw}/alerts/{rule_id}/deliveries", params={"size": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _window(body: dict[str, Any]) -> tuple[datetime, datetime]:
    window = body["firing"]["window"]
    return datetime.fromisoformat(window["start"]), datetime.fromisoformat(window["end"])


def _verify(headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["X-TrustGate-Timestamp"]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["X-TrustGate-Signature"], "sha256=" + expected.hexdigest())


async def test_a_spend_alert_fires_once_at_80_and_once_at_100_and_not_again_in_the_window(
    fast_admin: RunningAdmin, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    gw = await _gateway(api)
    rule = await _rule(
        api,
        gw,
        kind="spend",
        amount_usd=10,
        period="day",
        thresholds=[80, 100],
        channel=_webhook(receiver),
    )
    engine = fast_admin.container.governance.alerts

    await _spend(fast_admin, gw, "5")  # 50 %: under every threshold
    await engine.committed({uuid.UUID(gw)})
    assert await _evaluate_now(fast_admin, rule["id"]) == 0

    await _spend(fast_admin, gw, "3.5")  # 85 %
    await engine.committed({uuid.UUID(gw)})
    await wait_for(lambda: len(receiver.received) == 1, message="the 80 % alert")
    await _spend(fast_admin, gw, "2")  # 105 %
    await engine.committed({uuid.UUID(gw)})
    await wait_for(lambda: len(receiver.received) == 2, message="the 100 % alert")

    await _spend(fast_admin, gw, "20")  # far past: still nothing new in this window
    await engine.committed({uuid.UUID(gw)})
    assert await _evaluate_now(fast_admin, rule["id"]) == 0
    await engine.committed({uuid.UUID(gw)})
    assert await _evaluate_now(fast_admin, rule["id"]) == 0

    first, second = receiver.bodies()
    assert [first["firing"]["threshold"], second["firing"]["threshold"]] == [80, 100]
    assert first["firing"]["observed"] == "8.5" and first["firing"]["limit"] == "10"
    assert second["firing"]["observed"] == "10.5" and second["firing"]["unit"] == "usd"
    today = _hour(datetime.now(UTC)).replace(hour=0)
    assert _window(first) == (today, today + timedelta(days=1))
    assert first["alert"] == {"id": rule["id"], "name": rule["name"], "kind": "spend"}
    assert first["type"] == "trustgate.alert" and first["test"] is False
    for headers, body in receiver.received:
        assert _verify(headers, body), "the HMAC verifies"
        assert headers["Content-Type"] == "application/json"
    tampered = receiver.received[0][1].replace(b'"8.5"', b'"0.5"')
    assert not _verify(receiver.received[0][0], tampered)

    async def delivered() -> list[dict[str, Any]]:
        items = await _deliveries(api, gw, rule["id"])
        return items if all(d["status"] == "delivered" for d in items) else []

    log = await wait_for(delivered, message="both deliveries recorded")
    assert sorted(d["firing"]["threshold"] for d in log) == [80, 100]
    assert all(d["attempts"] == 1 and d["last_status_code"] == 200 for d in log)
    assert SECRET not in json.dumps(log) and receiver.url not in json.dumps(log)
    everything = await api.get(f"/v1/gateways/{gw}/alert-deliveries")
    assert everything.json()["total"] == 2


async def test_a_jump_past_several_thresholds_sends_the_highest_naming_the_others(
    fast_admin: RunningAdmin, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    gw = await _gateway(api)
    await _rule(api, gw, kind="spend", amount_usd=10, period="month", channel=_webhook(receiver))
    await _spend(fast_admin, gw, "12")
    await fast_admin.container.governance.alerts.committed({uuid.UUID(gw)})
    await wait_for(lambda: receiver.received, message="the alert")
    (body,) = receiver.bodies()
    assert body["firing"]["threshold"] == 100 and body["firing"]["passed"] == [50, 80]


async def test_a_receiver_that_is_down_gets_the_alert_after_it_comes_back(
    fast_admin: RunningAdmin, api: httpx.AsyncClient
) -> None:
    down = Receiver()
    down.hold_port()  # nothing listens yet
    gw = await _gateway(api)
    rule = await _rule(
        api,
        gw,
        kind="spend",
        amount_usd=1,
        period="day",
        thresholds=[100],
        channel=_webhook(down),
    )
    await _spend(fast_admin, gw, "1")
    await fast_admin.container.governance.alerts.committed({uuid.UUID(gw)})

    async def retried() -> dict[str, Any] | None:
        items = await _deliveries(api, gw, rule["id"])
        return items[0] if items and items[0]["attempts"] >= 2 else None

    pending = await wait_for(retried, message="retried while the receiver is down")
    assert pending["status"] == "pending" and pending["last_error"] == "ConnectError"
    assert pending["last_status_code"] is None

    down.status = 503  # back, but failing: still retried
    await down.start()
    try:
        await wait_for(lambda: down.received, message="the receiver got it")
        down.status = 200

        async def delivered() -> dict[str, Any] | None:
            items = await _deliveries(api, gw, rule["id"])
            return items[0] if items[0]["status"] == "delivered" else None

        done = await wait_for(delivered, timeout=10, message="delivered after it came back")
        assert done["last_status_code"] == 200 and done["delivered_at"] is not None
        assert len({h["X-TrustGate-Delivery"] for h, _ in down.received}) == 1
        assert all(_verify(h, b) for h, b in down.received)
        # and the operator sees it on /metrics: one firing, retries, then a delivery
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{fast_admin.operations_url}/metrics")).text
        figures = {
            line.split()[0]: float(line.split()[1])
            for line in text.splitlines()
            if line.startswith("trustgate_admin_alert")
        }
        assert figures["trustgate_admin_alerts_fired_total"] >= 1
        assert figures["trustgate_admin_alert_delivery_retries_total"] >= 2
        assert figures["trustgate_admin_alert_deliveries_total"] >= 1
    finally:
        await down.stop()


async def test_a_delivery_older_than_the_maximum_age_fails(
    alerts_db: str, bus: NatsServer, receiver: Receiver
) -> None:
    receiver.status = 503
    settings = admin_settings(alerts_db, bus.url, **FAST, ALERT_DELIVERY_MAX_AGE=0.5)
    async with running_admin(settings) as admin, admin.client() as api:
        gw = await _gateway(api)
        rule = await _rule(
            api,
            gw,
            kind="spend",
            amount_usd=1,
            period="day",
            thresholds=[100],
            channel=_webhook(receiver),
        )
        await _spend(admin, gw, "1")
        await admin.container.governance.alerts.committed({uuid.UUID(gw)})

        async def failed() -> dict[str, Any] | None:
            items = await _deliveries(api, gw, rule["id"])
            return items[0] if items and items[0]["status"] == "failed" else None

        gave_up = await wait_for(failed, message="given up after the maximum age")
        assert gave_up["last_status_code"] == 503 and gave_up["last_error"] == "HTTP 503"
        assert gave_up["attempts"] == len(receiver.received) >= 1
        assert gave_up["next_attempt_at"] is None and gave_up["delivered_at"] is None


async def test_slack_gets_text_and_blocks_unsigned_and_its_url_is_never_logged(
    fast_admin: RunningAdmin,
    api: httpx.AsyncClient,
    receiver: Receiver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    gw = await _gateway(api)
    await _rule(
        api,
        gw,
        name="slack-spend",
        kind="spend",
        amount_usd=2,
        period="month",
        thresholds=[50],
        channel={"type": "slack", "url": receiver.url},
    )
    await _spend(fast_admin, gw, "1.5")  # the interval's evaluation finds it
    await wait_for(lambda: receiver.received, message="the slack message")
    headers, raw = receiver.received[0]
    body = json.loads(raw)
    assert set(body) == {"text", "blocks"}
    assert "slack-spend" in body["text"] and "75%" in body["text"] and "$1.50" in body["text"]
    assert body["blocks"][0]["type"] == "section"
    assert body["blocks"][0]["text"] == {"type": "mrkdwn", "text": body["text"]}
    assert "X-TrustGate-Signature" not in headers
    assert caplog.records and receiver.url not in caplog.text  # not even at DEBUG


async def test_a_budget_rule_measures_the_token_rate_limiters_24h_window(
    fast_admin: RunningAdmin, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    gw = await _gateway(api)
    settings = {"unit": "tokens", "aggregate": {"max": 1000, "time_window": "24h"}}
    body = {"name": "tokens", "slug": "token_rate_limiter", "settings": settings}
    policy = (await api.post(f"/v1/gateways/{gw}/policies", json=body)).json()["id"]
    assert (await api.post(f"/v1/gateways/{gw}/policies/{policy}/global")).status_code == 200
    rule = await _rule(
        api, gw, kind="budget", policy_id=policy, thresholds=[50], channel=_webhook(receiver)
    )
    now = datetime.now(UTC)
    window = fixed_window(86400, now)  # the proxy's window: epoch-aligned, as its counter
    await _spend(fast_admin, gw, hour=window.start - timedelta(hours=1), input_tokens=10_000)
    await _spend(fast_admin, gw, input_tokens=300, output_tokens=100)  # 40 %
    assert await _evaluate_now(fast_admin, rule["id"]) == 0
    await _spend(fast_admin, gw, input_tokens=50, output_tokens=60)  # 51 %
    await fast_admin.container.governance.alerts.committed({uuid.UUID(gw)})
    await wait_for(lambda: receiver.received, message="the budget alert")
    firing = receiver.bodies()[0]["firing"]
    assert firing["unit"] == "tokens" and firing["observed"] == "510" and firing["limit"] == "1000"
    assert _window(receiver.bodies()[0]) == (window.start, window.end)


async def test_an_anomaly_fires_above_its_factor_and_not_under_it(
    fast_admin: RunningAdmin, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    last_hour = _hour(datetime.now(UTC)) - timedelta(hours=1)
    rules = {}
    for spike in ("2.5", "5"):  # baseline $1 an hour, factor 3: $3 is the limit
        gw = await _gateway(api)
        for n in range(1, 25):
            await _spend(fast_admin, gw, "1", hour=last_hour - timedelta(hours=n))
        await _spend(fast_admin, gw, spike, hour=last_hour)
        await _spend(fast_admin, gw, "50")  # the current hour is not over: not measured
        rules[spike] = await _rule(api, gw, kind="anomaly", factor=3, channel=_webhook(receiver))
    assert await _evaluate_now(fast_admin, rules["2.5"]["id"]) == 0
    await wait_for(lambda: receiver.received, message="the anomaly alert")
    (body,) = receiver.bodies()
    assert body["alert"]["id"] == rules["5"]["id"] and body["alert"]["kind"] == "anomaly"
    firing = body["firing"]
    assert firing["observed"] == "5" and firing["limit"] == "3"
    assert _window(body) == (last_hour, last_hour + timedelta(hours=1))
    assert await _evaluate_now(fast_admin, rules["5"]["id"]) == 0  # once per hour window
    assert await _evaluate_now(fast_admin, rules["2.5"]["id"]) == 0


async def test_two_admins_evaluating_at_once_fire_and_send_once(
    fast_admin: RunningAdmin, alerts_db: str, bus: NatsServer, receiver: Receiver
) -> None:
    async with running_admin(admin_settings(alerts_db, bus.url, **FAST)) as second:
        async with second.client() as api:
            gw = await _gateway(api)
            rule = await _rule(
                api, gw, kind="spend", amount_usd=4, period="day", channel=_webhook(receiver)
            )
            await _spend(second, gw, "3.3")  # 82 %: 50 and 80 at once
            engines = [a.container.governance.alerts for a in (fast_admin, second)]
            await asyncio.gather(*(e.committed({uuid.UUID(gw)}) for e in engines * 3))
            queued = await asyncio.gather(*(_evaluate_now(second, rule["id"]) for _ in range(6)))
            await wait_for(lambda: receiver.received, message="the alert")

            async def settled() -> list[dict[str, Any]]:
                items = await _deliveries(api, gw, rule["id"])
                return items if items and items[0]["status"] == "delivered" else []

            (delivery,) = await wait_for(settled, message="one delivery, delivered")
    assert sum(queued) <= 1
    assert len(receiver.received) == 1
    assert delivery["firing"]["threshold"] == 80 and delivery["firing"]["passed"] == [50]


async def test_a_test_message_reaches_the_channel(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    gw = await _gateway(api)
    rule = await _rule(
        api, gw, kind="spend", amount_usd=10, period="day", channel=_webhook(receiver)
    )
    r = await api.post(f"/v1/gateways/{gw}/alerts/{rule['id']}/test")
    assert r.json() == {"ok": True, "status_code": 200, "error": None}
    (headers, raw) = receiver.received[0]
    assert _verify(headers, raw) and json.loads(raw)["test"] is True
    receiver.status = 500
    r = await api.post(f"/v1/gateways/{gw}/alerts/{rule['id']}/test")
    # no more of the receiver than needed: not its status code
    error = "the receiver answered with an error status"
    assert r.json() == {"ok": False, "status_code": None, "error": error}
    await receiver.stop()
    r = await api.post(f"/v1/gateways/{gw}/alerts/{rule['id']}/test")
    error = "the receiver could not be reached"  # not how: refused, reset, timed out
    assert r.json() == {"ok": False, "status_code": None, "error": error}


async def test_a_consumer_rule_fires_on_its_consumers_spend_and_not_on_anothers(
    fast_admin: RunningAdmin, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    gw = await _gateway(api)
    mine, other = [
        (await api.post(f"/v1/gateways/{gw}/consumers", json={"name": name})).json()["id"]
        for name in ("finance", "research")
    ]
    rule = await _rule(
        api,
        gw,
        kind="spend",
        amount_usd=10,
        period="day",
        thresholds=[100],
        consumer_id=mine,
        channel=_webhook(receiver),
    )
    engine = fast_admin.container.governance.alerts

    # another consumer, and calls with no consumer, spend far past the amount: no alert
    await _spend(fast_admin, gw, "50", consumer=uuid.UUID(other))
    await _spend(fast_admin, gw, "30")
    await _spend(fast_admin, gw, "9", consumer=uuid.UUID(mine))  # 90 % of its own
    await engine.committed({uuid.UUID(gw)})
    assert await _evaluate_now(fast_admin, rule["id"]) == 0
    assert receiver.received == []

    await _spend(fast_admin, gw, "1.5", consumer=uuid.UUID(mine))  # 105 %
    await engine.committed({uuid.UUID(gw)})
    await wait_for(lambda: receiver.received, message="the consumer's alert")
    (body,) = receiver.bodies()
    assert body["firing"]["threshold"] == 100
    assert body["firing"]["observed"] == "10.5"  # its own spend only
    assert body["alert"]["id"] == rule["id"] and body["consumer_id"] == mine
    await engine.committed({uuid.UUID(gw)})
    assert await _evaluate_now(fast_admin, rule["id"]) == 0  # once in the window
