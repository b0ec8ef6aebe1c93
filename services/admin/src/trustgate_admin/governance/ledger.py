"""The usage ledger: every request event counted exactly once into hourly rollups.

A durable work consumer (``LEDGER_DURABLE``, shared by every admin instance, so they
split the work) reads ``TRUSTGATE_REQUESTS``. Each fetched batch is counted in one
database transaction: the events' trace ids go into ``usage_events_seen`` (only those not
there yet are new: a redelivery counts nothing), the sinks see the new events, and their
figures are added into ``usage_hourly``. The batch is acked only after that commit, so a
crash before it redelivers the batch and a crash after it redelivers events already seen:
at-least-once delivery, exactly-once counting. An undecodable message is terminated and
logged (it would never decode); a database failure naks the batch (it comes back) and the
consumer backs off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import text

from trustgate_admin.adapters.db.usage_tables import NO_CONSUMER
from trustgate_admin.governance.ports import AfterCommit, GovernanceDeps, LedgerSink
from trustgate_core.backoff import Backoff
from trustgate_core.bus import WorkConsumer, ensure_streams
from trustgate_core.events.requests import RequestEvent, decode_request_event
from trustgate_core.events.subjects import REQUESTS_SUBJECTS, StreamSpec, requests_stream
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: How often the remembered trace ids older than the retention are deleted, and how many
#: one statement deletes (so a large backlog never holds one long transaction).
PRUNE_EVERY = 300.0
PRUNE_CHUNK = 10_000
#: How long a batch the database refused waits before it is redelivered.
REDELIVER_DELAY = 2.0

RollupKey = tuple[UUID, datetime, UUID, str, str]

# One statement, one round trip for the batch's trace ids; only the new ones come back.
_SEEN = text(
    "INSERT INTO usage_events_seen (trace_id, seen_at) "
    "SELECT unnest(CAST(:ids AS text[])), now() "
    "ON CONFLICT (trace_id) DO NOTHING RETURNING trace_id"
)
_FIGURES = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_hits",
    "fallbacks",
)
_KEYS = ("gateway_id", "hour", "consumer_id", "model", "provider")
_VALUES = (*_FIGURES, "cost_usd")
# One statement for every rollup row the batch moves (aggregated in memory first).
_ADD = text(
    "INSERT INTO usage_hourly AS u (gateway_id, hour, consumer_id, model, provider, "
    + ", ".join(_FIGURES)
    + ", cost_usd) SELECT * FROM unnest("
    "CAST(:gateway_id AS uuid[]), CAST(:hour AS timestamptz[]), "
    "CAST(:consumer_id AS uuid[]), CAST(:model AS text[]), CAST(:provider AS text[]), "
    + ", ".join(f"CAST(:{f} AS bigint[])" for f in _FIGURES)
    + ", CAST(:cost_usd AS numeric[])) "
    "ON CONFLICT (gateway_id, hour, consumer_id, model, provider) DO UPDATE SET "
    + ", ".join(f"{f} = u.{f} + excluded.{f}" for f in _VALUES)
)
_PRUNE = text(
    "DELETE FROM usage_events_seen WHERE trace_id IN (SELECT trace_id FROM usage_events_seen "
    "WHERE seen_at < :before LIMIT :chunk)"
)


@dataclass
class Figures:
    """One rollup row's increments."""

    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_hits: int = 0
    fallbacks: int = 0
    cost_usd: Decimal = Decimal(0)

    def add(self, event: RequestEvent) -> None:
        """Count ``event`` in: an error is a status >= 400 or an error kind; the cost is
        the event's ``total_usd`` taken exactly as written (``Decimal(str(...))``)."""
        self.requests += 1
        if event.status >= 400 or event.error_kind is not None:
            self.errors += 1
        usage = event.usage
        if usage is not None:
            self.input_tokens += usage.prompt_tokens
            self.output_tokens += usage.completion_tokens
            self.cached_tokens += usage.cached_input_tokens or 0
        if event.cost is not None:
            self.cost_usd += Decimal(str(event.cost.total_usd))
        if event.cache is not None and event.cache.outcome == "hit":
            self.cache_hits += 1
        if any(a.fallback for a in event.attempts):
            self.fallbacks += 1


