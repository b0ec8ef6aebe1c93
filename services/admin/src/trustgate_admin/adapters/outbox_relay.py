"""The outbox relay: publishes committed config and audit events to JetStream, in order, at least once.

One relay publishes at a time across all admin instances (a Postgres advisory lock held on
its listening connection), so events of an entity reach the stream in revision order. It
wakes on LISTEN/NOTIFY and also polls. A row is marked sent only after JetStream acked it;
``Nats-Msg-Id`` lets JetStream drop a re-publish after a crash between ack and mark.
If NATS is down, rows wait in the table; nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from nats.aio.client import Client as NATS

from trustgate_admin.adapters.db.tables import OUTBOX_CHANNEL
from trustgate_core.bus import ensure_streams
from trustgate_core.events.subjects import AUDIT_STREAM, CONFIG_STREAM, StreamSpec

log = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x74676F7574626F78  # "tgoutbox"


class OutboxRelay:
    def __init__(
        self,
        dsn: str,
        nc: NATS,
        *,
        connect: Callable[[], Awaitable[None]] | None = None,
        streams: list[StreamSpec] | None = None,
        stream_replicas: int | None = None,
        poll_interval: float = 2.0,
        batch_size: int = 200,
        publish_timeout: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._nc = nc
        self._connect = connect
        self._js = nc.jetstream(timeout=publish_timeout)
        self._streams = streams or [CONFIG_STREAM, AUDIT_STREAM]
        self._replicas = stream_replicas
        self._poll = poll_interval
        self._batch = batch_size
        self._timeout = publish_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.is_leader = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        if self._connect is not None:
            await self._connect()
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: retry
                log.warning("outbox relay: %s; retrying", exc.__class__.__name__)
            self.is_leader = False
            await asyncio.sleep(self._poll)

    async def _lead(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=5)
        try:
            # another instance leads: poll for the lock (a DB lock cannot be awaited as an event)
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                    break
                await asyncio.sleep(self._poll)
            self.is_leader = True
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            streams_ready = False
            while True:
                self._wake.clear()
                if self._nc.is_connected:
                    try:
                        if not streams_ready:
                            await ensure_streams(self._js, self._streams, replicas=self._replicas)
                            streams_ready = True
                        while await self._drain_batch(conn):
                            pass
                    except (TimeoutError, OSError) as exc:
                        log.warning("outbox relay: publish failed (%s); will retry", exc)
                    except Exception as exc:
                        if not _is_nats_error(exc):
                            raise
                        log.warning("outbox relay: publish failed (%s); will retry", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)
        finally:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)

    async def _drain_batch(self, conn: asyncpg.Connection) -> bool:
        """Publish one batch in id order; stop at the first failure. True if it was full."""
        rows = await conn.fetch(
            "SELECT id, subject, msg_id, payload FROM outbox WHERE sent_at IS NULL "
            "ORDER BY id LIMIT $1",
            self._batch,
        )
        for row in rows:
            await self._js.publish(
                row["subject"],
                bytes(row["payload"]),
                timeout=self._timeout,
                headers={"Nats-Msg-Id": row["msg_id"]},
            )
            await conn.execute("UPDATE outbox SET sent_at = now() WHERE id = $1", row["id"])
            self.published += 1
        return len(rows) == self._batch


def _is_nats_error(exc: Exception) -> bool:
    return type(exc).__module__.startswith("nats")
