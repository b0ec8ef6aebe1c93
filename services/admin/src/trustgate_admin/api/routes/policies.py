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
from trustgate_admin.domain.schemas import PolicyCreate, PolicyIn
from trustgate_admin.services import policies

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/policies",
    tags=["policies"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing(
    sortable=("name", "created_at", "updated_at", "type", "priority"),
    filters=("enabled", "global", "mode", "category", "type"),
)


@router.post("", **returns(Resource, 201))
async def create_policy(
    gateway_id: UUID, body: PolicyCreate, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.create(uow, gateway_id, body), c.box)


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_policies(
    gateway_id: UUID, request: Request, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await policies.list_(uow, gateway_id, q)
    return envelope([render.policy(p, ids, c.box) for p, ids in items], q, total)


@router.get("/{policy_id}", **returns(Resource))
async def get_policy(
    gateway_id: UUID, policy_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.get(uow, gateway_id, policy_id), c.box)


@router.put("/{policy_id}", **returns(Resource))
async def update_policy(
    gateway_id: UUID, policy_id: UUID, body: PolicyIn, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.update(uow, gateway_id, policy_id, body), c.box)


@router.delete("/{policy_id}", status_code=204)
async def delete_policy(gateway_id: UUID, policy_id: UUID, uow: UowDep) -> Response:
    await policies.delete(uow, gateway_id, policy_id)
    return Response(status_code=204)


@router.post("/{policy_id}/global", **returns(Resource))
async def make_global(
    gateway_id: UUID, policy_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.set_global(uow, gateway_id, policy_id, True), c.box)


@router.delete("/{policy_id}/global", **returns(Resource))
async def unmake_global(
    gateway_id: UUID, policy_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.set_global(uow, gateway_id, policy_id, False), c.box)


@router.post("/{policy_id}/duplicate", **returns(Resource, 201))
async def duplicate_policy(
    gateway_id: UUID, policy_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.duplicate(uow, gateway_id, policy_id), c.box)
