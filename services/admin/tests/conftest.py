"""Admin integration fixtures: a migrated database, a private NATS, the admin served on a port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from trustgate_testkit.admin import RunningAdmin, admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer


@pytest.fixture(scope="session")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """A private NATS for the admin tests (the stream holds only their entities)."""
    root: Path = tmp_path_factory.mktemp("admin-nats")
    server = NatsServer(root / "store", log_file=root / "nats.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def admin_db(database_factory) -> str:  # type: ignore[no-untyped-def]
    return str(await database_factory("tg_admin"))


@pytest.fixture(scope="session")
async def admin(admin_db: str, bus: NatsServer) -> AsyncIterator[RunningAdmin]:
    async with running_admin(admin_settings(admin_db, bus.url)) as running:
        yield running


@pytest.fixture
async def api(admin: RunningAdmin) -> AsyncIterator[httpx.AsyncClient]:
    async with admin.client() as client:
        yield client
