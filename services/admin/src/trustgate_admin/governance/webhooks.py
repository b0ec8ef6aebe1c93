"""Alert delivery: sends each queued firing to its rule's channel, at least once.

A batch of due deliveries is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (so admin
replicas never claim the same one) and leased for the send's timeout, then sent outside the
transaction (a slow receiver holds no lock). A 2xx answer is ``delivered``; anything else
(an error status, a refused connection, a timeout) is retried after an exponential backoff
with jitter, capped at ``ALERT_RETRY_MAX_BACKOFF``, until the delivery is older than
``ALERT_DELIVERY_MAX_AGE`` (then ``failed``). The worker wakes on the ``NOTIFY`` a queued
firing sends (from any admin), and otherwise sleeps until the next retry is due (at most
``ALERT_EVAL_INTERVAL``). A receiver may see a message twice (a crash between its answer and
the record of it): each carries ``X-TrustGate-Delivery`` to deduplicate on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from uuid import UUID

import asyncpg
import httpx
from sqlalchemy import func
from sqlmodel import col, select, update

from trustgate_admin.adapters.db.alert_tables import (
    DELIVERY_CHANNEL,
    AlertDeliveryRow,
    AlertFiringRow,
    AlertRuleRow,
)
from trustgate_admin.adapters.db.tables import GatewayRow
from trustgate_admin.governance import alert_channels
from trustgate_admin.governance.alert_payloads import AlertFacts, Outgoing, outgoing
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.governance.webhook_guard import error_kind, guarded_client
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

BATCH: Final = 20
#: The first retry's delay (doubled per attempt, up to the configured cap).
FIRST_BACKOFF: Final = 2.0
#: A claim outlives the send's timeout by this much before another replica may retry it.
LEASE_MARGIN: Final = 30.0
#: Seconds between attempts to listen again after the database connection was lost.
RELISTEN: Final = 2.0


@dataclass(frozen=True)
class Sent:
    """How a send ended: ``status_code`` when the receiver answered, else ``error`` (the
    failure's kind, never the URL)."""

    status_code: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


#: Set while an alert is sent: httpx logs each request's URL at INFO, and an alert
#: channel's URL is a credential (a Slack webhook's is), so those records are dropped.
_SENDING: ContextVar[bool] = ContextVar("trustgate_alert_sending", default=False)


class _QuietWhileSending(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


_QUIET = _QuietWhileSending()


async def send(client: httpx.AsyncClient, out: Outgoing) -> Sent:
    logging.getLogger("httpx").addFilter(_QUIET)  # once: a logger keeps one of each filter
    token = _SENDING.set(True)
    try:
        return await _post(client, out)
    finally:
        _SENDING.reset(token)


async def _post(client: httpx.AsyncClient, out: Outgoing) -> Sent:
    try:  # the answer's body is never read: its status is all that counts
        async with client.stream(
            "POST", out.url, content=out.body, headers=out.headers
        ) as response:
            pass
    except httpx.HTTPError as exc:  # its message may hold the URL: only its kind is kept
        return Sent(error=error_kind(exc))
    return Sent(
        status_code=response.status_code,
        error=None if response.is_success else f"HTTP {response.status_code}",
    )


def backoff(attempts: int, cap: float) -> float:
    """Seconds before attempt ``attempts + 1``: ``FIRST_BACKOFF * 2**(attempts-1)`` capped,
    then jittered down by up to half (replicas and rules do not retry in step)."""
    delay = min(cap, FIRST_BACKOFF * float(2 ** min(attempts - 1, 30)))
    return delay * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Claimed:
    delivery_id: UUID
    created_at: datetime
    attempts: int
    out: Outgoing


@dataclass
class DeliveryStats:
    """What this instance's worker sent since it started, for ``/metrics``."""

    delivered: int = 0  # a 2xx answer
    retried: int = 0  # an attempt failed; another is due
    failed: int = 0  # given up after ALERT_DELIVERY_MAX_AGE


class DeliveryWorker:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None
        self.stats = DeliveryStats()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        settings = self.deps.settings
        self._client = guarded_client(
            settings.alert_delivery_timeout, settings.alert_webhook_allow_private
        )
        self._tasks = [
            asyncio.create_task(self._run(), name="alert-deliveries"),
            asyncio.create_task(self._listen(), name="alert-deliveries-listen"),
        ]

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel_and_wait(task)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _listen(self) -> None:
        """Wake on every admin's ``NOTIFY``; listen again after the connection is lost."""
        while True:
            try:
                await self._listen_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("alert deliveries: cannot listen (%s); retrying", type(exc).__name__)
            await asyncio.sleep(RELISTEN)

    async def _listen_once(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self.deps.settings.dsn, timeout=5)
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda *_: lost.set())
            await conn.add_listener(DELIVERY_CHANNEL, lambda *_: self._wake.set())
            self._wake.set()  # what was queued while not listening
            await lost.wait()
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _run(self) -> None:
        interval = self.deps.settings.alert_eval_interval
        while True:
            self._wake.clear()
            try:
                due_in = await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away: try again later
                log.warning("alert deliveries: %s; retrying", type(exc).__name__)
                due_in = RELISTEN
            wait = interval if due_in is None else min(max(due_in, 0.0), interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def drain(self) -> float | None:
        """Send every due delivery; seconds until the next one is due (``None``: none)."""
        while claimed := await self._claim():
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        async with self.deps.sessions() as session:
            stmt = select(func.min(AlertDeliveryRow.next_attempt_at)).where(
                AlertDeliveryRow.status == "pending"
            )
            next_at = (await session.exec(stmt)).one()
        if next_at is None:
            return None
        return (next_at - datetime.now(UTC)).total_seconds()

    async def _claim(self) -> list[Claimed]:
        now = datetime.now(UTC)
        lease = timedelta(seconds=self.deps.settings.alert_delivery_timeout + LEASE_MARGIN)
        claimed: list[Claimed] = []
        async with self.deps.sessions() as session, session.begin():
            stmt = (
                select(AlertDeliveryRow, AlertFiringRow, AlertRuleRow, GatewayRow)
                .join(AlertFiringRow, col(AlertFiringRow.id) == AlertDeliveryRow.firing_id)
                .join(AlertRuleRow, col(AlertRuleRow.id) == AlertDeliveryRow.rule_id)
                .join(GatewayRow, col(GatewayRow.id) == AlertDeliveryRow.gateway_id)
                .where(
                    AlertDeliveryRow.status == "pending", AlertDeliveryRow.next_attempt_at <= now
                )
                .order_by(col(AlertDeliveryRow.next_attempt_at))
                .limit(BATCH)
                .with_for_update(skip_locked=True, of=AlertDeliveryRow)  # type: ignore[arg-type]
            )
            for delivery, firing, rule, gateway in (await session.exec(stmt)).all():
                delivery.attempts += 1
                delivery.next_attempt_at = now + lease
                delivery.updated_at = now
                session.add(delivery)
                facts = AlertFacts(
                    delivery_id=delivery.id,
                    rule_id=rule.id,
                    rule_name=rule.name,
                    kind=rule.kind,
                    gateway_id=gateway.id,
                    gateway_name=gateway.name or gateway.slug,
                    consumer_id=rule.consumer_id,
                    threshold=firing.threshold,
                    passed=firing.passed,
                    window_start=firing.window_start,
                    window_end=firing.window_end,
                    observed=firing.observed,
                    limit=firing.limit,
                    unit=firing.unit,
                    fired_at=firing.fired_at,
                )
                channel = alert_channels.opened(self.deps.box, rule.channel)
                out = outgoing(channel, facts, now)
                claimed.append(Claimed(delivery.id, delivery.created_at, delivery.attempts, out))
        return claimed

    async def _deliver(self, claimed: Claimed) -> None:
        assert self._client is not None
        sent = await send(self._client, claimed.out)
        now = datetime.now(UTC)
        settings = self.deps.settings
        values: dict[str, object] = {
            "last_status_code": sent.status_code,
            "last_error": sent.error,
            "updated_at": now,
        }
        if sent.ok:
            values.update(status="delivered", delivered_at=now)
            self.stats.delivered += 1
        else:
            retry_at = now + timedelta(
                seconds=backoff(claimed.attempts, settings.alert_retry_max_backoff)
            )
            expired = retry_at - claimed.created_at > timedelta(
                seconds=settings.alert_delivery_max_age
            )
            values.update(status="failed" if expired else "pending", next_attempt_at=retry_at)
            if expired:
                self.stats.failed += 1
            else:
                self.stats.retried += 1
            log.info(
                "alert deliveries: %s attempt %d failed (%s)",
                claimed.delivery_id,
                claimed.attempts,
                sent.error,
            )
        async with self.deps.sessions() as session, session.begin():
            conn = await session.connection()
            await conn.execute(
                update(AlertDeliveryRow)
                .where(col(AlertDeliveryRow.id) == claimed.delivery_id)
                .where(col(AlertDeliveryRow.status) == "pending")
                .values(**values)
            )
