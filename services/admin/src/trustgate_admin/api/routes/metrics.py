"""``GET /metrics``: the admin's Prometheus metrics, unauthenticated, served on the
operations port only (``SERVER_ADMIN_METRICS_PORT``, on ``SERVER_METRICS_HOST``)."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from sqlalchemy import text
from starlette.responses import Response

from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.metrics import AdminMetrics

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, c: ContainerDep) -> Response:
    observed: AdminMetrics = request.app.state.metrics
    try:
        async with asyncio.timeout(2):
            async with c.engine.connect() as conn:
                pending = await conn.scalar(
                    text("SELECT count(*) FROM outbox WHERE sent_at IS NULL")
                )
        observed.outbox_pending = float(pending or 0)
    except Exception as exc:  # the database is away: the last known value stays
        log.debug("metrics: outbox count unavailable (%s)", exc)
    body, content_type = observed.render()
    return Response(body, media_type=content_type)
