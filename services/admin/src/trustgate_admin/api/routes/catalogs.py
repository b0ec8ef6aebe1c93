from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from trustgate_admin.api.deps import ContainerDep
from trustgate_admin.api.errors import answers
from trustgate_admin.api.routing import AdminRoute

router = APIRouter(
    prefix="/v1", tags=["catalogs"], route_class=AdminRoute, responses=answers(401, 422)
)


@router.get("/providers-catalog")
async def providers_catalog(c: ContainerDep) -> dict[str, Any]:
    return {"items": c.catalog.providers()}


@router.get("/models-catalog")
async def models_catalog(c: ContainerDep, provider: str | None = None) -> dict[str, Any]:
    return {"items": c.catalog.models(provider)}


@router.get("/policies-catalog")
async def policies_catalog(c: ContainerDep) -> dict[str, Any]:
    return c.catalog.policies()


@router.get("/mcp-servers-catalog")
async def mcp_servers_catalog(c: ContainerDep) -> dict[str, Any]:
    return {"mcp_servers": c.catalog.mcp_servers()}
