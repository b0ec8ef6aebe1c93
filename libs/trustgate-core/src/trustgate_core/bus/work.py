"""A work consumer: one durable pull consumer shared by every instance of a plane, so the
instances split the work, and acks only after the work is done.

`WorkConsumer.run` subscribes to the durable (created or converged to ``config``), fetches
batches and hands each one to ``handle``. The handler settles every message itself — ack
once the work is done, nak (with a delay) what should come back later, term what never can
be done — and returns False when the work failed, so the loop waits ``retry_delay`` before
the next fetch (no tight loop against a sick downstream). A crash before the ack redelivers
the message: delivery is at-least-once.

When the subscription cannot be made or breaks (NATS away), the loop subscribes again with
backoff; ``stop()`` lets it finish the batch in hand and leave.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext

from trustgate_core.backoff import Backoff

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Msg]], Awaitable[bool]]


def work_consumer_config(
    durable: str, subject: str, *, ack_wait: float, batch_size: int
) -> ConsumerConfig:
    """Explicit acks, from the start of the stream, redelivered until done."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=max(1000, batch_size * 8),
        filter_subject=subject,
    )


class WorkConsumer:
    """Fetch batches of ``subject`` on ``stream`` through the durable ``durable`` and hand
    them to ``handle`` until `stop`. ``on_lag`` gets the durable's ``num_pending`` (at most
    once a second)."""

    def __init__(
        self,
        js: JetStreamContext,
        stream: str,
        subject: str,
        handle: BatchHandler,
        *,
        durable: str,
        batch_size: int,
        fetch_wait: float,
        ack_wait: float,
        retry_delay: float = 2.0,
        on_lag: Callable[[int], None] | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.js = js
        self.stream = stream
        self.subject = subject
        self.handle = handle
        self.durable = durable
        self.batch_size = batch_size
        self.fetch_wait = fetch_wait
        self.ack_wait = ack_wait
        self.retry_delay = retry_delay
        self.on_lag = on_lag
        self.backoff = backoff or Backoff()
        self.batches = 0
        self.consuming = False  # subscribed to the durable
        self._last_lag = 0.0
        self._stopping = False

    def stop(self) -> None:
        """Leave after the batch in hand (its messages settled by the handler)."""
        self._stopping = True

    async def run(self) -> None:
        """Until `stop` (or cancelled): subscribe, then consume; subscribe again, with
        backoff, when that fails."""
        while not self._stopping:
            try:
                await self._consume()
            except Exception as exc:
                self.consuming = False
                delay = self.backoff.next_delay()
                log.warning(
                    "work consumer %s stopped (%r); again in %.1fs", self.durable, exc, delay
                )
                await asyncio.sleep(delay)

    async def _consume(self) -> None:
        sub = await self.js.pull_subscribe(
            self.subject,
            durable=self.durable,
            stream=self.stream,
            config=work_consumer_config(
                self.durable, self.subject, ack_wait=self.ack_wait, batch_size=self.batch_size
            ),
        )
        self.consuming = True
        self.backoff.reset()
        try:
            while not self._stopping:
                try:
                    msgs = await sub.fetch(self.batch_size, timeout=self.fetch_wait)
                except TimeoutError:  # nothing came within fetch_wait: an idle stream
                    # (nats-py raises its TimeoutError, or asyncio's from inside the fetch;
                    # both are TimeoutError), not a failure to log and back off from
                    msgs = []
                except Exception as exc:  # bus outage: the client reconnects
                    log.warning("work consumer %s: fetch failed (%r)", self.durable, exc)
                    await asyncio.sleep(self.retry_delay)
                    continue
                if msgs:
                    self.batches += 1
                    if not await self.handle(msgs):
                        await asyncio.sleep(self.retry_delay)
                await self._update_lag(sub)
        finally:
            self.consuming = False
            # a durable consumer outlives us: only our interest goes
            try:
                await sub.unsubscribe()
            except Exception:
                log.debug("work consumer %s: unsubscribe failed", self.durable, exc_info=True)

    async def _update_lag(self, sub: Any) -> None:
        if self.on_lag is None:
            return
        now = time.monotonic()
        if now - self._last_lag < 1.0:
            return
        self._last_lag = now
        try:
            info = await sub.consumer_info()
            self.on_lag(info.num_pending or 0)
        except Exception:
            log.debug("work consumer %s: consumer info failed", self.durable, exc_info=True)
