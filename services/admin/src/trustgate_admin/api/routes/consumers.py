from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.paging import envelope, parse_list_query
from trustgate_admin.domain.schemas import ConsumerIn, WeightIn
from trustgate_admin.services import consumers

router = APIRouter(prefix="/v1/gateways/{gateway_id}/consumers", tags=["consumers"])
NO_CONTENT = Response(status_code=204)


@router.post("", status_code=201)
async def create_consumer(gateway_id: UUID, body: ConsumerIn, c: ContainerDep) -> dict[str, Any]:
    return render.consumer(await consumers.create(c.uow(), gateway_id, body))


@router.get("")
async def list_consumers(gateway_id: UUID, request: Request, c: ContainerDep) -> dict[str, Any]:
    q = parse_list_query(
        request.query_params,
        sortable=("name", "created_at", "updated_at", "type"),
        filters=("type", "active", "auth_id"),
    )
    items, total = await consumers.list_(c.uow(), gateway_id, q)
    return envelope([render.consumer(x) for x in items], q, total)


@router.get("/{consumer_id}")
async def get_consumer(gateway_id: UUID, consumer_id: UUID, c: ContainerDep) -> dict[str, Any]:
    return render.consumer(await consumers.get(c.uow(), gateway_id, consumer_id))


@router.put("/{consumer_id}")
async def update_consumer(
    gateway_id: UUID, consumer_id: UUID, body: ConsumerIn, c: ContainerDep
) -> dict[str, Any]:
    return render.consumer(await consumers.update(c.uow(), gateway_id, consumer_id, body))


@router.delete("/{consumer_id}", status_code=204)
async def delete_consumer(gateway_id: UUID, consumer_id: UUID, c: ContainerDep) -> Response:
    await consumers.delete(c.uow(), gateway_id, consumer_id)
    return Response(status_code=204)


@router.post("/{consumer_id}/registries/{registry_id}", status_code=204)
async def attach_registry(
    gateway_id: UUID,
    consumer_id: UUID,
    registry_id: UUID,
    c: ContainerDep,
    body: WeightIn | None = None,
) -> Response:
    weight = body.weight if body is not None else None
    await consumers.attach_registry(c.uow(), gateway_id, consumer_id, registry_id, weight)
    return Response(status_code=204)


@router.delete("/{consumer_id}/registries/{registry_id}", status_code=204)
async def detach_registry(
    gateway_id: UUID, consumer_id: UUID, registry_id: UUID, c: ContainerDep
) -> Response:
    await consumers.detach(c.uow(), gateway_id, consumer_id, "registry", registry_id)
    return Response(status_code=204)


def _link_routes(kind: str, segment: str) -> None:
    async def attach(
        gateway_id: UUID, consumer_id: UUID, target_id: UUID, c: ContainerDep
    ) -> Response:
        await consumers.attach(c.uow(), gateway_id, consumer_id, kind, target_id)
        return Response(status_code=204)

    async def detach(
        gateway_id: UUID, consumer_id: UUID, target_id: UUID, c: ContainerDep
    ) -> Response:
        await consumers.detach(c.uow(), gateway_id, consumer_id, kind, target_id)
        return Response(status_code=204)

    path = f"/{{consumer_id}}/{segment}/{{target_id}}"
    router.add_api_route(path, attach, methods=["POST"], status_code=204, name=f"attach_{kind}")
    router.add_api_route(path, detach, methods=["DELETE"], status_code=204, name=f"detach_{kind}")


for _kind, _segment in (("auth", "auths"), ("role", "roles"), ("policy", "policies")):
    _link_routes(_kind, _segment)
