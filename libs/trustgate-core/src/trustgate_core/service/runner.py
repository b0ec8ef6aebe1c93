"""The boot-and-follow loop every plane with a config replica runs.

`ReplicaRunner.start` returns at once; an owned task then connects to NATS (retrying with
backoff while it is down), makes sure the given streams exist, and starts a `ConfigReplica`
on the given state with the given change listeners (retrying with backoff). After each
reconnect the replica resyncs, so changes made during an outage arrive at once. The runner
is *ready* once the replica has caught up with what the stream held when it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from nats.aio.client import Client as NATS

from trustgate_core.backoff import Backoff, retry
from trustgate_core.bus.nats import ensure_streams, keep_connecting
from trustgate_core.events.subjects import CONFIG_STREAM, StreamSpec
from trustgate_core.replica import ConfigReplica, ReplicaState
from trustgate_core.replica.replica import Listener
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ReplicaRunner:
    """``await runner.start()``; ``await runner.wait_ready()`` (under a timeout);
    ``await runner.stop()``.

    ``name`` is the NATS connection name (e.g. ``trustgate-proxy``); ``stream_replicas`` as
    ``bus.ensure_streams``' ``replicas`` (``NATS_STREAM_REPLICAS``). ``on_ready`` runs once,
    in the runner's task, after the first catch-up.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        state: ReplicaState,
        streams: Sequence[StreamSpec] = (CONFIG_STREAM,),
        stream_replicas: int | None = None,
        listeners: Sequence[Listener] = (),
        on_ready: Callable[[], None] | None = None,
        retry_min: float = 0.2,
        retry_max: float = 5.0,
        close_timeout: float = 5.0,
    ) -> None:
        self.url = url
        self.name = name
        self.state = state
        self.streams = list(streams)
        self.stream_replicas = stream_replicas
        self.listeners = list(listeners)
        self.on_ready = on_ready
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.close_timeout = close_timeout
        self._nc: NATS | None = None
        self._replica: ConfigReplica | None = None
        self._task: asyncio.Task[None] | None = None
        self._replica_set = asyncio.Event()

    # -- what it holds --------------------------------------------------------------------
    @property
    def nc(self) -> NATS | None:
        """The connection (made by `start`, connected later; reconnects by itself)."""
        return self._nc

    @property
    def replica(self) -> ConfigReplica | None:
        """The replica once started (before it has caught up)."""
        return self._replica

    @property
    def ready(self) -> bool:
        return self._replica is not None and self._replica.ready

    @property
    def applied(self) -> int:
        """Config events applied so far."""
        return self._replica.applied if self._replica is not None else 0

    def dependencies(self) -> dict[str, str]:
        connected = self._nc is not None and self._nc.is_connected
        return {
            "nats": "ok" if connected else "unavailable",
            "config": "ok" if self.ready else "unavailable",
        }

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            return
        self._nc = NATS()
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-replica")

    async def wait_ready(self) -> None:
        """Until the replica has caught up (wrap it in ``asyncio.timeout``)."""
        await self._replica_set.wait()
        assert self._replica is not None
        await self._replica.wait_ready()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self._replica is not None:
            await self._replica.stop()
        nc = self._nc
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), self.close_timeout)

    # -- the task -------------------------------------------------------------------------
    def _backoff(self) -> Backoff:
        return Backoff(self.retry_min, self.retry_max)

    async def _run(self) -> None:
        nc = self._nc
        assert nc is not None
        await keep_connecting(
            nc,
            self.url,
            name=self.name,
            on_reconnect=self._on_reconnect,
            retry_min=self.retry_min,
            retry_max=self.retry_max,
        )
        replica = await retry(
            lambda: self._start_replica(nc),
            what=f"{self.name}: config replica start",
            backoff=self._backoff(),
            log=log,
        )
        self._replica = replica
        self._replica_set.set()
        await replica.wait_ready()
        if self.on_ready is not None:
            try:
                self.on_ready()
            except Exception:
                log.exception("%s: on_ready failed", self.name)

    async def _start_replica(self, nc: NATS) -> ConfigReplica:
        replica = ConfigReplica(nc, state=self.state)
        for listener in self.listeners:
            replica.on_change(listener)
        try:
            await ensure_streams(nc.jetstream(), self.streams, replicas=self.stream_replicas)
            await replica.start()
        except BaseException:
            await replica.stop()
            raise
        return replica

    def _on_reconnect(self) -> None:
        """After a reconnect, changes made during the outage arrive at once."""
        if self._replica is not None:
            self._replica.resync()
