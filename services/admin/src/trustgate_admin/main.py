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
from trustgate_admin.api.metrics import AdminMetrics, HttpMetricsMiddleware
from trustgate_admin.api.routes import (
    alerts,
    audit,
    auths,
    cache,
    catalogs,
    consumers,
    gateways,
    health,
    metrics,
    policies,
    receipts,
    registries,
    roles,
    usage,
)
from trustgate_admin.settings import AdminSettings
from trustgate_core import serving
from trustgate_core.serving import until_signalled


def create_app(settings: AdminSettings | None = None) -> FastAPI:
    settings = settings or AdminSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container = await bootstrap.build(settings)
        app.state.container = container
        relay = container.relay
        observed.bind_outbox(lambda: float(relay.published), lambda: relay.is_leader)
        observed.bind_ledger(container.governance.ledger.stats)
        governance = container.governance
        observed.bind_alerts(lambda: float(governance.alerts.fired), governance.deliveries.stats)
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
    app.include_router(receipts.public_router)  # public keys: anyone may verify a receipt
    secured = [Depends(require_admin)]
    modules = (gateways, registries, consumers, auths, policies, cache, roles, catalogs, audit)
    for module in (*modules, usage, alerts, receipts):
        app.include_router(module.router, dependencies=secured)
    return app


def create_operations_app(app: FastAPI) -> FastAPI:
    """The operations port's app: ``/metrics`` and the health routes over ``app``'s state
    (its container and metrics), nothing else. ``/metrics`` is not on the API port."""
    operations = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    operations.state = app.state
    install_error_handlers(operations)
    operations.include_router(health.router)
    operations.include_router(metrics.router)
    return operations


def _configs(settings: AdminSettings) -> tuple[uvicorn.Config, uvicorn.Config]:
    """The API port's config and the operations port's."""
    app = create_app(settings)
    api = serving.server_config(
        app, settings, host=settings.host, port=settings.port, lifespan="on"
    )
    operations = serving.operations_config(
        create_operations_app(app), settings, port=settings.metrics_port
    )
    return api, operations


async def run_server(settings: AdminSettings | None = None) -> None:
    """Run the admin plane and its operations port until cancelled."""
    api, operations = _configs(settings or AdminSettings())
    await serving.serve_until_cancelled(api, beside=[operations])


def serve(settings: AdminSettings | None = None) -> None:
    asyncio.run(until_signalled(run_server(settings)))
