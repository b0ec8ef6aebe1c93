from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import RegistryIn
from trustgate_admin.services import registries

router = APIRouter(prefix="/v1/gateways/{gateway_id}/registries", tags=["registries"])


@router.post("", status_code=201)
async def create_registry(gateway_id: UUID, body: RegistryIn, c: ContainerDep) -> dict[str, Any]:
    reg = await registries.create(c.uow(), c.catalog, gateway_id, body)
    return render.registry(reg, c.box)


@router.get("")
async def list_registries(gateway_id: UUID, request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(request.query_params, filters=("type", "provider", "enabled"))
    items, total = await registries.list_(c.uow(), gateway_id, q)
    return envelope([render.registry(r, c.box) for r in items], q, total)


@router.get("/{registry_id}")
async def get_registry(gateway_id: UUID, registry_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.registry(await registries.get(c.uow(), gateway_id, registry_id), c.box)


@router.put("/{registry_id}")
async def update_registry(
    gateway_id: UUID, registry_id: UUID, body: RegistryIn, c: ContainerDep
) -> dict[str, Any]:
    reg = await registries.update(c.uow(), c.catalog, gateway_id, registry_id, body)
    return render.registry(reg, c.box)


@router.delete("/{registry_id}", status_code=204)
async def delete_registry(gateway_id: UUID, registry_id: UUID, c: ContainerDep) -> Response:
    await registries.delete(c.uow(), gateway_id, registry_id)
    return Response(status_code=204)
