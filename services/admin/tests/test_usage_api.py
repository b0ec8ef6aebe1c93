"""The usage API reads what the ledger counted: for a generated mix of request events
(consumers with chargeback metadata, models, providers, statuses, hours), the JSON rows,
totals and the CSV equal the sums of the events' usage and cost exactly; the forecast
follows from a known history; another tenant's token sees nothing; bad input is a 422."""

from __future__ import annotations

import csv
import io
import random
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from trustgate_admin.api.security import mint_admin_token
from trustgate_core.events.requests import RequestEvent
from trustgate_core.events.subjects import requests_subject
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

FIGURES = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cache_hits",
    "fallbacks",
)
NOW = datetime.now(UTC)
FROM = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
TO = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
MICRO = Decimal("0.000001")
HOUR = timedelta(hours=1)


@dataclass
class Mix:
    admin: RunningAdmin
    dsn: str
    gateway_id: str
    consumers: dict[str, dict[str, Any]]  # id -> {"name", "metadata"}
    events: list[RequestEvent]


def _event(gw: str, rng: random.Random, consumer: str | None) -> RequestEvent:
    started = NOW - timedelta(minutes=rng.randrange(0, 60 * 50))
    status = rng.choice([200, 200, 200, 200, 429, 500, 502])
    model = rng.choice(["gpt-4o-mini", "claude-3-5-haiku", None])
    provider = {"gpt-4o-mini": "openai", "claude-3-5-haiku": "anthropic"}.get(model or "")
    usage = None
    if status == 200 or rng.random() < 0.3:
        usage = {
            "prompt_tokens": rng.randrange(1, 4000),
            "completion_tokens": rng.randrange(0, 900),
            "total_tokens": 0,
            "cached_input_tokens": rng.choice([None, 0, rng.randrange(1, 500)]),
        }
    cost = None
    if usage is not None and model is not None:
        total = round(rng.uniform(0, 0.05), 7)
        cost = {"prompt_usd": total, "completion_usd": 0.0, "total_usd": total}
    attempts = [
        {
            "registry_id": str(uuid.uuid4()),
            "provider": provider or "openai",
            "attempt": n + 1,
            "fallback": n > 0,
            "outcome": "success",
            "latency_ms": 10.0,
        }
        for n in range(rng.choice([0, 1, 1, 2]))
    ]
    return RequestEvent.model_validate(
        {
            "trace_id": uuid.uuid4().hex,
            "gateway_id": gw,
            "consumer_id": consumer,
            "method": "POST",
            "path": "/v1/chat/completions",
            "provider": provider,
            "requested_model": model or "auto",
            "model": model,
            "status": status,
            "error_kind": None if status == 200 else rng.choice([None, "upstream_status"]),
            "timings": {"total_ms": 100.0, "gateway_ms": 1.0},
            "usage": usage,
            "cost": cost,
            "cache": rng.choice([None, {"outcome": "hit"}, {"outcome": "miss"}]),
            "attempts": attempts,
            "started_at": started,
            "ended_at": started + timedelta(seconds=1),
        }
    )


def _figures(e: RequestEvent) -> dict[str, Any]:
    return {
        "requests": 1,
        "errors": int(e.status >= 400 or e.error_kind is not None),
        "input_tokens": e.usage.prompt_tokens if e.usage else 0,
        "output_tokens": e.usage.completion_tokens if e.usage else 0,
        "cached_tokens": (e.usage.cached_input_tokens or 0) if e.usage else 0,
        "cost_usd": Decimal(str(e.cost.total_usd)) if e.cost else Decimal(0),
        "cache_hits": int(e.cache is not None and e.cache.outcome == "hit"),
        "fallbacks": int(any(a.fallback for a in e.attempts)),
    }


def _sum(events: list[RequestEvent], key: Any) -> dict[Any, dict[str, Any]]:
    sums: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {f: Decimal(0) if f == "cost_usd" else 0 for f in FIGURES}
    )
    for e in events:
        for f, v in _figures(e).items():
            sums[key(e)][f] += v
    return sums


def _parsed(figures: dict[str, Any]) -> dict[str, Any]:
    """An answer's figures with cost_usd as the exact Decimal."""
    return {f: Decimal(figures[f]) if f == "cost_usd" else int(figures[f]) for f in FIGURES}


