from __future__ import annotations

import asyncio
import platform
from datetime import UTC, datetime

from fastapi import APIRouter
from sqlalchemy import text
from starlette.responses import JSONResponse

from trustgate_admin import __version__
from trustgate_admin.api.deps import ContainerDep
from trustgate_core.buildinfo import build_info

router = APIRouter(tags=["health"])


def _now() -> str:
    return datetime.now(UTC).isoformat()


@router.get("/healthz")
@router.get("/health")
async def healthz() -> dict[str, str]:
    return {"status": "healthy", "version": __version__, "time": _now()}


@router.get("/readyz", responses={503: {"description": "A dependency is unavailable"}})
async def readyz(c: ContainerDep) -> JSONResponse:
    deps = {"database": "ok", "nats": "ok" if c.nc.is_connected else "unavailable"}
    try:
        async with asyncio.timeout(2):
            async with c.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception:
        deps["database"] = "unavailable"
    ready = all(v == "ok" for v in deps.values())
    body = {
        "status": "ready" if ready else "not_ready",
        "version": __version__,
        "time": _now(),
        "dependencies": deps,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/__/version")
async def version() -> dict[str, str]:
    build = await asyncio.to_thread(build_info)  # git may run, once: not on the loop
    return {
        "app_name": "trustgate-admin",
        "version": __version__,
        "commit": build["commit"],
        "build_date": build["build_date"],
        "python_version": platform.python_version(),
        "platform": f"{platform.system().lower()}/{platform.machine()}",
    }
