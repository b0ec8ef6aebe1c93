"""A database that drops or refuses connections gets 503 with ``Retry-After`` and a JSON
error body, never a 500; the admin answers again as soon as the database does."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError

from trustgate_admin.adapters.db.errors import is_unavailable
from trustgate_admin.api.security import mint_admin_token
from trustgate_testkit.admin import admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer, wait_for

pytestmark = pytest.mark.slow


async def _allow_connections(dsn: str, allowed: bool) -> None:
    name = dsn.rsplit("/", 1)[1]
    server = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        await server.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await server.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
    finally:
        await server.close()


async def test_dropped_database_connections_are_503_with_retry_after(
    database_factory, bus: NatsServer
) -> None:
    dsn = await database_factory("tg_dbdown")
    async with running_admin(admin_settings(dsn, bus.url)) as admin, admin.client() as api:
        secret = admin.settings.server_secret_key
        tenant = admin.client(mint_admin_token(secret, tenant_id="tenant-dbdown"))
        gw = (await tenant.post("/v1/gateways", json={})).json()["id"]
        await _allow_connections(dsn, False)
        try:
            for client, method, url, body in (
                (api, "GET", "/v1/gateways", None),
                (api, "POST", "/v1/gateways", {"name": "while-down"}),
                (tenant, "GET", f"/v1/gateways/{gw}", None),  # its tenant is checked first
            ):
                r = await client.request(method, url, json=body)
                assert r.status_code == 503, r.text
                assert r.headers["retry-after"].isdigit()
                assert r.json()["error"] == "unavailable"
        finally:
            await _allow_connections(dsn, True)

        async def answers() -> bool:
            return (await api.get("/v1/gateways")).status_code == 200

        await wait_for(answers, timeout=10, message="the admin did not recover")
        await tenant.aclose()


@pytest.mark.parametrize(
    "cause",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.TooManyConnectionsError("too many clients"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.InterfaceError("connection is closed"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_connection_failures_behind_sqlalchemy_errors_count_as_unavailable(
    cause: Exception,
) -> None:
    """SQLAlchemy wraps asyncpg's errors (the original is the cause of its DBAPI error)."""
    dbapi = Exception(str(cause))
    dbapi.__cause__ = cause
    for wrapped in (DBAPIError("SELECT 1", {}, dbapi), InterfaceError("SELECT 1", {}, dbapi)):
        assert is_unavailable(wrapped)
    assert is_unavailable(cause)
    assert not is_unavailable(ValueError("a bug"))
    assert not is_unavailable(DBAPIError("SELECT 1", {}, Exception("syntax error")))
