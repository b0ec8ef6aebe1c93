"""The work consumer on real JetStream: one durable shared by its instances, batches handed to
the handler, which acks after its work; what it naks comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from trustgate_core.bus import WorkConsumer, connect, ensure_streams
from trustgate_core.events.subjects import REQUESTS_SUBJECTS, requests_stream, requests_subject
from trustgate_testkit.fixtures import NatsServer, wait_for

STREAM = requests_stream()


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[NATS]:
    nc = await connect(nats_server.url, name="work-tests")
    await ensure_streams(nc.jetstream(), [STREAM])
    try:
        yield nc
    finally:
        await nc.close()


async def publish(nc: NATS, n: int) -> None:
    js = nc.jetstream()
    for i in range(n):
        await js.publish(requests_subject("gw"), f"event-{i}".encode(), timeout=5)


@contextlib.asynccontextmanager
async def running(consumer: WorkConsumer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        consumer.stop()
        try:
            async with asyncio.timeout(5):
                await task
        finally:
            task.cancel()


def consumer_of(nc: NATS, handle: object, **kwargs: object) -> WorkConsumer:
    return WorkConsumer(
        nc.jetstream(),
        STREAM.name,
        REQUESTS_SUBJECTS,
        handle,  # type: ignore[arg-type]
        durable="work-test",
        batch_size=10,
        fetch_wait=0.2,
        ack_wait=30,
        retry_delay=0.05,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_batches_are_handled_and_acked_after_the_work(bus: NATS) -> None:
    handled: list[bytes] = []
    lags: list[int] = []

    async def handle(msgs: Sequence[Msg]) -> bool:
        for msg in msgs:
            handled.append(msg.data)
            await msg.ack()
        return True

    consumer = consumer_of(bus, handle, on_lag=lags.append)
    await publish(bus, 5)
    async with running(consumer):
        await wait_for(lambda: consumer.consuming, timeout=5, message="subscribed")
        await wait_for(lambda: len(handled) == 5, timeout=10)

        async def all_acked() -> bool:
            info = await bus.jetstream().consumer_info(STREAM.name, "work-test")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await wait_for(all_acked, timeout=10)
    assert handled == [f"event-{i}".encode() for i in range(5)]
    assert lags and not consumer.consuming


async def test_what_the_handler_naks_comes_back_and_a_failed_batch_backs_off(bus: NATS) -> None:
    seen: list[bytes] = []
    refused: list[bytes] = []

    async def handle(msgs: Sequence[Msg]) -> bool:
        seen.extend(m.data for m in msgs)
        if not refused:  # the first batch fails: nak'ed, redelivered later
            refused.extend(m.data for m in msgs)
            for msg in msgs:
                await msg.nak(delay=0.05)
            return False
        for msg in msgs:
            await msg.ack()
        return True

    consumer = consumer_of(bus, handle)
    await publish(bus, 3)
    everything = [f"event-{i}".encode() for i in range(3)]
    async with running(consumer):
        await wait_for(
            lambda: refused and all(seen.count(data) == 2 for data in refused),
            timeout=10,
            message="the refused batch came back",
        )
        await wait_for(lambda: sorted(set(seen)) == everything, timeout=10)


async def test_an_idle_stream_is_not_a_fetch_failure(
    bus: NATS, caplog: pytest.LogCaptureFixture
) -> None:
    """A fetch that finds nothing may end in nats-py's TimeoutError or asyncio's (a wait so
    short that its deadline passes during the first probe): neither is logged as a failure
    nor backed off from, and what is published after the idle spell is handled."""
    handled: list[bytes] = []

    async def handle(msgs: Sequence[Msg]) -> bool:
        for msg in msgs:
            handled.append(msg.data)
            await msg.ack()
        return True

    consumer = WorkConsumer(
        bus.jetstream(),
        STREAM.name,
        REQUESTS_SUBJECTS,
        handle,
        durable="work-idle",
        batch_size=10,
        fetch_wait=0.001,
        ack_wait=30,
        retry_delay=30,  # a fetch taken for a failure would stall the test
    )
    with caplog.at_level(logging.WARNING, logger="trustgate_core.bus.work"):
        async with running(consumer):
            await wait_for(lambda: consumer.consuming, timeout=5, message="subscribed")
            await asyncio.sleep(0.3)  # idle: many empty fetches go by
            await publish(bus, 1)
            await wait_for(lambda: handled == [b"event-0"], timeout=5, message="handled")
    assert [r.getMessage() for r in caplog.records if "fetch failed" in r.getMessage()] == []
