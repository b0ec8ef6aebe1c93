"""Schemathesis over the admin's OpenAPI document: generated requests (valid and invalid)
against the admin on real Postgres must never get a 5xx, an undocumented status, or an
answer that breaks the documented schema, content type or headers.

Bounded (``MAX_EXAMPLES`` per operation, derandomized) so it runs in CI in a minute or two.
Schemathesis calls the API synchronously, so this admin serves from its own thread and
event loop; path ids under a gateway point at a real gateway (with a child, so it cannot be
deleted), so the operations below it reach their use cases instead of a 404.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from trustgate_admin.api.security import mint_admin_token
from trustgate_admin.main import create_app
from trustgate_testkit.admin import admin_settings, running_admin
from trustgate_testkit.fixtures import NatsServer

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 30
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]


class ThreadedAdmin:
    """The admin served by uvicorn in a thread with its own event loop."""

    def __init__(self, dsn: str, nats_url: str) -> None:
        self.settings = admin_settings(dsn, nats_url)
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with running_admin(self.settings) as running:
            self.url = running.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> ThreadedAdmin:
        self._thread.start()
        assert self._ready.wait(60), "the fuzzed admin did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


@pytest.fixture(scope="module")
async def fuzz_db(database_factory) -> str:  # type: ignore[no-untyped-def]
    return str(await database_factory("tg_fuzz"))


@pytest.fixture(scope="module")
def fuzzed_admin(fuzz_db: str, bus: NatsServer) -> Iterator[ThreadedAdmin]:
    with ThreadedAdmin(fuzz_db, bus.url) as served:
        yield served


@pytest.fixture(scope="module")
def auth_headers(fuzzed_admin: ThreadedAdmin) -> dict[str, str]:
    token = mint_admin_token(fuzzed_admin.settings.server_secret_key, ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def gateway_id(fuzzed_admin: ThreadedAdmin, auth_headers: dict[str, str]) -> str:
    with httpx.Client(base_url=fuzzed_admin.url, headers=auth_headers, timeout=10) as client:
        gw = client.post("/v1/gateways", json={"slug": "fuzzed"}).json()["id"]
        kept = client.post(f"/v1/gateways/{gw}/roles", json={"name": "keeps-the-gateway"})
        assert kept.status_code == 201, kept.text
    return str(gw)


def _document() -> dict[str, Any]:
    """The document the admin serves at /openapi.json, built without serving it (the
    schema must exist when pytest collects; schemathesis' lazy fixture loader does not
    support this pytest)."""
    unused = admin_settings("postgresql://unused/unused", "nats://unused")
    document: dict[str, Any] = create_app(unused).openapi()
    return document


schema = schemathesis.openapi.from_dict(_document())


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_generated_requests_get_documented_answers_and_never_a_5xx(
    case: Any, fuzzed_admin: ThreadedAdmin, auth_headers: dict[str, str], gateway_id: str
) -> None:
    if case.path_parameters and "gateway_id" in case.path_parameters:
        case.path_parameters["gateway_id"] = gateway_id
    case.call_and_validate(base_url=fuzzed_admin.url, headers=auth_headers, checks=CHECKS)
