"""`GET /__/version` reports the commit and build date of the running build."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from trustgate_admin.api.routes import health
from trustgate_core.buildinfo import build_info


async def test_version_reports_the_commit_and_build_date_of_this_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRUSTGATE_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setenv("TRUSTGATE_BUILD_DATE", "2026-12-01T10:00:00Z")
    build_info.cache_clear()
    app = FastAPI()
    app.include_router(health.router)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            response = await client.get("/__/version")
    finally:
        build_info.cache_clear()
    assert response.status_code == 200
    body = response.json()
    assert body["app_name"] == "trustgate-admin"
    assert body["commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert body["build_date"] == "2026-12-01T10:00:00Z"
    assert set(body) == {
        "app_name",
        "version",
        "commit",
        "build_date",
        "python_version",
        "platform",
    }
