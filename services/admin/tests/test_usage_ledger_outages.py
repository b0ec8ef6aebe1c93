"""What the usage ledger keeps through an outage, with real processes and real failures
(docs/governance-usage.md, "What survives what"):

- a ``trustgate proxy`` stopped gracefully (SIGTERM) while requests flow, and a new one
  started: every request a client got an answer for is counted once;
- the ledger's database refusing connections for a while (its backends terminated, the
  database closed to new connections), then back: nothing lost, nothing counted twice;
- a restart of (a private) NATS while requests flow through a proxy: every request
  answered while NATS was away or after is counted once (the proxy holds its events in
  memory meanwhile); what was on the wire as NATS went down may be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from trustgate_core.bus import connect, ensure_streams
from trustgate_core.events import CONFIG_STREAM
from trustgate_core.events.requests import RequestEvent
from trustgate_core.events.subjects import requests_subject
from trustgate_testkit.admin import (
    ledger_consuming,
    ledger_of,
    ledger_settings,
    running_admin,
)
from trustgate_testkit.fixtures import Infra, NatsServer, wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process, until_readyz
from trustgate_testkit.proxy.mock_upstream import serve_mock
from trustgate_testkit.proxy.tenant import Tenant, new_tenant

pytestmark = pytest.mark.slow

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}


def event(gateway_id: str) -> RequestEvent:
    """A request event as the proxy publishes it (an LLM call that succeeded)."""
    started = datetime.now(UTC) - timedelta(hours=1)
    return RequestEvent.model_validate(
        {
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
        }
    )


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


@pytest.fixture
async def ledger_db(database_factory) -> str:  # type: ignore[no-untyped-def]
    return str(await database_factory("tg_ledger"))


@contextlib.asynccontextmanager
async def tenant_on(nats_url: str, upstream_url: str) -> AsyncIterator[Tenant]:
    """A gateway with one consumer and key, published on the bus before any proxy starts
    (a proxy then knows it when it is ready: no call is refused for want of config)."""
    nc = await connect(nats_url, name="ledger-outages")
    try:
        await ensure_streams(nc.jetstream(), [CONFIG_STREAM])
        tenant = await new_tenant(nc)
        await tenant.add_registry("mock", upstream_url)
        await tenant.add_consumer("app", ["mock"])
        yield tenant
    finally:
        await nc.close()


def proxy(nats_url: str, infra: Infra, log: Path) -> contextlib.AbstractAsyncContextManager[Any]:
    env = {
        "NATS_URL": nats_url,
        "REDIS_URL": infra.redis_url,
        "PROXY_CONFIG_SNAPSHOT": "",
    }
    return plane_process("proxy", env, log)


class Clients:
    """Clients calling through a proxy until told to stop; ``answered`` counts the calls
    that got an HTTP answer (whatever its status: the proxy records each as an event)."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.answered = 0
        self.ok = 0
        self.unanswered = 0  # connection refused or closed: the call never happened
        self.url = ""
        self.phase = "before"
        # the answered calls' trace ids (the proxy's X-AG-Trace-Id), in answer order, with
        # the phase of the test they were answered in
        self.traces: list[tuple[str, str]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def headers(self) -> dict[str, str]:
        return {"X-AG-Gateway-Slug": self.tenant.slug, "X-AG-API-Key": self.tenant.keys["app"]}

    async def call(self, http: httpx.AsyncClient) -> httpx.Response | None:
        slug = self.tenant.consumers["app"].slug
        try:
            r = await http.post(
                f"{self.url}/{slug}/v1/chat/completions", json=BODY, headers=self.headers()
            )
        except httpx.TransportError:
            self.unanswered += 1
            return None
        self.answered += 1
        self.ok += r.status_code == 200
        self.traces.append((self.phase, r.headers["x-ag-trace-id"]))
        return r

    def of(self, *phases: str) -> list[str]:
        return [trace for phase, trace in self.traces if phase in phases]

    async def _loop(self) -> None:
        async with httpx.AsyncClient(timeout=15) as http:
            while not self._stop.is_set():
                if await self.call(http) is None:
                    await asyncio.sleep(0.01)  # the proxy is away: do not spin

    def start(self, n: int) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(n)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def serving(clients: Clients, plane: PlaneProcess) -> None:
    """Until ``plane`` answers the tenant's call with a 200 (counted as an answer)."""
    clients.url = plane.url
    async with httpx.AsyncClient(timeout=15) as http:

        async def ok() -> bool:
            r = await clients.call(http)
            return r is not None and r.status_code == 200

        await wait_for(ok, timeout=30, message="the proxy never served the tenant")


async def until_requests(dsn: str, gateway_id: str, want: Callable[[], int]) -> None:
    counted = 0

    async def done() -> bool:
        nonlocal counted
        counted = (await rollup_totals(dsn, gateway_id))[0]
        return counted == want()

    try:
        await wait_for(done, timeout=30, interval=0.1)
    except AssertionError:
        raise AssertionError(f"the ledger counted {counted} requests, not {want()}") from None


async def uncounted(dsn: str, traces: list[str]) -> set[str]:
    """The trace ids among ``traces`` the ledger has not counted."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT trace_id FROM usage_events_seen WHERE trace_id = ANY($1::text[])", traces
        )
    finally:
        await conn.close()
    return set(traces) - {row["trace_id"] for row in rows}


async def until_counted(dsn: str, gateway_id: str, events: list[RequestEvent]) -> None:
    want = expected(events)

    async def done() -> bool:
        return await rollup_totals(dsn, gateway_id) == want

    await wait_for(done, timeout=60, interval=0.1, message=f"rollups never reached {want}")


async def settled(nats_url: str, durable: str) -> None:
    """Until the durable has been given every event and acked it (nothing more to come)."""
    nc = await connect(nats_url, name="ledger-outages-settled")
    js = nc.jetstream()
    try:

        async def done() -> bool:
            info = await js.consumer_info("TRUSTGATE_REQUESTS", durable)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await wait_for(done, timeout=30, message="the ledger's durable never settled")
    finally:
        await nc.close()


async def test_a_proxy_stopped_gracefully_while_requests_flow_loses_no_event(
    ledger_db: str, nats_server: NatsServer, infra: Infra, tmp_path: Path
) -> None:
    durable = f"ledger-{uuid.uuid4().hex}"
    settings = ledger_settings(ledger_db, nats_server.url, durable)
    async with (
        running_admin(settings) as admin,
        serve_mock() as upstream,
        tenant_on(nats_server.url, upstream.url) as tenant,
    ):
        await ledger_consuming(admin)
        gw = str(tenant.gateway.id)
        clients = Clients(tenant)
        async with proxy(nats_server.url, infra, tmp_path / "first.log") as first:
            await serving(clients, first)
            clients.start(8)
            await wait_for(lambda: clients.ok >= 200, timeout=30)
            # SIGTERM while eight clients are calling: in-flight calls are answered, the
            # buffered events flushed, then the process exits cleanly
            first.proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(first.proc.wait, 30) == 0
            await wait_for(lambda: clients.unanswered > 0, timeout=10)
            async with proxy(nats_server.url, infra, tmp_path / "second.log") as second:
                await until_readyz(second)  # a proxy without a snapshot answers 503 before
                clients.url = second.url
                before = clients.ok
                await wait_for(lambda: clients.ok >= before + 200, timeout=30)
                await clients.stop()
        # both proxies gone (the second stopped gracefully too): every answer is counted,
        # each once
        assert clients.answered == clients.ok  # every answered call was served
        await until_requests(ledger_db, gw, lambda: clients.answered)
        await settled(nats_server.url, durable)
        assert (await rollup_totals(ledger_db, gw))[0] == clients.answered
        assert await uncounted(ledger_db, clients.of("before")) == set()


async def test_a_database_that_refuses_the_ledger_for_a_while_loses_nothing_and_counts_once(
    ledger_db: str, nats_server: NatsServer, infra: Infra
) -> None:
    """The ledger's database closed to connections and its sessions terminated while
    events flow: batches fail and come back; once it is open again every event is counted
    exactly once."""
    name = ledger_db.rsplit("/", 1)[1]
    durable = f"ledger-{uuid.uuid4().hex}"
    settings = ledger_settings(ledger_db, nats_server.url, durable)
    server = await asyncpg.connect(infra.postgres_dsn)
    nc = await connect(nats_server.url, name="ledger-outages-publisher")
    js = nc.jetstream()

    async def publish(e: RequestEvent) -> None:
        await js.publish(requests_subject(e.gateway_id), e.model_dump_json().encode())

    try:
        async with running_admin(settings) as admin:
            await ledger_consuming(admin)
            ledger = ledger_of(admin)
            gw = str(uuid.uuid4())
            before = [event(gw) for _ in range(100)]
            during = [event(gw) for _ in range(300)]
            for e in before:
                await publish(e)
            await until_counted(ledger_db, gw, before)

            failed = ledger.stats.failed_batches
            await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
            with pytest.raises(asyncpg.PostgresError):  # the outage is real
                await (await asyncpg.connect(ledger_db)).close()
            for e in during:
                await publish(e)
            # the ledger tried, failed and will try again (the batch redelivered)
            await wait_for(lambda: ledger.stats.failed_batches >= failed + 2, timeout=30)
            await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

            await until_counted(ledger_db, gw, [*before, *during])
            await settled(nats_server.url, durable)
            assert await rollup_totals(ledger_db, gw) == expected([*before, *during])
    finally:
        await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await server.close()
        await nc.close()


async def test_a_nats_restart_while_requests_flow_loses_only_what_was_in_flight(
    ledger_db: str, nats_server: NatsServer, infra: Infra, tmp_path: Path
) -> None:
    """NATS stopped and started again (same store) under a proxy serving calls: the proxy
    keeps answering and holds the events in memory while NATS is away, publishes them when
    it is back, and the ledger resumes its durable: every call answered while NATS was away
    or after it came back is counted, each once. The publish has no acknowledgement, so an
    event handed to the socket in the instant NATS went down can be lost: a handful at most
    (docs/governance-usage.md, "What survives what")."""
    durable = f"ledger-{uuid.uuid4().hex}"
    # A batch counted as NATS went down has its acks lost with the connection: it comes
    # again after the ack wait (60 s by default), is found counted, and is acked then. A
    # short wait lets the durable settle within this test's deadline.
    settings = ledger_settings(ledger_db, nats_server.url, durable, LEDGER_ACK_WAIT=5)
    async with (
        running_admin(settings) as admin,
        serve_mock() as upstream,
        tenant_on(nats_server.url, upstream.url) as tenant,
    ):
        await ledger_consuming(admin)
        gw = str(tenant.gateway.id)
        clients = Clients(tenant)
        async with proxy(nats_server.url, infra, tmp_path / "proxy.log") as plane:
            await serving(clients, plane)
            clients.start(4)
            await wait_for(lambda: clients.ok >= 100, timeout=30)
            nats_server.stop()
            # the calls answered while the proxy may not have seen the connection go yet
            clients.phase = "stopping"
            await wait_for(lambda: len(clients.of("stopping")) >= 20, timeout=30)
            clients.phase = "away"
            await wait_for(lambda: len(clients.of("away")) >= 100, timeout=30)  # still serving
            nats_server.start()
            clients.phase = "back"
            await wait_for(lambda: len(clients.of("back")) >= 100, timeout=30)
            await clients.stop()
            after_the_outage = clients.of("away", "back")

            async def all_counted() -> bool:
                return not await uncounted(ledger_db, after_the_outage)

            await wait_for(all_counted, timeout=30, message="calls answered later not counted")
        await settled(nats_server.url, durable)
        assert clients.answered == clients.ok
        lost = await uncounted(ledger_db, clients.of("before", "stopping"))
        assert len(lost) <= 16, f"{len(lost)} events lost when NATS went down"
        # and nothing counted twice
        assert (await rollup_totals(ledger_db, gw))[0] == clients.answered - len(lost)
