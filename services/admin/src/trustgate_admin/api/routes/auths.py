from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import AuthIn
from trustgate_admin.services import auths

router = APIRouter(prefix="/v1/gateways/{gateway_id}/auths", tags=["auths"])


@router.post("", status_code=201)
async def create_auth(gateway_id: UUID, body: AuthIn, c: ContainerDep) -> dict[str, Any]:
    entity, key = await auths.create(c.uow(), gateway_id, body)
    return render.auth(entity, c.box, api_key=key)


@router.get("")
async def list_auths(gateway_id: UUID, request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(
        request.query_params,
        sortable=("name", "created_at", "updated_at", "type"),
        filters=("type", "enabled"),
    )
    items, total = await auths.list_(c.uow(), gateway_id, q)
    return envelope([render.auth(a, c.box) for a in items], q, total)


@router.get("/{auth_id}")
async def get_auth(gateway_id: UUID, auth_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.auth(await auths.get(c.uow(), gateway_id, auth_id), c.box)


@router.put("/{auth_id}")
async def update_auth(
    gateway_id: UUID, auth_id: UUID, body: AuthIn, c: ContainerDep
) -> dict[str, Any]:
    return render.auth(await auths.update(c.uow(), gateway_id, auth_id, body), c.box)


@router.delete("/{auth_id}", status_code=204)
async def delete_auth(gateway_id: UUID, auth_id: UUID, c: ContainerDep) -> Response:
    await auths.delete(c.uow(), gateway_id, auth_id)
    return Response(status_code=204)
