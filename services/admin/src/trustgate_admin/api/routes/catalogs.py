from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from trustgate_admin.api.deps import ContainerDep

router = APIRouter(prefix="/v1", tags=["catalogs"])


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
