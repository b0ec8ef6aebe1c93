from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import GatewayIn, GatewayUpdate
from trustgate_admin.services import gateways

router = APIRouter(prefix="/v1/gateways", tags=["gateways"])


@router.post("", status_code=201)
async def create_gateway(body: GatewayIn, c: ContainerDep) -> dict[str, Any]:
    return render.gateway(await gateways.create(c.uow(), body), c.settings, c.box)


@router.get("")
async def list_gateways(request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(request.query_params, filters=("slug",))
    items, total = await gateways.list_(c.uow(), q)
    return envelope([render.gateway(g, c.settings, c.box) for g in items], q, total)


@router.get("/{gateway_id}")
async def get_gateway(gateway_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.gateway(await gateways.get(c.uow(), gateway_id), c.settings, c.box)


@router.put("/{gateway_id}")
async def update_gateway(gateway_id: UUID, body: GatewayUpdate, c: ContainerDep) -> dict[str, Any]:
    return render.gateway(await gateways.update(c.uow(), gateway_id, body), c.settings, c.box)


@router.delete("/{gateway_id}", status_code=204)
async def delete_gateway(gateway_id: UUID, c: ContainerDep) -> Response:
    await gateways.delete(c.uow(), gateway_id)
    return Response(status_code=204)