@pytest.fixture(scope="module")
async def mix(database_factory, bus: NatsServer) -> AsyncIterator[Mix]:  # type: ignore[no-untyped-def]
    dsn = str(await database_factory("tg_usage"))
    settings = admin_settings(
        dsn, bus.url, LEDGER_ENABLED=True, LEDGER_DURABLE=f"ledger-{uuid.uuid4().hex}"
    )
    async with running_admin(settings) as admin, admin.client() as api:
        gw = (await api.post("/v1/gateways", json={})).json()["id"]
        consumers: dict[str, dict[str, Any]] = {}
        for name, metadata in [
            ("research", {"department": "R&D", "cost_center": "CC-100"}),
            ('=HYPERLINK("http://x")', {"department": "+sales", "cost_center": "@ops"}),
            ("support", {"department": "Support"}),
        ]:
            body = {"name": name, "metadata": metadata}
            r = await api.post(f"/v1/gateways/{gw}/consumers", json=body)
            assert r.status_code == 201, r.text
            assert r.json()["metadata"] == metadata
            consumers[r.json()["id"]] = {"name": name, "metadata": metadata}
        rng = random.Random(17)
        who = [*consumers, None]
        events = [_event(gw, rng, rng.choice(who)) for _ in range(300)]
        nc = await nats.connect(bus.url)
        try:
            js = nc.jetstream()
            for e in events:
                await js.publish(requests_subject(gw), e.model_dump_json().encode())
        finally:
            await nc.close()

        async def counted() -> bool:
            r = await api.get(f"/v1/gateways/{gw}/usage", params={"from": FROM, "to": TO})
            return bool(r.json()["totals"]["requests"] == len(events))

        await wait_for(counted, timeout=30, interval=0.1, message="the ledger did not count")
        yield Mix(admin, dsn, gw, consumers, events)


@pytest.fixture
async def api(mix: Mix) -> AsyncIterator[httpx.AsyncClient]:
    async with mix.admin.client() as client:
        yield client


def _hour(e: RequestEvent) -> str:
    return e.started_at.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


