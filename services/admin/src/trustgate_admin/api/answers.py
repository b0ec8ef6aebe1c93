"""The documented shapes of successful answers: what every entity answer and every list
carries, so that the OpenAPI document (and schemathesis, which checks answers against it)
says more than "an object". The routes render plain dicts; these models only document."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Resource(BaseModel):
    """An entity: these fields and its own (additional properties)."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    created_at: datetime
    updated_at: datetime


class Page(BaseModel):
    """A page of a list."""

    items: list[Resource]
    page: int
    size: int
    total: int


class AuditEntry(BaseModel):
    """One entry of the hash-chained audit log (docs/governance-audit.md): an admin change
    (who: the token's subject; what; when; the gateway's tenant) or, ``kind`` ``request``,
    a request's metadata in ``details`` (``entity_id``: its consumer; no ``revision``).
    ``hash`` = SHA-256 of ``prev_hash`` and the entry's canonical form."""

    id: UUID
    seq: int
    occurred_at: datetime
    actor: str
    tenant_id: str | None
    gateway_id: UUID
    kind: str
    entity_id: UUID | None
    operation: str
    revision: int | None
    details: dict[str, Any] | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """A page of the audit log."""

    items: list[AuditEntry]
    page: int
    size: int
    total: int


class Tool(BaseModel):
    """An MCP tool as its server lists it."""

    model_config = ConfigDict(extra="allow")

    name: str
    title: str | None = None
    description: str | None = None
    inputSchema: dict[str, Any]  # MCP's spelling
    annotations: dict[str, Any] | None = None


class ToolList(BaseModel):
    """An MCP registry's live tool list (every page of ``tools/list``)."""

    registry_id: UUID
    tools: list[Tool]
    count: int
    latency_ms: int


class ConnectionTest(BaseModel):
    """A connection test's outcome: ``stage`` is where it stopped (``done`` when ``ok``)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    provider: str | None
    stage: str
    status_code: int | None
    latency_ms: int
    message: str


def returns(model: type[BaseModel], status: int = 200) -> dict[str, Any]:
    """Route keywords documenting ``model`` as the answer (nothing validated or filtered
    at run time: the answer is rendered as it is)."""
    return {"status_code": status, "response_model": None, "responses": {status: {"model": model}}}
