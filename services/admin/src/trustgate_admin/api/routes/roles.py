from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import RoleIn
from trustgate_admin.services import roles

router = APIRouter(prefix="/v1/gateways/{gateway_id}/roles", tags=["roles"])


@router.post("", status_code=201)
async def create_role(gateway_id: UUID, body: RoleIn, c: ContainerDep) -> dict[str, Any]:
    return render.role(await roles.create(c.uow(), gateway_id, body))


@router.get("")
async def list_roles(gateway_id: UUID, request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(request.query_params)
    items, total = await roles.list_(c.uow(), gateway_id, q)
    return envelope([render.role(r) for r in items], q, total)


@router.get("/{role_id}")
async def get_role(gateway_id: UUID, role_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.role(await roles.get(c.uow(), gateway_id, role_id))


@router.put("/{role_id}")
async def update_role(
    gateway_id: UUID, role_id: UUID, body: RoleIn, c: ContainerDep
) -> dict[str, Any]:
    return render.role(await roles.update(c.uow(), gateway_id, role_id, body))


@router.delete("/{role_id}", status_code=204)
async def delete_role(gateway_id: UUID, role_id: UUID, c: ContainerDep) -> Response:
    await roles.delete(c.uow(), gateway_id, role_id)
    return Response(status_code=204)


@router.post("/{role_id}/registries/{registry_id}", status_code=204)
async def attach_registry(
    gateway_id: UUID, role_id: UUID, registry_id: UUID, c: ContainerDep
) -> Response:
    await roles.attach_registry(c.uow(), gateway_id, role_id, registry_id, True)
    return Response(status_code=204)


@router.delete("/{role_id}/registries/{registry_id}", status_code=204)
async def detach_registry(
    gateway_id: UUID, role_id: UUID, registry_id: UUID, c: ContainerDep
) -> Response:
    await roles.attach_registry(c.uow(), gateway_id, role_id, registry_id, False)
    return Response(status_code=204)