async def test_grouped_rows_equal_the_events_sums_exactly(mix: Mix, api: httpx.AsyncClient) -> None:
    r = await api.get(
        f"/v1/gateways/{mix.gateway_id}/usage",
        params={"from": FROM, "to": TO, "group_by": "consumer,model,provider,hour"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    want = _sum(
        mix.events,
        lambda e: (
            str(e.consumer_id) if e.consumer_id else None,
            e.model or e.requested_model or "",
            e.provider or "",
            _hour(e),
        ),
    )
    got = {
        (row["consumer_id"], row["model"], row["provider"], row["hour"]): _parsed(row)
        for row in body["rows"]
    }
    assert got == dict(want)
    assert _parsed(body["totals"]) == _sum(mix.events, lambda e: "all")["all"]
    assert body["group_by"] == ["consumer", "model", "provider", "hour"]
    for row in body["rows"]:
        if row["consumer_id"] is None:
            assert row["consumer_name"] == "(none)"
            assert row["metadata"] == {}
        else:
            known = mix.consumers[row["consumer_id"]]
            assert (row["consumer_name"], row["metadata"]) == (known["name"], known["metadata"])


async def test_days_months_and_one_consumer(mix: Mix, api: httpx.AsyncClient) -> None:
    url = f"/v1/gateways/{mix.gateway_id}/usage"
    by_day = (await api.get(url, params={"from": FROM, "to": TO})).json()  # day by default
    want = _sum(mix.events, lambda e: e.started_at.astimezone(UTC).strftime("%Y-%m-%d"))
    assert {row["day"]: _parsed(row) for row in by_day["rows"]} == dict(want)
    by_month = (await api.get(url, params={"from": FROM, "to": TO, "group_by": "month"})).json()
    want = _sum(mix.events, lambda e: e.started_at.astimezone(UTC).strftime("%Y-%m"))
    assert {row["month"]: _parsed(row) for row in by_month["rows"]} == dict(want)
    one = next(iter(mix.consumers))
    mine = [e for e in mix.events if str(e.consumer_id) == one]
    r = await api.get(url, params={"from": FROM, "to": TO, "group_by": "model", "consumer_id": one})
    assert _parsed(r.json()["totals"]) == _sum(mine, lambda e: "all")["all"]
    assert r.json()["forecast"]["month"] == NOW.strftime("%Y-%m")


async def test_the_chargeback_csv_has_the_metadata_columns_and_exact_figures(
    mix: Mix, api: httpx.AsyncClient
) -> None:
    r = await api.get(
        f"/v1/gateways/{mix.gateway_id}/usage",
        params={"from": FROM, "to": TO, "group_by": "consumer", "format": "csv"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith("attachment; filename=")
    reader = csv.DictReader(io.StringIO(r.text))
    assert reader.fieldnames == [
        "consumer_id",
        "consumer_name",
        "cost_center",
        "department",
        *FIGURES,
    ]
    rows = list(reader)
    want = _sum(mix.events, lambda e: str(e.consumer_id) if e.consumer_id else "")
    assert {row["consumer_id"]: _parsed(row) for row in rows} == dict(want)
    by_id = {row["consumer_id"]: row for row in rows}
    for cid, c in mix.consumers.items():
        row = by_id[cid]
        for column, value in [("consumer_name", c["name"]), *c["metadata"].items()]:
            # a cell that a spreadsheet would run as a formula is quoted as text
            expected = "'" + value if value[0] in "=+-@" else value
            assert row[column] == expected
    assert by_id[""]["consumer_name"] == "(none)"


async def test_another_tenants_token_sees_no_usage(mix: Mix) -> None:
    secret = mix.admin.settings.server_secret_key
    owner = mix.admin.client(mint_admin_token(secret, tenant_id="tenant-usage-a"))
    stranger = mix.admin.client(mint_admin_token(secret, tenant_id="tenant-usage-b"))
    async with owner, stranger:
        gw = (await owner.post("/v1/gateways", json={})).json()["id"]
        assert (await owner.get(f"/v1/gateways/{gw}/usage")).status_code == 200
        assert (await owner.get(f"/v1/gateways/{gw}/usage/forecast")).status_code == 200
        for path in (f"/v1/gateways/{gw}/usage", f"/v1/gateways/{gw}/usage/forecast"):
            r = await stranger.get(path, params={"format": "csv"})
            assert r.status_code == 404
            assert r.json() == {"error": "not_found"}
        # the gateway with the mix, too
        r = await stranger.get(f"/v1/gateways/{mix.gateway_id}/usage")
        assert r.status_code == 404


async def test_a_gateway_without_usage_has_no_rows_and_zero_totals(
    mix: Mix, api: httpx.AsyncClient
) -> None:
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    body = (await api.get(f"/v1/gateways/{gw}/usage")).json()
    assert body["rows"] == []
    assert body["totals"]["requests"] == 0 and body["totals"]["cost_usd"] == "0"
    assert body["from"] == NOW.strftime("%Y-%m-01T00:00:00Z")
    r = await api.get(f"/v1/gateways/{gw}/usage", params={"format": "csv"})
    assert r.text.splitlines() == [",".join(["day", *FIGURES])]
    missing = await api.get(f"/v1/gateways/{uuid.uuid4()}/usage")
    assert missing.status_code == 404


async def test_the_forecast_follows_from_a_known_history(mix: Mix, api: httpx.AsyncClient) -> None:
    gw = (await api.post("/v1/gateways", json={})).json()["id"]
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    history = {
        this_hour: Decimal("1.25"),
        this_hour - timedelta(days=1): Decimal("2.5"),
        this_hour - timedelta(days=3): Decimal("0.333333333333"),
        this_hour - timedelta(days=9): Decimal("7"),
        month_start - timedelta(hours=1): Decimal("100"),  # last month
    }
    conn = await asyncpg.connect(mix.dsn)
    try:
        for hour, cost in history.items():
            await conn.execute(
                "INSERT INTO usage_hourly (gateway_id, hour, consumer_id, model, provider, "
                "requests, cost_usd) VALUES ($1, $2, $3, 'm', 'p', 1, $4)",
                uuid.UUID(gw),
                hour,
                uuid.UUID(int=0),
                cost,
            )
    finally:
        await conn.close()
    r = await api.get(f"/v1/gateways/{gw}/usage/forecast")
    assert r.status_code == 200, r.text
    f = r.json()
    this_month = [c for h, c in history.items() if h >= month_start]
    assert Decimal(f["spent_usd"]) == sum(this_month, Decimal(0))
    window_from = datetime.fromisoformat(f["burn_window"]["from"])
    window_to = datetime.fromisoformat(f["burn_window"]["to"])
    assert window_from >= month_start
    window_days = (Decimal((window_to - window_from).total_seconds()) / 86400).quantize(MICRO)
    # the window's hours are whole: one that has begun counts (the month's first day)
    window_end = window_to if window_to.minute == 0 else window_to.replace(minute=0) + HOUR
    in_window = sum((c for h, c in history.items() if window_from <= h < window_end), Decimal(0))
    burn = (in_window / window_days).quantize(MICRO, ROUND_HALF_EVEN)
    assert Decimal(f["burn_rate_usd_per_day"]) == burn
    remaining = Decimal(str(f["days_remaining"]))
    projected = (Decimal(f["spent_usd"]) + burn * remaining).quantize(MICRO, ROUND_HALF_EVEN)
    assert Decimal(f["projected_usd"]) == projected
    assert f["days_in_month"] in (28, 29, 30, 31)
    assert abs(f["days_elapsed"] + f["days_remaining"] - f["days_in_month"]) < 0.001
    # the usage answer carries the same forecast
    body = (await api.get(f"/v1/gateways/{gw}/usage")).json()
    assert body["forecast"]["spent_usd"] == f["spent_usd"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-12-05", "to": "2026-12-05"}, "before"),
        ({"from": "2026-12-06", "to": "2026-12-05T10:00:00Z"}, "before"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "400 days"),
        ({"group_by": "consumer,team"}, "consumer, model, provider, hour, day, month"),
        ({"format": "xlsx"}, "format"),
        ({"consumer_id": "not-a-uuid"}, "consumer_id"),
    ],
)
async def test_bad_input_is_a_422_naming_it(
    mix: Mix, api: httpx.AsyncClient, params: dict[str, str], names: str
) -> None:
    r = await api.get(f"/v1/gateways/{mix.gateway_id}/usage", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid_query"
    assert names in r.json()["message"]
