"""Request entries in the audit chain: only a gateway with ``governance.audit_requests``
gets them, one per request the ledger counts (a redelivery adds none), with the request's
metadata and never its bodies or keys; the chain still verifies."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest

from trustgate_admin.governance.chain import verify_database
from trustgate_admin.governance.ledger import Ledger
from trustgate_core.events.requests import RequestEvent
from trustgate_core.events.subjects import requests_subject
from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

BODY = "my card is 4111 1111 1111 1111"
KEY = "sk-live-do-not-log-0123456789"


def event(gateway_id: str, consumer_id: str | None, **fields: Any) -> RequestEvent:
    started = datetime.now(UTC) - timedelta(minutes=5)
    values: dict[str, Any] = {
        "trace_id": uuid.uuid4().hex,
        "gateway_id": gateway_id,
        "consumer_id": consumer_id,
        "subject": "svc-billing",
        "method": "POST",
        "path": f"/v1/chat/completions?key={KEY}",
        "provider": "openai",
        "requested_model": "gpt-4o-mini",
        "model": "gpt-4o-mini",
        "status": 200,
        "timings": {"total_ms": 120.5, "gateway_ms": 2.25},
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
        "cost": {"prompt_usd": 0.000006, "completion_usd": 0.0000072, "total_usd": 0.0000132},
        "request_body": BODY,
        "response_body": f"echo {BODY}",
        "attempts": [
            {
                "registry_id": str(uuid.uuid4()),
                "provider": "openai",
                "attempt": 1,
                "outcome": "success",
                "status_code": 200,
                "latency_ms": 118.0,
            }
        ],
        "started_at": started,
        "ended_at": started + timedelta(milliseconds=120, microseconds=3),
        **fields,
    }
    return RequestEvent.model_validate(values)


@pytest.fixture
async def ledger_admin(database_factory: Any, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    dsn = str(await database_factory("tg_chain_requests"))
    settings = admin_settings(
        dsn,
        bus.url,
        LEDGER_ENABLED=True,
        LEDGER_DURABLE=f"ledger-{uuid.uuid4().hex}",
        LEDGER_FETCH_WAIT=0.2,
        LEDGER_BATCH_SIZE=50,
    )
    async with running_admin(settings) as admin:
        yield admin


async def _gateway(api: Any, audit_requests: bool) -> tuple[str, str]:
    body = {"governance": {"audit_requests": True}} if audit_requests else {}
    r = await api.post("/v1/gateways", json=body)
    assert r.status_code == 201, r.text
    gw = r.json()["id"]
    consumer = (await api.post(f"/v1/gateways/{gw}/consumers", json={"name": "c"})).json()["id"]
    return gw, consumer


async def test_only_an_opted_in_gateway_gets_request_entries_without_bodies_or_keys(
    ledger_admin: RunningAdmin, bus: NatsServer
) -> None:
    ledger: Ledger = ledger_admin.container.governance.ledger
    await wait_for(
        lambda: ledger.consumer is not None and ledger.consumer.consuming,
        timeout=15,
        message="the ledger did not start consuming",
    )
    async with ledger_admin.client() as api:
        audited, consumer = await _gateway(api, audit_requests=True)
        quiet, quiet_consumer = await _gateway(api, audit_requests=False)
        mine = [event(audited, consumer) for _ in range(4)]
        mine.append(
            event(audited, None, status=401, error_kind="unauthenticated", usage=None, cost=None)
        )
        theirs = [event(quiet, quiet_consumer) for _ in range(3)]
        nc = await nats.connect(bus.url)
        try:
            js = nc.jetstream()
            for e in [*mine, *theirs, mine[0]]:  # mine[0] delivered twice
                await js.publish(requests_subject(e.gateway_id), e.model_dump_json().encode())
        finally:
            await nc.close()

        async def entries_of(gw: str) -> list[dict[str, Any]]:
            params = {"kind": "request", "gateway_id": gw, "size": 50}
            page = (await api.get("/v1/audit", params=params)).json()
            return list(page["items"])

        async def all_counted() -> bool:
            totals = [len(await entries_of(gw)) for gw in (audited, quiet)]
            counted = ledger.stats.counted >= len(mine) + len(theirs)
            return counted and totals[0] == len(mine)

        await wait_for(all_counted, timeout=20, message="the request entries never appeared")
        assert await entries_of(quiet) == []
        entries = await entries_of(audited)
        everything = (
            await api.get("/v1/audit", params={"sort": "seq", "order": "asc", "size": 200})
        ).json()["items"]

    assert len(entries) == len(mine)  # the redelivery added none
    by_trace = {e["details"]["trace_id"]: e for e in entries}
    assert set(by_trace) == {e.trace_id for e in mine}
    first = by_trace[mine[0].trace_id]
    assert (first["kind"], first["operation"], first["actor"]) == ("request", "request", "proxy")
    assert first["entity_id"] == consumer and first["revision"] is None
    details = first["details"]
    assert details["path"] == "/v1/chat/completions"
    assert details["usage"] == {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    assert details["cost_usd"] == "0.0000132" and details["model"] == "gpt-4o-mini"
    assert details["status"] == 200 and details["consumer_id"] == consumer
    assert details["started_at"] == mine[0].started_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    refused = by_trace[mine[-1].trace_id]
    assert refused["entity_id"] is None and refused["details"]["error_kind"] == "unauthenticated"
    text = str(entries)
    assert BODY not in text and KEY not in text and "request_body" not in text

    verdict = await verify_database(ledger_admin.settings.dsn)
    assert verdict.ok and verdict.head_hash == max(entries, key=lambda e: e["seq"])["hash"]
    # a tool outside TrustGate recomputes the chain from the API as the docs say
    prev = "0" * 64
    for entry in everything:
        assert entry["prev_hash"] == prev and outside_hash(entry) == entry["hash"], entry
        prev = entry["hash"]
    assert prev == verdict.head_hash and len(everything) == verdict.count


FIELDS = (
    "seq",
    "id",
    "occurred_at",
    "actor",
    "tenant_id",
    "gateway_id",
    "kind",
    "entity_id",
    "operation",
    "revision",
    "details",
)


def outside_hash(entry: dict[str, Any]) -> str:
    """docs/governance-audit.md's recomputation, with the standard library only."""
    body = {k: entry[k] for k in FIELDS}
    at = datetime.fromisoformat(body["occurred_at"].replace("Z", "+00:00"))
    body["occurred_at"] = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(entry["prev_hash"].encode() + text.encode()).hexdigest()


async def test_a_ledger_batch_of_2000_audited_events_is_chained_in_order(
    ledger_admin: RunningAdmin,
) -> None:
    """The ledger's own transaction (``Ledger.count``) with the sink: 4 batches of 500."""
    ledger: Ledger = ledger_admin.container.governance.ledger
    async with ledger_admin.client() as api:
        gw, consumer = await _gateway(api, audit_requests=True)
    events = [event(gw, consumer) for _ in range(2000)]
    for start in range(0, len(events), 500):
        assert len(await ledger.count(events[start : start + 500])) == 500
    verdict = await verify_database(ledger_admin.settings.dsn)
    assert verdict.ok and verdict.count >= 2000 + 2  # + the gateway's and consumer's creation
