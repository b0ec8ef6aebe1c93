"""The config snapshot on disk: it rebuilds the state it was taken from, is unreadable
without the secret key (mode 0600, nothing in clear), is ignored — logged, never raised —
when corrupt or sealed under another key, and a burst of changes is written once."""

from __future__ import annotations

import asyncio
import logging
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import uuid4

import pytest

from trustgate_core.crypto import SecretBox
from trustgate_core.events.config import AuthEvent, GatewayEvent, RegistryEvent
from trustgate_core.models import Auth, Gateway, Registry
from trustgate_core.replica import ReplicaState
from trustgate_core.replica.snapshot import (
    ConfigSnapshot,
    SnapshotFile,
    SnapshotKeeper,
    SnapshotWriter,
    state_path,
)
from trustgate_testkit.fixtures import wait_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "snapshot-test-secret-0123456789abcdef0123456789"
KEY_HASH = "ab" * 32
UPSTREAM_SECRET = "sk-upstream-in-clear-0001"


def populated() -> ReplicaState:
    """A gateway, a registry with a credential (sealed, as on the bus) and an API key."""
    box = SecretBox(KEY)
    gid = uuid4()
    state = ReplicaState()
    gateway = Gateway(id=gid, gateway_id=gid, slug="acme-prod", created_at=NOW, updated_at=NOW)
    registry = Registry(
        id=uuid4(),
        gateway_id=gid,
        created_at=NOW,
        updated_at=NOW,
        name="openai-main",
        provider="openai",
        provider_options={"base_url": "https://llm.example"},
        auth=box.seal_fields({"type": "api_key", "api_key": {"api_key": UPSTREAM_SECRET}}),
    )
    auth = Auth(
        id=uuid4(),
        gateway_id=gid,
        created_at=NOW,
        updated_at=NOW,
        name="app-key",
        type="api_key",
        key_hash=KEY_HASH,
    )
    common = {"gateway_id": gid, "occurred_at": NOW, "op": "upsert"}
    state.apply(GatewayEvent(revision=3, entity_id=gid, entity=gateway, **common))
    state.apply(RegistryEvent(revision=5, entity_id=registry.id, entity=registry, **common))
    state.apply(AuthEvent(revision=7, entity_id=auth.id, entity=auth, **common))
    return state


def test_a_snapshot_rebuilds_the_state_and_the_stream_sequence_it_reflects(
    tmp_path: Path,
) -> None:
    state = populated()
    file = SnapshotFile(tmp_path / "proxy.snapshot", SecretBox(KEY))
    file.save(ConfigSnapshot.of(state, seq=42))

    loaded = file.load()
    assert loaded is not None and loaded.seq == 42
    rebuilt = ReplicaState()
    for event in loaded.events:
        assert rebuilt.apply(event)
    assert rebuilt.revisions == state.revisions
    assert rebuilt.gateway_by_slug("acme-prod") == state.gateway_by_slug("acme-prod")
    assert rebuilt.auth_by_key_hash(KEY_HASH) == state.auth_by_key_hash(KEY_HASH)
    assert rebuilt.registries == state.registries


def test_the_file_is_private_and_shows_nothing_in_clear(tmp_path: Path) -> None:
    path = saved(tmp_path / "state" / "proxy.snapshot", seq=1)  # its directory is made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    raw = path.read_bytes()
    for clear in ("acme-prod", "openai-main", "llm.example", KEY_HASH, UPSTREAM_SECRET):
        assert clear.encode() not in raw
    assert [p.name for p in path.parent.iterdir()] == ["proxy.snapshot"]  # no temp file left


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="truncated"),
        pytest.param(lambda raw: raw[:-8] + b"AAAAAAAA", id="tampered"),
        pytest.param(lambda raw: b"\xff\xfe not a snapshot", id="garbage"),
        pytest.param(lambda raw: b"", id="empty"),
    ],
)
def test_a_damaged_snapshot_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    path = tmp_path / "proxy.snapshot"
    file = SnapshotFile(path, SecretBox(KEY))
    file.save(ConfigSnapshot.of(populated(), seq=1))
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with caplog.at_level(logging.WARNING):
        assert file.load() is None
    assert "corrupt or sealed under another secret key; ignored" in caplog.text
    assert "acme-prod" not in caplog.text


def test_a_snapshot_sealed_under_another_key_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path / "proxy.snapshot", seq=1)
    with caplog.at_level(logging.WARNING):
        assert SnapshotFile(path, SecretBox("another-key-" + KEY)).load() is None
    assert "ignored" in caplog.text


def test_no_snapshot_is_not_an_error(tmp_path: Path) -> None:
    assert SnapshotFile(tmp_path / "none", SecretBox(KEY)).load() is None


async def test_a_burst_of_changes_is_written_once_and_the_last_state_is_kept(
    tmp_path: Path,
) -> None:
    state = populated()
    seq = 0
    file = SnapshotFile(tmp_path / "proxy.snapshot", SecretBox(KEY))
    writer = SnapshotWriter(file, lambda: ConfigSnapshot.of(state, seq), interval=0.2)
    writer.start()
    try:
        for seq in range(1, 301):  # spread over many turns of the loop
            writer.mark()
            if seq % 10 == 0:
                await asyncio.sleep(0)
        await wait_for(lambda: writer.written == 1, timeout=5)
    finally:
        await writer.stop()
    assert writer.written == 1
    loaded = file.load()
    assert loaded is not None and loaded.seq == 300


