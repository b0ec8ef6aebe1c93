"""The last configuration a replica applied, kept on disk, so a process that starts while
the bus is unreachable can serve from it instead of refusing everything.

The file is one sealed value (`SecretBox`, AES-GCM under the server secret): no tenant
configuration, key hash or credential is readable on disk, and a file that is truncated,
tampered with or sealed under another secret does not open (it is logged, without its
contents, and ignored). It records the stream sequence its state reflects. A write is
atomic (a temporary file in the same directory, fsync, rename; mode 0600), and
`SnapshotWriter` coalesces a burst of changes into one write in a background task, off the
request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Literal, Protocol, cast

from cryptography.exceptions import InvalidTag
from pydantic import BaseModel, ConfigDict

from trustgate_core.crypto import SecretBox
from trustgate_core.events.config import EVENT_TYPES, AnyConfigEvent
from trustgate_core.replica.replica import ConfigReplica
from trustgate_core.replica.state import ReplicaState
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class ConfigSnapshot(BaseModel):
    """Every entity a replica held, as the upsert events that rebuild it, and the stream
    sequence that state reflects."""

    model_config = ConfigDict(frozen=True)

    format: Literal[1] = 1
    seq: int
    events: list[AnyConfigEvent]

    @classmethod
    def of(cls, state: ReplicaState, seq: int) -> ConfigSnapshot:
        events = [
            EVENT_TYPES[kind](
                kind=kind,
                op="upsert",
                revision=revision,
                gateway_id=entity.gateway_id,
                entity_id=entity.id,
                occurred_at=entity.updated_at,
                entity=entity,
            )
            for kind, entity, revision in state.entities()
        ]
        # built from valid parts: one event type per kind, as AnyConfigEvent discriminates
        return cls.model_construct(seq=seq, events=cast("list[AnyConfigEvent]", events))


class SnapshotFile:
    """One snapshot at ``path``, sealed with ``box``. Both methods block: call them in a
    thread from async code."""

    def __init__(self, path: Path, box: SecretBox) -> None:
        self.path = path
        self._box = box

    def save(self, snapshot: ConfigSnapshot) -> None:
        sealed = self._box.seal(snapshot.model_dump_json())
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as out:
                out.write(sealed)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_directory(directory)  # the rename itself survives a power cut

    def load(self) -> ConfigSnapshot | None:
        """The snapshot, or ``None`` when there is none or it cannot be used (logged)."""
        try:
            sealed = self.path.read_bytes()
        except FileNotFoundError:
            log.info("config snapshot: none at %s", self.path)
            return None
        except OSError as exc:
            log.warning("config snapshot: %s cannot be read (%s); ignored", self.path, _why(exc))
            return None
        try:
            return ConfigSnapshot.model_validate_json(self._box.open(sealed.decode()))
        except (ValueError, InvalidTag):
            log.warning(
                "config snapshot: %s is corrupt or sealed under another secret key; ignored",
                self.path,
            )
            return None


class SnapshotWriter:
    """Keeps a `SnapshotFile` up to date from an owned background task.

    ``mark()`` after a change; the task waits ``interval`` seconds so a burst of changes
    becomes one write, then writes what ``capture()`` returns. ``stop()`` writes a change
    still pending. A failed write (a read-only or full disk) is logged and retried on the
    next change (logged once until a write succeeds): serving never depends on it.
    """

    def __init__(
        self, file: SnapshotFile, capture: Callable[[], ConfigSnapshot], interval: float = 1.0
    ) -> None:
        self.file = file
        self.capture = capture
        self.interval = interval
        self.written = 0
        self.failing = False
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="config-snapshot-writer")

    def mark(self) -> None:
        self._dirty.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
            if self._dirty.is_set():
                await self._write()

    async def _run(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(self.interval)  # coalesce the rest of the burst
            await self._write()

    async def _write(self) -> None:
        self._dirty.clear()
        snapshot = self.capture()  # in the loop: the state is only changed there
        try:
            await asyncio.to_thread(self.file.save, snapshot)
        except OSError as exc:  # said once until a write succeeds, not at every change
            level = logging.DEBUG if self.failing else logging.WARNING
            log.log(level, "config snapshot: cannot write %s (%s)", self.file.path, _why(exc))
            self.failing = True
        except Exception as exc:  # never let the writer die; the error's text may quote config
            log.error("config snapshot: write failed (%s)", type(exc).__name__)
        else:
            self.written += 1
            self.failing = False


class Follower(Protocol):
    """What `SnapshotKeeper` needs of the process's replica runner (core's
    `ReplicaRunner`)."""

    @property
    def state(self) -> ReplicaState: ...

    @property
    def replica(self) -> ConfigReplica | None: ...

    @property
    def ready(self) -> bool: ...

    async def wait_ready(self) -> None: ...


class SnapshotKeeper:
    """A process's config snapshot, kept and used.

    Kept: once the runner has caught up, every change is written (``changed`` is a config
    listener, ``caught_up`` runs when the runner is ready); a state half replayed is never
    written. Used: if the runner has not caught up ``grace`` seconds after ``start`` (NATS
    unreachable), the snapshot is applied with ``apply`` and the process serves from it
    (``serving``) while the runner keeps trying. When NATS returns, the replica replays the
    latest message of every subject — deletes included, the stream keeps one per subject —
    applied where newer than what the snapshot held, and the snapshot is written again
    with the sequence it has reached.
    """

    def __init__(
        self,
        file: SnapshotFile,
        follower: Follower,
        apply: Callable[[AnyConfigEvent], object],
        *,
        grace: float = 2.0,
        interval: float = 1.0,
    ) -> None:
        self.file = file
        self.follower = follower
        self.grace = grace
        self.writer = SnapshotWriter(file, self._capture, interval)
        self.loaded: ConfigSnapshot | None = None
        self._apply = apply
        self._task: asyncio.Task[None] | None = None

    @property
    def serving(self) -> bool:
        """Whether the process serves from the snapshot (the runner has not caught up)."""
        return self.loaded is not None and not self.follower.ready

    def changed(self, _event: object = None) -> None:
        if self.follower.ready:
            self.writer.mark()

    def caught_up(self) -> None:
        replica = self.follower.replica
        if self.loaded is not None and replica is not None and replica.seq < self.loaded.seq:
            # a stream's sequence only grows: this one was recreated (its store lost), and
            # what was deleted meanwhile has no tombstone to remove it from the snapshot's state
            log.warning(
                "config snapshot: the config stream (sequence %d) is behind the snapshot "
                "served (%d), so it was recreated; restart this process to drop entities "
                "the stream no longer holds",
                replica.seq,
                self.loaded.seq,
            )
        self.writer.mark()

    def start(self) -> None:
        self.writer.start()
        if self._task is None:
            self._task = asyncio.create_task(self._fall_back(), name="config-snapshot-fallback")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        await self.writer.stop()

    async def _fall_back(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.grace):
                await self.follower.wait_ready()
        if self.follower.ready:
            return
        snapshot = await asyncio.to_thread(self.file.load)
        if snapshot is None or self.follower.ready:
            return
        for event in snapshot.events:
            self._apply(event)
        self.loaded = snapshot
        log.warning(
            "config snapshot: the bus is unreachable; serving the config snapshot of stream "
            "sequence %d (%d entities) until it returns",
            snapshot.seq,
            len(snapshot.events),
        )

    def _capture(self) -> ConfigSnapshot:
        replica = self.follower.replica
        seq = replica.seq if replica is not None else 0
        return ConfigSnapshot.of(self.follower.state, seq)


def state_path(filename: str) -> str:
    """``filename`` in this user's state directory for TrustGate:
    ``$XDG_STATE_HOME/trustgate`` (by default ``~/.local/state/trustgate``); empty when
    this user has no home to put it in."""
    base = os.environ.get("XDG_STATE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "state")
        except RuntimeError:  # no HOME and no entry in the password database
            return ""
    return str(Path(base) / "trustgate" / filename)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be synced
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _why(exc: BaseException) -> str:
    """The reason of an I/O error, without anything read from the file."""
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
