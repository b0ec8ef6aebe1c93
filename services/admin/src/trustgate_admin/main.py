"""Builds the admin app (FastAPI) and runs it — nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import Depends, FastAPI

from trustgate_admin import __version__, bootstrap
from trustgate_admin.api.deps import require_admin
from trustgate_admin.api.errors import install_error_handlers
from trustgate_admin.api.metrics import AdminMetrics, HttpMetricsMiddleware
from trustgate_admin.api.routes import (
    auths,
    catalogs,
    consumers,
    gateways,
    health,
    metrics,
    policies,
    registries,
    roles,
)
from trustgate_admin.settings import AdminSettings
from trustgate_core.serving import serve_until_cancelled


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    settings = settings or AdminSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await bootstrap.build(settings)
        app.state.container = container
        relay = container.relay
        observed.bind_outbox(lambda: float(relay.published), lambda: relay.is_leader)
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
    observed = AdminMetrics()
    app.state.metrics = observed
    app.add_middleware(HttpMetricsMiddleware, metrics=observed)
    app.include_router(health.router)
    app.include_router(metrics.router)
    secured = [Depends(require_admin)]
    for module in (gateways, registries, consumers, auths, policies, roles, catalogs):
        app.include_router(module.router, dependencies=secured)
    return app


def _config(settings: AdminSettings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
    )


async def run_server(settings: AdminSettings | None = None) -> None:
    """Run the admin plane until cancelled (used by `trustgate run`)."""
    await serve_until_cancelled(_config(settings or AdminSettings()))


def serve(settings: AdminSettings | None = None) -> None:
    uvicorn.Server(_config(settings or AdminSettings())).run()
