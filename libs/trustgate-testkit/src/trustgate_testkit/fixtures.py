"""A pytest plugin with the infrastructure fixtures every TrustGate package's tests share.

Load it from a conftest.py::

    pytest_plugins = ["trustgate_testkit.fixtures"]

Fixtures
--------
`infra` (session)
    Where the shared servers are: an `Infra` with `postgres_dsn` (server level, database
    `postgres`), `redis_url`, `nats_url` and `kafka_bootstrap`. With a reachable Docker
    engine they are testcontainers started for the session; otherwise the local servers
    named by `TEST_POSTGRES_DSN`, `TEST_REDIS_URL`, `TEST_NATS_URL` and
    `TEST_KAFKA_BOOTSTRAP`, defaulting to the standard ports on 127.0.0.1 (which
    `python3 scripts/services.py ensure` starts). `TRUSTGATE_TEST_INFRA=local` skips the
    Docker probe.
`database_factory` (session)
    An async callable, `await database_factory("admin")`, that creates a uniquely named
    database and returns a `postgresql://` DSN to it; every database it made is dropped at
    the end of the session. Use it for a database per session, migrated once.
`fresh_database` (function)
    The DSN of a new, empty database for one test, dropped (connections terminated first)
    when the test ends.
`nats_server` (function)
    A private, started `NatsServer` (JetStream, free port, temporary store) for tests
    that stop, restart or break the bus; stopped and removed at teardown.

Helpers: `wait_for` polls a condition with a deadline (never sleep a fixed time in a
test); `NatsServer` can be used directly for more than one server.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio

from trustgate_core.embedded import EmbeddedNats

T = TypeVar("T")

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"

_CONNECT_TIMEOUT = 10.0


# --- waiting -----------------------------------------------------------------------------


@overload
async def wait_for(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


@overload
async def wait_for(
    predicate: Callable[[], T],
    timeout: float = ...,  # noqa: ASYNC109
    interval: float = ...,
    message: str = ...,
) -> T: ...


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 5.0,  # noqa: ASYNC109 - a polling deadline, not an I/O timeout
    interval: float = 0.02,
    message: str = "",
) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy, and return that.

    Raises AssertionError when `timeout` seconds pass first (an async predicate still
    running at the deadline is cancelled); the last exception the predicate raised, if
    any, is chained as the cause.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            value = predicate()
            if inspect.isawaitable(value):
                # A hung predicate must not outlive the deadline.
                async with asyncio.timeout(max(deadline - time.monotonic(), interval)):
                    value = await value
            last_value, last_error = value, None
            if value:
                return value
        except Exception as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
            raise AssertionError(
                f"condition not met within {timeout:.2f}s: {what} ({detail})"
            ) from last_error
        await asyncio.sleep(interval)


# --- a private NATS server ---------------------------------------------------------------


class NatsServer(EmbeddedNats):
    """A private nats-server with JetStream on a free port, its store in a temp dir.

    `restart()` keeps the port and the store directory, so streams and durable consumers
    survive it. `cleanup()` stops the server and removes a store dir it created.
    """

    def __init__(self, store_dir: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        self._owned_dir: str | None = None
        if store_dir is None:
            self._owned_dir = tempfile.mkdtemp(prefix="trustgate-nats-")
            store_dir = self._owned_dir
        super().__init__(store_dir, **kwargs)

    def cleanup(self) -> None:
        self.stop()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)
            self._owned_dir = None


# --- where the shared servers are ---------------------------------------------------------


@dataclass(frozen=True)
class Infra:
    postgres_dsn: str
    redis_url: str
    nats_url: str
    kafka_bootstrap: str
    source: str = "local"  # "local" or "docker"


def _docker_reachable() -> bool:
    if os.environ.get("TRUSTGATE_TEST_INFRA", "").lower() == "local":
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _local_infra() -> Infra:
    env = os.environ
    return Infra(
        postgres_dsn=env.get("TEST_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN,
        redis_url=env.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL,
        nats_url=env.get("TEST_NATS_URL") or DEFAULT_NATS_URL,
        kafka_bootstrap=env.get("TEST_KAFKA_BOOTSTRAP") or DEFAULT_KAFKA_BOOTSTRAP,
    )


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The shared Postgres, Redis, NATS (JetStream) and Kafka-protocol broker."""
    if not _docker_reachable():
        yield _local_infra()
        return

    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.nats import NatsContainer
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.community.redis import RedisContainer

    postgres = PostgresContainer(
        "postgres:16-alpine", username="postgres", password="postgres", dbname="postgres"
    )
    redis = RedisContainer("redis:7-alpine")
    nats = NatsContainer("nats:2.10-alpine", jetstream=True)
    kafka = KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft()
    started: list[Any] = []
    try:
        for container in (postgres, redis, nats, kafka):
            container.start()
            started.append(container)
        yield Infra(
            postgres_dsn=postgres.get_connection_url(driver=None),
            redis_url=(f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0"),
            nats_url=nats.nats_uri(),
            kafka_bootstrap=kafka.get_bootstrap_server(),
            source="docker",
        )
    finally:
        for container in reversed(started):
            container.stop()


# --- databases ---------------------------------------------------------------------------


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _connect(server_dsn: str) -> Any:
    import asyncpg

    try:
        return await asyncpg.connect(server_dsn, timeout=_CONNECT_TIMEOUT)
    except (TimeoutError, OSError) as exc:
        raise RuntimeError(
            f"Postgres is not reachable at {server_dsn} ({exc}); "
            "start the local services with `python3 scripts/services.py ensure`"
        ) from exc


async def create_database(server_dsn: str, prefix: str = "tg_test") -> str:
    """Create a uniquely named database on the server and return a DSN to it."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await _connect(server_dsn)
    try:
        await conn.execute(f"CREATE DATABASE {_quote_ident(name)}", timeout=_CONNECT_TIMEOUT)
    finally:
        await conn.close(timeout=_CONNECT_TIMEOUT)
    return _with_database(server_dsn, name)


async def drop_database(server_dsn: str, dsn_or_name: str) -> None:
    """Terminate the connections to a database and drop it (no error if it is gone)."""
    name = urlsplit(dsn_or_name).path.lstrip("/") if "://" in dsn_or_name else dsn_or_name
    conn = await _connect(server_dsn)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
            timeout=_CONNECT_TIMEOUT,
        )
        await conn.execute(
            f"DROP DATABASE IF EXISTS {_quote_ident(name)}", timeout=_CONNECT_TIMEOUT
        )
    finally:
        await conn.close(timeout=_CONNECT_TIMEOUT)


DatabaseFactory = Callable[..., Awaitable[str]]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def database_factory(infra: Infra) -> AsyncIterator[DatabaseFactory]:
    """`await database_factory(prefix)` → DSN of a new database; all dropped at session end."""
    made: list[str] = []

    async def make(prefix: str = "tg_test") -> str:
        dsn = await create_database(infra.postgres_dsn, prefix)
        made.append(dsn)
        return dsn

    yield make
    for dsn in reversed(made):
        await drop_database(infra.postgres_dsn, dsn)


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_database(infra: Infra) -> AsyncIterator[str]:
    """The DSN of a new, empty database for this test; dropped afterwards."""
    dsn = await create_database(infra.postgres_dsn)
    try:
        yield dsn
    finally:
        await drop_database(infra.postgres_dsn, dsn)


# --- SDK clients closed with the test that made them -------------------------------------


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def sdk_clients_closed() -> AsyncIterator[None]:
    """Close the ``openai``/``anthropic`` clients the test made through the testkit
    (``trustgate_testkit.proxy.sdk_clients.tracked``): left open, one is collected during
    a later test and can take that test's connections with it (``close_sdk_clients``)."""
    yield
    module = sys.modules.get("trustgate_testkit.proxy.sdk_clients")
    if module is not None:
        await module.close_sdk_clients()


# --- a private NATS per test -------------------------------------------------------------


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started private nats-server with JetStream; stopped at teardown."""
    server = NatsServer(tmp_path / "nats-store", log_file=tmp_path / "nats.log")
    server.start()
    try:
        yield server
    finally:
        server.cleanup()