async def test_a_change_pending_at_stop_is_written(tmp_path: Path) -> None:
    file = SnapshotFile(tmp_path / "proxy.snapshot", SecretBox(KEY))
    writer = SnapshotWriter(file, lambda: ConfigSnapshot.of(populated(), 9), interval=3600)
    writer.start()
    writer.mark()
    await writer.stop()
    loaded = file.load()
    assert loaded is not None and loaded.seq == 9


async def test_a_failed_write_is_logged_once_and_the_writer_carries_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    file = SnapshotFile(blocker / "proxy.snapshot", SecretBox(KEY))
    writer = SnapshotWriter(file, lambda: ConfigSnapshot.of(populated(), 1), interval=0)
    with caplog.at_level(logging.WARNING):
        writer.start()
        writer.mark()
        await wait_for(lambda: writer.failing, timeout=5)  # in the background task
        writer.mark()
        await writer.stop()  # writes the pending change: fails again, quietly
        assert caplog.text.count("cannot write") == 1
        blocker.unlink()
        blocker.mkdir()
        writer.start()
        writer.mark()
        await writer.stop()
    assert writer.written == 1 and not writer.failing
    assert file.load() is not None


@dataclass
class FakeRunner:
    """A replica runner that catches up when the test says so."""

    state: ReplicaState = field(default_factory=ReplicaState)
    replica: Any = None
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ready(self) -> bool:
        return self.caught_up.is_set()

    async def wait_ready(self) -> None:
        await self.caught_up.wait()

    def catch_up(self, seq: int) -> None:
        self.replica = SimpleNamespace(seq=seq)
        self.caught_up.set()


def saved(path: Path, seq: int) -> Path:
    """``path`` holding a snapshot of the populated state at stream sequence ``seq``."""
    SnapshotFile(path, SecretBox(KEY)).save(ConfigSnapshot.of(populated(), seq=seq))
    return path


def keeper_for(runner: FakeRunner, path: Path) -> SnapshotKeeper:
    file = SnapshotFile(path, SecretBox(KEY))
    return SnapshotKeeper(file, runner, runner.state.apply, grace=0.05, interval=0)


async def test_the_snapshot_is_served_only_while_the_runner_has_not_caught_up(
    tmp_path: Path,
) -> None:
    path = saved(tmp_path / "proxy.snapshot", seq=8)
    runner = FakeRunner()
    keeper = keeper_for(runner, path)
    keeper.start()
    try:
        await wait_for(lambda: keeper.serving, timeout=5)
        assert runner.state.gateway_by_slug("acme-prod") is not None
        runner.catch_up(seq=9)
        keeper.caught_up()
        assert not keeper.serving
    finally:
        await keeper.stop()


async def test_a_runner_that_catches_up_in_time_never_loads_the_snapshot(tmp_path: Path) -> None:
    path = saved(tmp_path / "proxy.snapshot", seq=8)
    runner = FakeRunner()
    runner.catch_up(seq=1)
    keeper = keeper_for(runner, path)
    keeper.start()
    fallback = keeper._task
    assert fallback is not None
    await wait_for(fallback.done, timeout=5)  # it has decided
    await keeper.stop()
    assert keeper.loaded is None and runner.state.gateway_by_slug("acme-prod") is None


async def test_changes_are_written_only_once_the_runner_has_caught_up(tmp_path: Path) -> None:
    path = tmp_path / "proxy.snapshot"
    runner = FakeRunner()
    keeper = keeper_for(runner, path)
    keeper.grace = keeper.writer.interval = 3600  # nothing happens but what stop() flushes
    keeper.start()
    keeper.changed()  # mid-replay: a partial state is never written
    await keeper.stop()
    assert not path.exists()

    runner.catch_up(seq=5)
    keeper.start()
    keeper.changed()
    await keeper.stop()
    loaded = SnapshotFile(path, SecretBox(KEY)).load()
    assert loaded is not None and loaded.seq == 5


async def test_a_stream_behind_the_snapshot_served_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = saved(tmp_path / "proxy.snapshot", seq=50)
    runner = FakeRunner()
    keeper = keeper_for(runner, path)
    keeper.start()
    try:
        await wait_for(lambda: keeper.serving, timeout=5)
        runner.catch_up(seq=3)  # a stream recreated empty, then 3 messages
        with caplog.at_level(logging.WARNING):
            keeper.caught_up()
    finally:
        await keeper.stop()
    assert "is behind the snapshot served (50), so it was recreated" in caplog.text


def test_the_default_place_is_the_users_state_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert state_path("p.snapshot") == str(tmp_path / "trustgate" / "p.snapshot")
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "state" / "trustgate" / "p.snapshot"
    assert state_path("p.snapshot") == str(expected)