def rollup_key(event: RequestEvent) -> RollupKey:
    """The row an event is counted in: its gateway, the UTC hour it started in, its
    consumer (``NO_CONSUMER`` for none), its model (served, else requested, else "") and
    provider ("" for none)."""
    started = event.started_at
    started = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
    hour = started.replace(minute=0, second=0, microsecond=0)
    return (
        event.gateway_id,
        hour,
        event.consumer_id or NO_CONSUMER,
        event.model or event.requested_model or "",
        event.provider or "",
    )


def roll_up(events: Sequence[RequestEvent]) -> dict[RollupKey, Figures]:
    """The batch's increments per rollup row."""
    rows: dict[RollupKey, Figures] = {}
    for event in events:
        key = rollup_key(event)
        figures = rows.get(key)
        if figures is None:
            figures = rows[key] = Figures()
        figures.add(event)
    return rows


def _columns(rows: dict[RollupKey, Figures]) -> dict[str, list[Any]]:
    """The rows as one array per column, in key order (concurrent ledgers lock rows in
    the same order, so they never deadlock)."""
    ordered = sorted(
        rows.items(), key=lambda kv: (str(kv[0][0]), kv[0][1], str(kv[0][2]), *kv[0][3:])
    )
    columns: dict[str, list[Any]] = {name: [] for name in (*_KEYS, *_VALUES)}
    for key, figures in ordered:
        for name, value in zip(_KEYS, key, strict=True):
            columns[name].append(value)
        for name in _VALUES:
            columns[name].append(getattr(figures, name))
    return columns


@dataclass
class LedgerStats:
    """What the ledger did since it started, for ``/metrics``."""

    counted: int = 0  # events counted for the first time
    duplicates: int = 0  # events already counted (redeliveries, republished events)
    undecodable: int = 0  # messages terminated: not a request event
    failed_batches: int = 0  # batches the database refused (redelivered)
    lag: int = 0  # events in the stream the durable has not been given yet


