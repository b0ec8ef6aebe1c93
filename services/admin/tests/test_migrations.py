"""Two admin processes booting at once against a new database both come up."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import asyncpg
import httpx
import pytest

from trustgate_testkit.admin import SECRET, free_port
from trustgate_testkit.fixtures import NatsServer, wait_for

pytestmark = pytest.mark.slow


async def test_two_admins_booting_at_once_migrate_the_new_database_once(
    database_factory, nats_server: NatsServer
) -> None:
    dsn = await database_factory("tg_boot")
    ports = [free_port(), free_port()]
    procs = []
    for port in ports:
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "NATS_URL": nats_server.url,
            "SERVER_SECRET_KEY": SECRET,
            "SERVER_ADMIN_PORT": str(port),
            "SERVER_ADMIN_METRICS_PORT": str(free_port()),  # each its own operations port
            "SERVER_HOST": "127.0.0.1",
        }
        procs.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "trustgate.cli",
                "admin",
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            for port in ports:

                async def ready(port: int = port) -> bool:
                    r = await client.get(f"http://127.0.0.1:{port}/readyz")
                    return r.status_code == 200

                await wait_for(ready, timeout=60, message=f"admin on {port} not ready")
        conn = await asyncpg.connect(dsn)
        try:
            versions = await conn.fetch("SELECT version_num FROM alembic_version")
            assert [v["version_num"] for v in versions] == ["0009"]
        finally:
            await conn.close()
        assert all(p.returncode is None for p in procs)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 15)
            except TimeoutError:
                p.kill()
                await p.wait()
