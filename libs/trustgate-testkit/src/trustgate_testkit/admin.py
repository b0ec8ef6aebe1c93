"""Test support for the admin plane: run it on a port, read the config stream, build a replica.

Used by the admin's tests and by cross-service tests; imports nothing at module load that
starts I/O."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import uvicorn
from nats.js.api import DeliverPolicy

from trustgate_admin.api.security import mint_admin_token
from trustgate_admin.main import create_app, create_operations_app
from trustgate_admin.settings import AdminSettings
from trustgate_core.embedded import free_port
from trustgate_core.events import CONFIG_STREAM, decode_config_event
from trustgate_core.replica import ConfigReplica
from trustgate_core.serving import operations_config, server_config

SECRET = "test-secret-key-for-the-admin-plane-0123456789"


@dataclass
class RunningAdmin:
    url: str
    settings: AdminSettings
    server: uvicorn.Server

    app: Any
    operations_url: str  # /metrics, /healthz, /readyz

    @property
    def container(self) -> Any:
        return self.app.state.container

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        token = token or mint_admin_token(self.settings.server_secret_key)
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def admin_settings(dsn: str, nats_url: str, **extra: object) -> AdminSettings:
    values = {
        "DATABASE_URL": dsn,
        "NATS_URL": nats_url,
        "SERVER_SECRET_KEY": SECRET,
        "SERVER_ADMIN_PORT": free_port(),
        "SERVER_ADMIN_METRICS_PORT": free_port(),
        "SERVER_HOST": "127.0.0.1",
        "OUTBOX_POLL_INTERVAL": 0.5,
        "LOG_LEVEL": "warning",
        # the ledger consumes every request event on the bus: a test that wants it says so
        # (with its own LEDGER_DURABLE, so tests sharing a NATS server do not share it)
        "LEDGER_ENABLED": False,
        **extra,
    }
    return AdminSettings(**values)  # type: ignore[arg-type]


def ledger_settings(dsn: str, nats_url: str, durable: str, **extra: object) -> AdminSettings:
    """An admin that runs the usage ledger on its own durable (tests sharing a NATS
    server never share one), fetching small batches briefly."""
    return admin_settings(
        dsn,
        nats_url,
        LEDGER_ENABLED=True,
        LEDGER_DURABLE=durable,
        LEDGER_FETCH_WAIT=0.2,
        LEDGER_BATCH_SIZE=50,
        **extra,
    )


def ledger_of(admin: RunningAdmin) -> Any:
    """The running admin's usage ledger (``trustgate_admin.governance.ledger.Ledger``)."""
    return admin.container.governance.ledger


async def ledger_consuming(admin: RunningAdmin) -> None:
    """Until the admin's ledger consumes its durable."""
    from trustgate_testkit.fixtures import wait_for

    ledger = ledger_of(admin)
    await wait_for(
        lambda: ledger.consumer is not None and ledger.consumer.consuming,
        timeout=15,
        message="the ledger did not start consuming",
    )


@asynccontextmanager
async def running_admin(settings: AdminSettings) -> AsyncIterator[RunningAdmin]:
    """The admin on ``settings.port`` and its operations port on ``settings.metrics_port``."""
    app = create_app(settings)
    api = server_config(app, settings, host="127.0.0.1", port=settings.port, lifespan="on")
    server = uvicorn.Server(api)
    task = asyncio.create_task(server.serve())
    await _until_started(server, task)
    operations = uvicorn.Server(
        operations_config(create_operations_app(app), settings, port=settings.metrics_port)
    )
    operations_task = asyncio.create_task(operations.serve())
    try:
        await _until_started(operations, operations_task)
        url = f"http://127.0.0.1:{settings.port}"
        operations_url = f"http://127.0.0.1:{settings.metrics_port}"
        yield RunningAdmin(url, settings, server, app, operations_url)
    finally:
        # last started, first stopped: each uvicorn server restores the signal handlers it
        # found when it stops, so stopped out of order the process would keep a stopped
        # server's handler (and sse-starlette, which asks it, would end every SSE stream)
        operations.should_exit = True
        await asyncio.wait_for(operations_task, 15)
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _until_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done():
            task.result()
        assert asyncio.get_running_loop().time() < deadline, "admin did not start"
        await asyncio.sleep(0.02)


async def read_stream(
    nats_url: str, gateway_id: str, *, last_per_subject: bool = False
) -> list[Any]:
    """Every config event currently in the stream for one gateway, in stream order."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        events: list[Any] = []
        done = asyncio.Event()

        async def on_msg(msg: Any) -> None:
            events.append(decode_config_event(msg.data))
            if msg.metadata.num_pending == 0:
                done.set()

        sub = await js.subscribe(
            f"trustgate.config.*.{gateway_id}.*",
            stream=CONFIG_STREAM.name,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT
            if last_per_subject
            else DeliverPolicy.ALL,
            cb=on_msg,
        )
        try:
            # set when the last matching message arrived; nothing matching: a short wait
            await asyncio.wait_for(done.wait(), 1.0)
        except TimeoutError:
            pass
        finally:
            await sub.unsubscribe()
        return events
    finally:
        await nc.close()


@asynccontextmanager
async def replica(nats_url: str) -> AsyncIterator[ConfigReplica]:
    nc = await nats.connect(nats_url)
    rep = ConfigReplica(nc)
    try:
        await rep.start()
        await rep.wait_ready(10)
        yield rep
    finally:
        await rep.stop()
        await nc.close()


@asynccontextmanager
async def live_events(nats_url: str) -> AsyncIterator[list[Any]]:
    """Config events as they are published (a plain subscription, so it survives outages
    by reconnecting); filter by ``gateway_id`` in the test."""
    nc = await nats.connect(nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    events: list[Any] = []

    async def on_msg(msg: Any) -> None:
        events.append(decode_config_event(msg.data))

    sub = await nc.subscribe("trustgate.config.>", cb=on_msg)
    await nc.flush()
    try:
        yield events
    finally:
        await sub.unsubscribe()
        await nc.close()
