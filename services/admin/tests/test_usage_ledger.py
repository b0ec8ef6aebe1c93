"""The usage ledger counts each request event exactly once, on real NATS JetStream and
real Postgres: an event published twice, a batch committed but never acked (the admin died
in between) and a restart while events flow all end with exact totals."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from trustgate_core.events.requests import RequestEvent
from trustgate_core.events.subjects import requests_subject
from trustgate_testkit.admin import (
    RunningAdmin,
    ledger_consuming,
    ledger_of,
    ledger_settings,
    running_admin,
)
from trustgate_testkit.fixtures import NatsServer, wait_for


def event(gateway_id: str, **fields: Any) -> RequestEvent:
    """A request event as the proxy publishes it (an LLM call that succeeded)."""
    started = fields.pop("started_at", datetime.now(UTC) - timedelta(hours=2))
    values: dict[str, Any] = {
        "trace_id": uuid.uuid4().hex,
        "gateway_id": gateway_id,
        "method": "POST",
        "path": "/v1/chat/completions",
        "provider": "openai",
        "requested_model": "gpt-4o-mini",
        "model": "gpt-4o-mini",
        "status": 200,
        "timings": {"total_ms": 120.0, "gateway_ms": 2.0},
        "usage": {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52},
        "cost": {"prompt_usd": 0.000006, "completion_usd": 0.0000072, "total_usd": 0.0000132},
        "started_at": started,
        "ended_at": started + timedelta(milliseconds=120),
        **fields,
    }
    return RequestEvent.model_validate(values)


class Bus:
    def __init__(self, nc: Any) -> None:
        self.js = nc.jetstream()

    async def publish(self, e: RequestEvent) -> None:
        await self.js.publish(requests_subject(e.gateway_id), e.model_dump_json().encode())


@pytest.fixture
async def publisher(bus: NatsServer) -> AsyncIterator[Bus]:
    nc = await nats.connect(bus.url)
    try:
        yield Bus(nc)
    finally:
        await nc.close()


@pytest.fixture
async def ledger_db(database_factory) -> str:  # type: ignore[no-untyped-def]
    return str(await database_factory("tg_ledger"))


async def gateway(admin: RunningAdmin) -> str:
    async with admin.client() as api:
        r = await api.post("/v1/gateways", json={})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def rollup_totals(dsn: str, gateway_id: str) -> tuple[int, int, Decimal]:
    """(requests, input tokens, cost) over the gateway's rollups, read from Postgres."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(requests), 0) AS r, coalesce(sum(input_tokens), 0) AS i, "
            "coalesce(sum(cost_usd), 0) AS c FROM usage_hourly WHERE gateway_id = $1",
            uuid.UUID(gateway_id),
        )
        assert row is not None
        return int(row["r"]), int(row["i"]), Decimal(row["c"])
    finally:
        await conn.close()


def expected(events: list[RequestEvent]) -> tuple[int, int, Decimal]:
    return (
        len(events),
        sum(e.usage.prompt_tokens for e in events if e.usage),
        sum((Decimal(str(e.cost.total_usd)) for e in events if e.cost), Decimal(0)),
    )


async def until_counted(dsn: str, gateway_id: str, events: list[RequestEvent]) -> None:
    want = expected(events)

    async def done() -> bool:
        return await rollup_totals(dsn, gateway_id) == want

    await wait_for(done, timeout=30, interval=0.05, message=f"rollups never reached {want}")


