"""The shared test plugin: wait_for, the private NATS server and the database fixtures."""

from __future__ import annotations

import asyncio

import asyncpg
import nats
import pytest

from trustgate_core.embedded import port_open
from trustgate_testkit.fixtures import (
    Infra,
    NatsServer,
    create_database,
    drop_database,
    wait_for,
)


async def test_wait_for_returns_the_first_truthy_value_of_a_sync_predicate() -> None:
    calls = iter([0, None, "", 42])

    assert await wait_for(lambda: next(calls), timeout=1, interval=0) == 42


async def test_wait_for_awaits_async_predicates_and_retries_their_errors() -> None:
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("not yet")
        return "ready"

    assert await wait_for(flaky, timeout=1, interval=0) == "ready"
    assert attempts == 3


async def test_wait_for_raises_assertion_error_with_the_message_after_the_deadline() -> None:
    with pytest.raises(AssertionError, match="never true"):
        await wait_for(lambda: False, timeout=0.05, message="never true")


def test_infra_points_at_all_four_servers(infra: Infra) -> None:
    assert infra.postgres_dsn.startswith("postgresql://")
    assert infra.redis_url.startswith("redis://")
    assert infra.nats_url.startswith("nats://")
    assert ":" in infra.kafka_bootstrap


async def test_fresh_database_is_a_new_empty_database(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database, timeout=10)
    try:
        name = await conn.fetchval("SELECT current_database()")
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    assert name.startswith("tg_test_")
    assert tables == 0


async def test_drop_database_terminates_open_connections(infra: Infra) -> None:
    dsn = await create_database(infra.postgres_dsn, prefix="tg_drop")
    name = dsn.rsplit("/", 1)[1]
    holder = await asyncpg.connect(dsn, timeout=10)
    try:
        await drop_database(infra.postgres_dsn, dsn)
    finally:
        await holder.close(timeout=1)
    server = await asyncpg.connect(infra.postgres_dsn, timeout=10)
    try:
        assert await server.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name) is None
    finally:
        await server.close()


async def test_database_factory_databases_are_distinct(database_factory) -> None:  # type: ignore[no-untyped-def]
    first = await database_factory("tg_factory")
    second = await database_factory("tg_factory")
    assert first != second


@pytest.mark.slow
async def test_nats_server_keeps_port_and_streams_across_restart(nats_server: NatsServer) -> None:
    url = nats_server.url
    nc = await nats.connect(url, connect_timeout=5)
    try:
        await nc.jetstream().add_stream(name="SURVIVES", subjects=["survives.>"])
    finally:
        await nc.close()

    nats_server.restart()

    assert nats_server.url == url
    nc = await nats.connect(url, connect_timeout=5)
    try:
        info = await nc.jetstream().stream_info("SURVIVES")
    finally:
        await nc.close()
    assert info.config.name == "SURVIVES"


@pytest.mark.slow
def test_nats_server_stop_frees_the_port() -> None:
    server = NatsServer()
    server.start()
    try:
        assert port_open(server.host, server.port)
    finally:
        server.cleanup()
    assert not port_open(server.host, server.port)


async def test_wait_for_cancels_a_hung_async_predicate_at_the_deadline() -> None:
    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(AssertionError, match="hangs"):
        await wait_for(hangs, timeout=0.1)