class Ledger:
    """Starts a background task that consumes the request events until `stop`."""

    def __init__(
        self, deps: GovernanceDeps, sinks: Sequence[LedgerSink], after: Sequence[AfterCommit]
    ) -> None:
        self.deps, self.sinks, self.after = deps, sinks, after
        self.stats = LedgerStats()
        self.consumer: WorkConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._pruned_at = time.monotonic()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-ledger")

    async def stop(self) -> None:
        """Let the batch in hand finish (settled), then end; an unfinished batch is simply
        redelivered to whoever consumes next."""
        task, self._task = self._task, None
        if task is None:
            return
        if self.consumer is not None:
            self.consumer.stop()
            wait = self.deps.settings.ledger_fetch_wait + 5.0
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), wait)
        await cancel_and_wait(task)

    async def _run(self) -> None:
        s = self.deps.settings
        stream = requests_stream(s.requests_max_age_seconds, s.requests_max_bytes)
        js = self.deps.nc.jetstream()
        await self._ensure_stream(js, stream)
        self.consumer = WorkConsumer(
            js,
            stream.name,
            REQUESTS_SUBJECTS,
            self.handle_batch,
            durable=s.ledger_durable,
            batch_size=s.ledger_batch_size,
            fetch_wait=s.ledger_fetch_wait,
            ack_wait=s.ledger_ack_wait,
            retry_delay=REDELIVER_DELAY,
            on_lag=self._lag,
        )
        await self.consumer.run()

    async def _ensure_stream(self, js: JetStreamContext, stream: StreamSpec) -> None:
        """Make sure the requests stream exists, once NATS is connected (the outbox relay
        makes the connection: until then, wait quietly), retrying with backoff."""
        backoff = Backoff(0.1, 5.0)
        while True:
            if self.deps.nc.is_connected:
                try:
                    await ensure_streams(js, [stream], replicas=self.deps.settings.stream_replicas)
                    return
                except Exception as exc:
                    log.warning("ledger: the requests stream could not be ensured (%r)", exc)
            await asyncio.sleep(backoff.next_delay())

    def _lag(self, pending: int) -> None:
        self.stats.lag = pending

    async def handle_batch(self, msgs: Sequence[Msg]) -> bool:
        """Count one fetched batch; False when the database refused it (back off)."""
        events: list[RequestEvent] = []
        decoded: list[Msg] = []
        for msg in msgs:
            try:
                events.append(decode_request_event(msg.data))
            except (ValidationError, ValueError) as exc:
                self.stats.undecodable += 1
                log.warning(
                    "ledger: undecodable request event on %s terminated: %s",
                    msg.subject,
                    str(exc)[:200],
                )
                await _quietly(msg.term())
                continue
            decoded.append(msg)
        if not events:
            return True
        try:
            new = await self.count(events)
        except Exception as exc:
            self.stats.failed_batches += 1
            log.warning(  # the class and the start of the message: not the batch's SQL
                "ledger: a batch of %d events was not counted (%s: %s); it will be redelivered",
                len(events),
                type(exc).__name__,
                str(exc)[:200],
            )
            for msg in decoded:
                await _quietly(msg.nak(delay=REDELIVER_DELAY))
            return False
        for msg in decoded:
            await _quietly(msg.ack())
        self.stats.counted += len(new)
        self.stats.duplicates += len(events) - len(new)
        if new:
            await self._tell({e.gateway_id for e in new})
        await self._maybe_prune()
        return True

    async def count(self, events: Sequence[RequestEvent]) -> list[RequestEvent]:
        """In one transaction: remember the trace ids, add the new events into the rollups
        and hand them to the sinks. The new events (first of each trace id) are returned."""
        first: dict[str, RequestEvent] = {}
        for event in events:
            first.setdefault(event.trace_id, event)
        async with self.deps.sessions() as session:
            conn = await session.connection()
            ids = sorted(first)  # one lock order for concurrent ledgers
            result = await conn.execute(_SEEN, {"ids": ids})
            new = [first[trace_id] for trace_id in result.scalars()]
            if new:
                await conn.execute(_ADD, _columns(roll_up(new)))
                # last: the audit sink's chain lock is then held the shortest time, and
                # never while this transaction still takes row locks
                for sink in self.sinks:
                    await sink.record(session, new)
            await session.commit()
        return new

    async def _tell(self, gateway_ids: set[UUID]) -> None:
        for part in self.after:
            try:
                await part.committed(gateway_ids)
            except Exception:
                log.exception("ledger: %s failed after a commit", type(part).__name__)

    async def _maybe_prune(self) -> None:
        """Forget trace ids older than ``LEDGER_DEDUPE_RETENTION``, every ``PRUNE_EVERY``
        seconds (a failure waits for the next time)."""
        if time.monotonic() - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = time.monotonic()
        try:
            await self.prune()
        except Exception as exc:
            log.warning("ledger: pruning the counted trace ids failed (%r)", exc)

    async def prune(self, now: datetime | None = None) -> int:
        """Delete remembered trace ids older than the retention, a chunk per transaction;
        the number deleted."""
        retention = timedelta(seconds=self.deps.settings.ledger_dedupe_retention)
        before = (now or datetime.now(UTC)) - retention
        deleted = 0
        while True:
            async with self.deps.engine.begin() as conn:
                result = await conn.execute(_PRUNE, {"before": before, "chunk": PRUNE_CHUNK})
            deleted += result.rowcount
            if result.rowcount < PRUNE_CHUNK:
                return deleted


async def _quietly(settle: Awaitable[None]) -> None:
    """Settle a message; a failure (the bus away) only means it is redelivered."""
    try:
        await settle
    except Exception as exc:
        log.debug("ledger: settling a message failed (%r)", exc)
