"""Builds the admin app (FastAPI) and runs it — nothing else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI

from trustgate_admin import __version__, bootstrap
from trustgate_admin.api.deps import require_admin
from trustgate_admin.api.errors import install_error_handlers
from trustgate_admin.api.routes import (
    auths,
    catalogs,
    consumers,
    gateways,
    health,
    policies,
    registries,
    roles,
)
from trustgate_admin.settings import AdminSettings


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    settings = settings or AdminSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await bootstrap.build(settings)
        app.state.container = container
        try:
            yield
        finally:
            await bootstrap.close(container)

    docs = settings.docs_enabled
    app = FastAPI(
        title="TrustGate Admin API",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    secured = [Depends(require_admin)]
    for module in (gateways, registries, consumers, auths, policies, roles, catalogs):
        app.include_router(module.router, dependencies=secured)
    return app


def _server(settings: AdminSettings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
    )
    return uvicorn.Server(config)


async def run_server(settings: AdminSettings | None = None) -> None:
    """Run the admin plane until cancelled (used by `trustgate run`)."""
    server = _server(settings or AdminSettings())
    server.config.install_signal_handlers = False  # type: ignore[attr-defined]
    try:
        await server.serve()
    except asyncio.CancelledError:
        server.should_exit = True
        raise


def serve(settings: AdminSettings | None = None) -> None:
    _server(settings or AdminSettings()).run()
