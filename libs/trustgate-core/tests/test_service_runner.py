"""The replica runner against a private nats-server: boots while NATS is down, retries with
backoff, catches up, follows changes across a restart. And the backoff it retries with."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from trustgate_core.backoff import Backoff, retry
from trustgate_core.bus import connect
from trustgate_core.events.config import AnyConfigEvent, GatewayEvent, encode_event
from trustgate_core.events.subjects import CONFIG_STREAM, config_subject, requests_stream
from trustgate_core.models import Gateway
from trustgate_core.replica import ReplicaState
from trustgate_core.service import ReplicaRunner
from trustgate_core.tasks import cancel_and_wait
from trustgate_testkit.fixtures import NatsServer, wait_for

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def gateway_event(gid: UUID, slug: str, revision: int = 1) -> GatewayEvent:
    entity = Gateway(id=gid, gateway_id=gid, slug=slug, created_at=NOW, updated_at=NOW)
    return GatewayEvent(
        op="upsert",
        revision=revision,
        gateway_id=gid,
        entity_id=gid,
        occurred_at=NOW,
        entity=entity,
    )


async def publish(url: str, event: GatewayEvent) -> None:
    nc = await connect(url, name="runner-test-admin")
    try:
        subject = config_subject(event.kind, event.gateway_id, event.entity_id)
        await nc.jetstream().publish(subject, encode_event(event), timeout=5)
    finally:
        await nc.close()


def runner_for(url: str, state: ReplicaState, **kwargs: object) -> ReplicaRunner:
    return ReplicaRunner(
        url,
        name="runner-test",
        state=state,
        streams=[CONFIG_STREAM, requests_stream()],
        retry_min=0.05,
        retry_max=0.2,
        **kwargs,  # type: ignore[arg-type]
    )


@asynccontextmanager
async def caught_up(url: str, state: ReplicaState) -> AsyncIterator[ReplicaRunner]:
    """A runner on ``url``, ready (within 10 s), stopped on the way out."""
    runner = runner_for(url, state)
    await runner.start()
    try:
        async with asyncio.timeout(10):
            await runner.wait_ready()
        yield runner
    finally:
        await runner.stop()


async def test_a_runner_started_while_nats_is_down_is_not_ready_then_ready_once_it_is_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(tmp_path / "store", log_file=tmp_path / "nats.log")  # not started
    state = ReplicaState()
    changes: list[AnyConfigEvent] = []
    readied: list[bool] = []
    runner = runner_for(
        server.url, state, listeners=[changes.append], on_ready=lambda: readied.append(True)
    )
    try:
        with caplog.at_level(logging.WARNING, logger="trustgate_core.bus.nats"):
            await runner.start()
            # each failed attempt is logged (by the client's error callback or the retry)
            await wait_for(
                lambda: sum(r.name == "trustgate_core.bus.nats" for r in caplog.records) >= 2,
                timeout=10,
                message="two connection attempts failed",
            )
        assert not runner.ready
        assert runner.replica is None and runner.applied == 0
        assert runner.dependencies() == {"nats": "unavailable", "config": "unavailable"}

        await asyncio.to_thread(server.start)
        async with asyncio.timeout(15):
            await runner.wait_ready()
        assert runner.ready
        assert runner.dependencies() == {"nats": "ok", "config": "ok"}
        await wait_for(lambda: readied == [True], timeout=5, message="on_ready ran once")
        assert runner.nc is not None
        js = runner.nc.jetstream()
        for stream in ("TRUSTGATE_CONFIG", "TRUSTGATE_REQUESTS"):
            assert (await js.stream_info(stream)).config.name == stream

        gid = uuid4()
        event = gateway_event(gid, "made-later")
        await publish(server.url, event)
        await wait_for(lambda: runner.applied == 1, timeout=10, message="event applied")
        assert changes == [event]
        assert state.gateway_by_slug("made-later") is not None
    finally:
        await runner.stop()
        server.cleanup()
    assert runner.nc is not None and runner.nc.is_closed
    assert readied == [True]


async def test_a_runner_catches_up_with_what_the_stream_holds_before_it_is_ready(
    nats_server: NatsServer,
) -> None:
    gids = [uuid4() for _ in range(3)]
    async with caught_up(nats_server.url, ReplicaState()):  # makes the streams
        pass
    for n, gid in enumerate(gids):
        await publish(nats_server.url, gateway_event(gid, f"gw-{n}"))

    state = ReplicaState()
    async with caught_up(nats_server.url, state) as runner:
        assert all(state.gateway_by_slug(f"gw-{n}") is not None for n in range(3))
        assert runner.applied == 3


async def test_after_nats_restarts_the_runner_follows_new_changes(
    nats_server: NatsServer,
) -> None:
    state = ReplicaState()
    async with caught_up(nats_server.url, state) as runner:
        await asyncio.to_thread(nats_server.restart)
        await wait_for(lambda: runner.dependencies()["nats"] == "ok", timeout=15)
        await publish(nats_server.url, gateway_event(uuid4(), "after-restart"))
        await wait_for(
            lambda: state.gateway_by_slug("after-restart") is not None,
            timeout=15,
            message="the change made after the restart reached the replica",
        )


async def test_stopping_a_runner_that_never_connected_returns_promptly(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "store")  # never started
    runner = runner_for(server.url, ReplicaState())
    await runner.start()
    async with asyncio.timeout(5):
        await runner.stop()
    assert not runner.ready
    server.cleanup()


# --- the backoff ---------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_maximum_and_starts_over_after_reset() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)


async def test_retry_tries_again_until_the_attempt_succeeds_and_logs_each_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("not yet")
        return "done"

    log = logging.getLogger("test.retry")
    with caplog.at_level(logging.WARNING, logger="test.retry"):
        result = await retry(flaky, what="flaky thing", backoff=Backoff(0.001, 0.002), log=log)
    assert (result, attempts) == ("done", 3)
    failures = [r.getMessage() for r in caplog.records if r.name == "test.retry"]
    assert len(failures) == 2 and all(m.startswith("flaky thing failed") for m in failures)


async def test_retry_ends_when_cancelled() -> None:
    started = asyncio.Event()

    async def never() -> None:
        started.set()
        raise ConnectionError("down")

    task = asyncio.create_task(retry(never, what="never", backoff=Backoff(10, 10)))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- ending owned tasks ----------------------------------------------------------------------


async def test_cancel_and_wait_outlasts_a_task_that_swallows_one_cancellation() -> None:
    started, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # as Python 3.11's wait_for can: the cancellation is lost
        await asyncio.Event().wait()

    task = asyncio.create_task(stubborn())
    await started.wait()
    async with asyncio.timeout(5):
        await cancel_and_wait(task, again_every=0.01)
    assert swallowed.is_set() and task.cancelled()
