"""Admin integration fixtures: a migrated database, a private NATS, the admin served on a port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from trustgate_admin.api.security import mint_admin_token
from trustgate_admin.main import create_app
from trustgate_admin.settings import AdminSettings
from trustgate_core.testing.fixtures import NatsServer

pytest_plugins = ["trustgate_core.testing.fixtures"]

SECRET = "test-secret-key-for-the-admin-plane-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningAdmin:
    url: str
    settings: AdminSettings
    server: uvicorn.Server

    @property
    def container(self):  # type: ignore[no-untyped-def]
        return self.server.config.loaded_app.state.container  # type: ignore[attr-defined]

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token or mint_admin_token(SECRET)}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10)


def admin_settings(dsn: str, nats_url: str, **extra: object) -> AdminSettings:
    values = {
        "DATABASE_URL": dsn,
        "NATS_URL": nats_url,
        "SERVER_SECRET_KEY": SECRET,
        "SERVER_ADMIN_PORT": free_port(),
        "SERVER_HOST": "127.0.0.1",
        "OUTBOX_POLL_INTERVAL": 0.5,
        "LOG_LEVEL": "warning",
        **extra,
    }
    return AdminSettings(**values)  # type: ignore[arg-type]


@asynccontextmanager
async def running_admin(settings: AdminSettings) -> AsyncIterator[RunningAdmin]:
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done():
            task.result()
        assert asyncio.get_running_loop().time() < deadline, "admin did not start"
        await asyncio.sleep(0.02)
    try:
        yield RunningAdmin(f"http://127.0.0.1:{settings.port}", settings, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


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
