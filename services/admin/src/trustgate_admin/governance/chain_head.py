"""Publishing the audit chain's head, so that a copy outside TrustGate can anchor it.

Every ``AUDIT_HEAD_INTERVAL`` (and once at start) each admin replica reads the head and,
when it moved since it last published, publishes it on ``AUDIT_HEAD_SUBJECT`` with
``Nats-Msg-Id`` = the seq: the stream stores a head once however many replicas publish
it. NATS or Postgres away: the tick is skipped and the next one tries again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from trustgate_admin.governance.chain_append import read_head
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_core.bus import ensure_streams
from trustgate_core.events.audit import AuditHeadEvent, encode_audit_head
from trustgate_core.events.subjects import AUDIT_HEAD_SUBJECT, audit_head_stream
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)
#: How soon a head that could not be published is tried again (at most the interval).
RETRY_DELAY = 2.0


class HeadPublisher:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps
        self.published: AuditHeadEvent | None = None  # the last head this replica published
        self._stream_ready = False
        self._caught_up = False  # the last tick published the head, or it had not moved
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-head-publisher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        interval = self.deps.settings.audit_head_interval
        while True:
            try:
                await self.publish_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus or the database away: retried soon
                self._caught_up = False
                log.warning("audit head not published (%s); will retry", type(exc).__name__)
            await asyncio.sleep(interval if self._caught_up else min(interval, RETRY_DELAY))

    async def publish_once(self) -> AuditHeadEvent | None:
        """Publish the head if it moved since this replica last published it (None: it
        did not, the chain is empty or NATS is not connected)."""
        async with self.deps.engine.connect() as conn:
            head = await read_head(conn)
        self._caught_up = head is None or (
            self.published is not None and self.published.seq == head.seq
        )
        if head is None or self._caught_up or not self.deps.nc.is_connected:
            return None
        settings = self.deps.settings
        js = self.deps.nc.jetstream(timeout=settings.publish_timeout)
        if not self._stream_ready:
            await ensure_streams(js, [audit_head_stream()], replicas=settings.stream_replicas)
            self._stream_ready = True
        event = AuditHeadEvent(
            seq=head.seq,
            hash=head.hash,
            id=head.id,
            occurred_at=head.occurred_at,
            published_at=datetime.now(UTC),
        )
        await js.publish(
            AUDIT_HEAD_SUBJECT,
            encode_audit_head(event),
            timeout=settings.publish_timeout,
            headers={"Nats-Msg-Id": str(head.seq)},
        )
        self.published, self._caught_up = event, True
        return event
