"""The config replica: an ordered, ephemeral, last-per-subject consumer of TRUSTGATE_CONFIG.

On start it replays the current state of every entity, then follows live changes. It is
*ready* once it has applied everything the stream held when it started.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from trustgate_core.backoff import retry
from trustgate_core.events.config import AnyConfigEvent, decode_config_event
from trustgate_core.events.subjects import CONFIG_STREAM, CONFIG_SUBJECTS
from trustgate_core.replica.state import ReplicaState
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Listener = Callable[[AnyConfigEvent], None]


class ConfigReplica:
    def __init__(self, nc: NATS, state: ReplicaState | None = None) -> None:
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream()
        self.state = state or ReplicaState()
        self._ready = asyncio.Event()
        self._target_seq = 0
        self._sub: object | None = None
        self._listeners: list[Listener] = []
        self._resync: asyncio.Task[None] | None = None
        self.applied = 0
        self.rejected = 0
        self.seq = 0  # the highest stream sequence received: what the state reflects

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` after each event that changed the state."""
        self._listeners.append(listener)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self) -> None:
        info = await self._js.stream_info(CONFIG_STREAM.name)
        self._target_seq = info.state.last_seq if info.state.messages else 0
        if self._target_seq == 0:
            self._ready.set()
        self._sub = await self._js.subscribe(
            CONFIG_SUBJECTS,
            stream=CONFIG_STREAM.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
            cb=self._on_msg,
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def wait_ready(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._ready.wait(), timeout)

    def resync(self) -> None:
        """Follow the stream again from a fresh subscription (call it after a reconnect).

        An ordered consumer notices a lost server-side consumer only after missed
        heartbeats (seconds); a fresh one replays the latest state of every entity (applied
        only where newer), so changes made during an outage arrive at once. Retries in an
        owned task until it succeeds or the replica stops.
        """
        if self._sub is not None and (self._resync is None or self._resync.done()):
            self._resync = asyncio.create_task(self._resubscribe(), name="replica-resync")

    async def _resubscribe(self) -> None:
        async def again() -> None:
            await self._unsubscribe()
            await self.start()

        await retry(again, what="replica: resubscribe", log=log)

    async def stop(self) -> None:
        task, self._resync = self._resync, None
        if task is not None:
            await cancel_and_wait(task)
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception:  # connection already closed
                log.debug("replica unsubscribe failed", exc_info=True)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            event = decode_config_event(msg.data)
        except (ValidationError, ValueError):
            self.rejected += 1
            log.warning("replica: undecodable config event on %s", msg.subject)
        else:
            if self.state.apply(event):
                self.applied += 1
                for listener in self._listeners:
                    listener(event)
        try:
            seq = msg.metadata.sequence.stream
        except Exception:
            seq = 0
        self.seq = max(self.seq, seq)
        if not self._ready.is_set() and (seq >= self._target_seq or msg.metadata.num_pending == 0):
            self._ready.set()
