from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.answers import Page, Resource, returns
from trustgate_admin.api.deps import AdminDep, ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.domain.schemas import GatewayIn, GatewayUpdate
from trustgate_admin.services import gateways

router = APIRouter(
    prefix="/v1/gateways", tags=["gateways"], route_class=AdminRoute, responses=GATEWAY_ERRORS
)
LISTING = Listing(filters=("slug",))


@router.post("", **returns(Resource, 201))
async def create_gateway(
    body: GatewayIn, uow: UowDep, c: ContainerDep, who: AdminDep
) -> dict[str, Any]:
    return render.gateway(await gateways.create(uow, body, who.tenant_id), c.settings, c.box)


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_gateways(
    request: Request, uow: UowDep, c: ContainerDep, who: AdminDep
) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await gateways.list_(uow, q, who.tenant_id)
    return envelope([render.gateway(g, c.settings, c.box) for g in items], q, total)


@router.get("/{gateway_id}", **returns(Resource))
async def get_gateway(gateway_id: UUID, uow: UowDep, c: ContainerDep) -> dict[str, Any]:
    return render.gateway(await gateways.get(uow, gateway_id), c.settings, c.box)


@router.put("/{gateway_id}", **returns(Resource))
async def update_gateway(
    gateway_id: UUID, body: GatewayUpdate, uow: UowDep, c: ContainerDep, who: AdminDep
) -> dict[str, Any]:
    gateway = await gateways.update(uow, gateway_id, body, who.tenant_id)
    return render.gateway(gateway, c.settings, c.box)


@router.delete("/{gateway_id}", status_code=204)
async def delete_gateway(gateway_id: UUID, uow: UowDep) -> Response:
    await gateways.delete(uow, gateway_id)
    return Response(status_code=204)
