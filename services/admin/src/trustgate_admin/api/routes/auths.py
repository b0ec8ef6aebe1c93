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
from trustgate_admin.domain.schemas import AuthCreate, AuthIn
from trustgate_admin.services import auths

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/auths",
    tags=["auths"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing(
    sortable=("name", "created_at", "updated_at", "type"), filters=("type", "enabled")
)


@router.post("", **returns(Resource, 201))
async def create_auth(
    gateway_id: UUID, body: AuthCreate, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    entity, key = await auths.create(uow, gateway_id, body)
    return render.auth(entity, c.box, api_key=key)


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_auths(
    gateway_id: UUID, request: Request, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await auths.list_(uow, gateway_id, q)
    return envelope([render.auth(a, c.box) for a in items], q, total)


@router.get("/{auth_id}", **returns(Resource))
async def get_auth(gateway_id: UUID, auth_id: UUID, uow: UowDep, c: ContainerDep) -> dict[str, Any]:
    return render.auth(await auths.get(uow, gateway_id, auth_id), c.box)


@router.put("/{auth_id}", **returns(Resource))
async def update_auth(
    gateway_id: UUID, auth_id: UUID, body: AuthIn, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.auth(await auths.update(uow, gateway_id, auth_id, body), c.box)


@router.delete("/{auth_id}", status_code=204)
async def delete_auth(gateway_id: UUID, auth_id: UUID, uow: UowDep) -> Response:
    await auths.delete(uow, gateway_id, auth_id)
    return Response(status_code=204)
