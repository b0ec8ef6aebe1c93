from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from trustgate_admin.api import render
from trustgate_admin.api.answers import ConnectionTest, Page, Resource, ToolList, returns
from trustgate_admin.api.deps import ContainerDep, UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS, answers
from trustgate_admin.api.paging import Listing, envelope
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.domain.schemas import RegistryCreate, RegistryIn, TestConnectionIn
from trustgate_admin.domain.upstream import checked_timeout
from trustgate_admin.services import registries, registry_probes

router = APIRouter(
    prefix="/v1/gateways/{gateway_id}/registries",
    tags=["registries"],
    route_class=AdminRoute,
    responses=GATEWAY_ERRORS,
)
LISTING = Listing(filters=("type", "provider", "enabled"))
#: The tool list's route: its answer, and the upstream's failures (502, 504).
TOOLS_ANSWERS = returns(ToolList)
TOOLS_ANSWERS["responses"].update(answers(502, 504))


@router.post("", **returns(Resource, 201))
async def create_registry(
    gateway_id: UUID, body: RegistryCreate, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    reg = await registries.create(uow, c.catalog, gateway_id, body)
    return render.registry(reg, c.box)


@router.get("", openapi_extra=LISTING.openapi(), **returns(Page))
async def list_registries(
    gateway_id: UUID, request: Request, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    q = LISTING.parse(request.query_params)
    items, total = await registries.list_(uow, gateway_id, q)
    return envelope([render.registry(r, c.box) for r in items], q, total)


@router.get("/{registry_id}", **returns(Resource))
async def get_registry(
    gateway_id: UUID, registry_id: UUID, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    return render.registry(await registries.get(uow, gateway_id, registry_id), c.box)


@router.put("/{registry_id}", **returns(Resource))
async def update_registry(
    gateway_id: UUID, registry_id: UUID, body: RegistryIn, uow: UowDep, c: ContainerDep
) -> dict[str, Any]:
    reg = await registries.update(uow, c.catalog, gateway_id, registry_id, body)
    return render.registry(reg, c.box)


@router.delete("/{registry_id}", status_code=204)
async def delete_registry(gateway_id: UUID, registry_id: UUID, uow: UowDep) -> Response:
    await registries.delete(uow, gateway_id, registry_id)
    return Response(status_code=204)


#: ``?timeout=``: seconds to wait for the upstream.
Timeout = Annotated[
    float | None,
    Query(alias="timeout", description="seconds to wait for the upstream (default 10, at most 60)"),
]


@router.post("/test-connection", **returns(ConnectionTest))
async def test_connection(
    gateway_id: UUID, body: TestConnectionIn, uow: UowDep, c: ContainerDep, wait: Timeout = None
) -> dict[str, Any]:
    """Try a registry's upstream: an LLM provider's models list, or an MCP server's
    initialize and tools/list. Upstream failures are answered 200 with ``ok: false`` and the
    ``stage`` reached."""
    return await registry_probes.test_connection(
        uow, c.box, c.catalog, gateway_id, body, checked_timeout(wait)
    )


@router.get("/{registry_id}/tools", **TOOLS_ANSWERS)
async def list_registry_tools(
    gateway_id: UUID, registry_id: UUID, uow: UowDep, c: ContainerDep, wait: Timeout = None
) -> dict[str, Any]:
    """The live tool list of an MCP registry's server (every page), fetched now."""
    return await registry_probes.live_tools(
        uow, c.box, gateway_id, registry_id, checked_timeout(wait)
    )
