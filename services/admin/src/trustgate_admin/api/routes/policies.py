from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import PolicyIn
from trustgate_admin.services import policies

router = APIRouter(prefix="/v1/gateways/{gateway_id}/policies", tags=["policies"])


@router.post("", status_code=201)
async def create_policy(gateway_id: UUID, body: PolicyIn, c: ContainerDep) -> dict[str, Any]:
    return render.policy(*await policies.create(c.uow(), gateway_id, body), c.box)


@router.get("")
async def list_policies(gateway_id: UUID, request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(
        request.query_params,
        sortable=("name", "created_at", "updated_at", "type", "priority"),
        filters=("enabled", "global", "mode", "category", "type"),
    )
    items, total = await policies.list_(c.uow(), gateway_id, q)
    return envelope([render.policy(p, ids, c.box) for p, ids in items], q, total)


@router.get("/{policy_id}")
async def get_policy(gateway_id: UUID, policy_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.policy(*await policies.get(c.uow(), gateway_id, policy_id), c.box)


@router.put("/{policy_id}")
async def update_policy(
    gateway_id: UUID, policy_id: UUID, body: PolicyIn, c: ContainerDep
) -> dict[str, Any]:
    return render.policy(*await policies.update(c.uow(), gateway_id, policy_id, body), c.box)


@router.delete("/{policy_id}", status_code=204)
async def delete_policy(gateway_id: UUID, policy_id: UUID, c: ContainerDep) -> Response:
    await policies.delete(c.uow(), gateway_id, policy_id)
    return Response(status_code=204)


@router.post("/{policy_id}/global")
async def make_global(gateway_id: UUID, policy_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.policy(*await policies.set_global(c.uow(), gateway_id, policy_id, True), c.box)


@router.delete("/{policy_id}/global")
async def unmake_global(gateway_id: UUID, policy_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.policy(*await policies.set_global(c.uow(), gateway_id, policy_id, False), c.box)


@router.post("/{policy_id}/duplicate", status_code=201)
async def duplicate_policy(gateway_id: UUID, policy_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.policy(*await policies.duplicate(c.uow(), gateway_id, policy_id), c.box)
