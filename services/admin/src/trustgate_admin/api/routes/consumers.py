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
from trustgate_admin.domain.schemas import ConsumerCreate, ConsumerIn, WeightIn
from trustgate_admin.services import consumers

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/consumers",
    tags=["consumers"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing(
    sortable=("name", "created_at", "updated_at", "type"), filters=("type", "active", "auth_id")
)
NO_CONTENT = Response(status_code=204)


@router.post("", **returns(Resource, 201))
async def create_consumer(gateway_id: UUID, body: ConsumerCreate, uow: UowDep) -> dict[str, Any]:
    return render.consumer(await consumers.create(uow, gateway_id, body))


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_consumers(gateway_id: UUID, request: Request, uow: UowDep) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await consumers.list_(uow, gateway_id, q)
    return envelope([render.consumer(x) for x in items], q, total)


@router.get("/{consumer_id}", **returns(Resource))
async def get_consumer(gateway_id: UUID, consumer_id: UUID, uow: UowDep) -> dict[str, Any]:
    return render.consumer(await consumers.get(uow, gateway_id, consumer_id))


@router.put("/{consumer_id}", **returns(Resource))
async def update_consumer(
    gateway_id: UUID, consumer_id: UUID, body: ConsumerIn, uow: UowDep
) -> dict[str, Any]:
    return render.consumer(await consumers.update(uow, gateway_id, consumer_id, body))


@router.delete("/{consumer_id}", status_code=204)
async def delete_consumer(gateway_id: UUID, consumer_id: UUID, uow: UowDep) -> Response:
    await consumers.delete(uow, gateway_id, consumer_id)
    return Response(status_code=204)


@router.post("/{consumer_id}/registries/{registry_id}", status_code=204)
async def attach_registry(
    gateway_id: UUID,
    consumer_id: UUID,
    registry_id: UUID,
    uow: UowDep,
    body: WeightIn | None = None,
) -> Response:
    weight = body.weight if body is not None else None
    await consumers.attach_registry(uow, gateway_id, consumer_id, registry_id, weight)
    return Response(status_code=204)


@router.delete("/{consumer_id}/registries/{registry_id}", status_code=204)
async def detach_registry(
    gateway_id: UUID, consumer_id: UUID, registry_id: UUID, uow: UowDep
) -> Response:
    await consumers.detach(uow, gateway_id, consumer_id, "registry", registry_id)
    return Response(status_code=204)


def _link_routes(kind: str, segment: str) -> None:
    async def attach(gateway_id: UUID, consumer_id: UUID, target_id: UUID, uow: UowDep) -> Response:
        await consumers.attach(uow, gateway_id, consumer_id, kind, target_id)
        return Response(status_code=204)

    async def detach(gateway_id: UUID, consumer_id: UUID, target_id: UUID, uow: UowDep) -> Response:
        await consumers.detach(uow, gateway_id, consumer_id, kind, target_id)
        return Response(status_code=204)

    path = f"/{{consumer_id}}/{segment}/{{target_id}}"
    router.add_api_route(path, attach, methods=["POST"], status_code=204, name=f"attach_{kind}")
    router.add_api_route(path, detach, methods=["DELETE"], status_code=204, name=f"detach_{kind}")


for _kind, _segment in (("auth", "auths"), ("role", "roles"), ("policy", "policies")):
    _link_routes(_kind, _segment)
