"""``DELETE /v1/gateways/{gateway_id}/policies/{policy_id}/cache``: drop a
``semantic_cache`` policy's entries on every policy-cache replica (202: applied
asynchronously by each replica)."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response

from trustgate_admin.api.deps import ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.services import cache_purge

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/policies",
    tags=["policies"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)


@router.delete("/{policy_id}/cache", status_code=202)
async def purge_policy_cache(
    gateway_id: UUID, policy_id: UUID, uow: UowDep, c: ContainerDep
) -> Response:
    await cache_purge.purge(uow, c.nc, gateway_id, policy_id)
    return Response(status_code=202)
