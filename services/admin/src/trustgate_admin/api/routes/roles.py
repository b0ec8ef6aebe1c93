from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.answers import Page, Resource, returns
from trustgate_admin.api.deps import UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.domain.schemas import RoleCreate, RoleIn
from trustgate_admin.services import roles

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/roles",
    tags=["roles"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing()


@router.post("", **returns(Resource, 201))
async def create_role(gateway_id: UUID, body: RoleCreate, uow: UowDep) -> dict[str, Any]:
    return render.role(await roles.create(uow, gateway_id, body))


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_roles(gateway_id: UUID, request: Request, uow: UowDep) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await roles.list_(uow, gateway_id, q)
    return envelope([render.role(r) for r in items], q, total)


@router.get("/{role_id}", **returns(Resource))
async def get_role(gateway_id: UUID, role_id: UUID, uow: UowDep) -> dict[str, Any]:
    return render.role(await roles.get(uow, gateway_id, role_id))


@router.put("/{role_id}", **returns(Resource))
async def update_role(gateway_id: UUID, role_id: UUID, body: RoleIn, uow: UowDep) -> dict[str, Any]:
    return render.role(await roles.update(uow, gateway_id, role_id, body))


@router.delete("/{role_id}", status_code=204)
async def delete_role(gateway_id: UUID, role_id: UUID, uow: UowDep) -> Response:
    await roles.delete(uow, gateway_id, role_id)
    return Response(status_code=204)


@router.post("/{role_id}/registries/{registry_id}", status_code=204)
async def attach_registry(
    gateway_id: UUID, role_id: UUID, registry_id: UUID, uow: UowDep
) -> Response:
    await roles.attach_registry(uow, gateway_id, role_id, registry_id, True)
    return Response(status_code=204)


@router.delete("/{role_id}/registries/{registry_id}", status_code=204)
async def detach_registry(
    gateway_id: UUID, role_id: UUID, registry_id: UUID, uow: UowDep
) -> Response:
    await roles.attach_registry(uow, gateway_id, role_id, registry_id, False)
    return Response(status_code=204)