async def test_an_event_published_twice_is_counted_once(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    settings = ledger_settings(ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}")
    async with running_admin(settings) as admin:
        await ledger_consuming(admin)
        gw = await gateway(admin)
        once, twice = event(gw), event(gw)
        for e in (once, twice, twice):
            await publisher.publish(e)
        ledger = ledger_of(admin)
        await wait_for(lambda: ledger.stats.duplicates >= 1, timeout=15)
        await until_counted(ledger_db, gw, [once, twice])
        # and a third copy, in a later batch, changes nothing either
        await publisher.publish(twice)
        await wait_for(lambda: ledger.stats.duplicates >= 2, timeout=15)
        assert await rollup_totals(ledger_db, gw) == expected([once, twice])
        # the operator sees the same on the operations port
        async with httpx.AsyncClient() as http:
            text = (await http.get(f"{admin.operations_url}/metrics")).text
        figures = dict(line.split() for line in text.splitlines() if line[:1] not in ("#", ""))
        assert float(figures["trustgate_admin_ledger_duplicates_total"]) >= 2


async def test_a_batch_committed_but_never_acked_is_counted_once_when_redelivered(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    """An admin that committed a batch and died before acking it: the stream redelivers
    those events to the next ledger, which finds them counted already."""
    settings = ledger_settings(ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}")
    async with running_admin(settings) as admin:
        await ledger_consuming(admin)
        gw = await gateway(admin)
        batch = [event(gw) for _ in range(20)]
        ledger = ledger_of(admin)
        # what the dead admin did: the transaction, without the acks
        assert len(await ledger.count(batch)) == 20
        duplicates = ledger.stats.duplicates
        fresh = event(gw)
        for e in [*batch, fresh]:
            await publisher.publish(e)
        await wait_for(lambda: ledger.stats.duplicates >= duplicates + 20, timeout=15)
        await until_counted(ledger_db, gw, [*batch, fresh])


async def test_an_admin_stopped_between_commit_and_ack_has_its_batch_redelivered_once(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    """The real redelivery: the first admin commits a batch and hangs before acking it
    (as if it died there); once it is gone, JetStream redelivers that batch to the next
    admin on the durable after the ack wait, and the next admin counts none of it again."""
    durable = f"ledger-{uuid.uuid4().hex}"
    settings = ledger_settings(ledger_db, bus.url, durable, LEDGER_ACK_WAIT=1.0)
    gw = str(uuid.uuid4())
    events = [event(gw) for _ in range(10)]
    committed: list[RequestEvent] = []
    async with running_admin(settings) as first:
        await ledger_consuming(first)
        ledger = ledger_of(first)
        count = ledger.count

        async def commit_then_hang(batch: Any) -> list[RequestEvent]:
            counted = await count(batch)
            mine = [e for e in counted if str(e.gateway_id) == gw]
            if mine:  # (older events on the shared bus pass)
                committed.extend(mine)
                await asyncio.Event().wait()  # never acks: stopped (cancelled) here
            return counted

        ledger.count = commit_then_hang  # type: ignore[method-assign]
        for e in events:
            await publisher.publish(e)
        await wait_for(lambda: committed, timeout=15, message="the first admin committed none")
    assert (await rollup_totals(ledger_db, gw))[0] == len(committed)
    async with running_admin(settings) as second:
        await until_counted(ledger_db, gw, events)
        await wait_for(lambda: ledger_of(second).stats.duplicates >= len(committed), timeout=15)
    assert await rollup_totals(ledger_db, gw) == expected(events)


async def test_a_restart_while_events_flow_loses_none_and_counts_none_twice(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    durable = f"ledger-{uuid.uuid4().hex}"
    stack = contextlib.AsyncExitStack()
    first = await stack.enter_async_context(
        running_admin(ledger_settings(ledger_db, bus.url, durable))
    )
    await ledger_consuming(first)
    gw = await gateway(first)
    events = [event(gw, status=200 + (i % 3) * 100) for i in range(1000)]

    async def publish_all() -> None:
        for e in events:
            await publisher.publish(e)

    flowing = asyncio.create_task(publish_all())
    try:
        # stop the first admin once it has counted some, while the rest still arrive
        await wait_for(lambda: ledger_of(first).stats.counted >= 50, timeout=15)
        await stack.aclose()
        async with running_admin(ledger_settings(ledger_db, bus.url, durable)) as second:
            await flowing
            await until_counted(ledger_db, gw, events)
            assert ledger_of(second).stats.counted > 0  # the second admin took over
    finally:
        await stack.aclose()
        if not flowing.done():
            flowing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flowing


async def test_an_undecodable_message_is_dropped_and_the_events_after_it_counted(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    settings = ledger_settings(ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}")
    async with running_admin(settings) as admin:
        await ledger_consuming(admin)
        gw = await gateway(admin)
        await publisher.js.publish(requests_subject(gw), b"{not an event")
        after = event(gw)
        await publisher.publish(after)
        await until_counted(ledger_db, gw, [after])
        assert ledger_of(admin).stats.undecodable >= 1


async def test_remembered_trace_ids_are_pruned_after_the_retention(
    ledger_db: str, bus: NatsServer
) -> None:
    settings = ledger_settings(ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}")
    async with running_admin(settings) as admin:
        gw = await gateway(admin)
        ledger = ledger_of(admin)
        await ledger.count([event(gw) for _ in range(5)])
        assert await ledger.prune() == 0  # all younger than the retention
        later = datetime.now(UTC) + timedelta(seconds=settings.ledger_dedupe_retention + 60)
        assert await ledger.prune(now=later) >= 5


async def test_a_part_failing_after_the_commit_loses_nothing_and_the_batch_stays_acked(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    told: list[set[uuid.UUID]] = []

    class Failing:
        async def committed(self, gateway_ids: set[uuid.UUID]) -> None:
            told.append(gateway_ids)
            raise RuntimeError("the alert engine is broken")

    settings = ledger_settings(
        ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}", LEDGER_ACK_WAIT=1.0
    )
    async with running_admin(settings) as admin:
        await ledger_consuming(admin)
        ledger = ledger_of(admin)
        ledger.after = [*ledger.after, Failing()]
        gw = str(uuid.uuid4())
        first = event(gw)
        await publisher.publish(first)
        await until_counted(ledger_db, gw, [first])
        assert any(uuid.UUID(gw) in ids for ids in told)
        # acked: a later event is counted and the first never comes back as a duplicate
        duplicates = ledger.stats.duplicates
        second = event(gw)
        await publisher.publish(second)
        await until_counted(ledger_db, gw, [first, second])

        async def all_acked() -> bool:
            info = await publisher.js.consumer_info("TRUSTGATE_REQUESTS", settings.ledger_durable)
            return info.num_ack_pending == 0

        await wait_for(all_acked, timeout=10)
        assert ledger.stats.duplicates == duplicates


async def test_a_batch_whose_transaction_fails_comes_back_and_is_counted_once(
    ledger_db: str, bus: NatsServer, publisher: Bus
) -> None:
    """A sink that fails inside the transaction (as a database error would) rolls the
    whole batch back: nothing is counted, the batch is redelivered, and counted once."""
    gw = str(uuid.uuid4())
    failures: list[int] = []

    class FailsOnce:
        async def record(self, session: Any, events: Any) -> None:
            if not failures and any(str(e.gateway_id) == gw for e in events):
                failures.append(len(events))
                raise ConnectionError("the database went away")

    settings = ledger_settings(ledger_db, bus.url, f"ledger-{uuid.uuid4().hex}")
    async with running_admin(settings) as admin:
        await ledger_consuming(admin)
        ledger = ledger_of(admin)
        ledger.sinks = [*ledger.sinks, FailsOnce()]
        events = [event(gw) for _ in range(5)]
        for e in events:
            await publisher.publish(e)
        await until_counted(ledger_db, gw, events)
        assert failures and ledger.stats.failed_batches >= 1
