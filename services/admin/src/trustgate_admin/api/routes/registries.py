from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.answers import Page, Resource, returns
from trustgate_admin.api.deps import ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.domain.schemas import RegistryCreate, RegistryIn
from trustgate_admin.services import registries

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/registries",
    tags=["registries"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing(filters=("type", "provider", "enabled"))


@router.post("", **returns(Resource, 201))
async def create_registry(
    gateway_id: UUID, body: RegistryCreate, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    reg = await registries.create(uow, c.catalog, gateway_id, body)
    return render.registry(reg, c.box)


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_registries(
    gateway_id: UUID, request: Request, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await registries.list_(uow, gateway_id, q)
    return envelope([render.registry(r, c.box) for r in items], q, total)


@router.get("/{registry_id}", **returns(Resource))
async def get_registry(
    gateway_id: UUID, registry_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.registry(await registries.get(uow, gateway_id, registry_id), c.box)


@router.put("/{registry_id}", **returns(Resource))
async def update_registry(
    gateway_id: UUID, registry_id: UUID, body: RegistryIn, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    reg = await registries.update(uow, c.catalog, gateway_id, registry_id, body)
    return render.registry(reg, c.box)


@router.delete("/{registry_id}", status_code=204)
async def delete_registry(gateway_id: UUID, registry_id: UUID, uow: UowDep) -> Response:
    await registries.delete(uow, gateway_id, registry_id)
    return Response(status_code=204)
