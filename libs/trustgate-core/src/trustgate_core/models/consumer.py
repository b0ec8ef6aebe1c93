from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from trustgate_core.models.base import Entity
from trustgate_core.models.routing import Fallback, LbConfig


class ModelPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    registry_id: UUID
    allowed: list[str] | None = None
    default: str | None = None


class RegistryBinding(BaseModel):
    """A consumer's link to a registry, in routing order."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    registry_id: UUID
    weight: int = 1


class Consumer(Entity):
    """The calling application: routing, credentials and policies, addressed by slug."""

    name: str
    slug: str
    type: Literal["LLM", "MCP", "A2A"] = "LLM"
    routing_mode: Literal["inline", "role_based"] = "inline"
    active: bool = True
    registries: list[RegistryBinding] = []
    model_policies: list[ModelPolicy] = []
    lb_config: LbConfig | None = None
    fallback: Fallback | None = None
    headers: dict[str, str] = {}
    auth_ids: list[UUID] = []
    role_ids: list[UUID] = []
    policy_ids: list[UUID] = []
    toolkit: list[dict[str, Any]] | None = None
    fail_mode: Literal["open", "closed"] | None = None
    # MCP consumers: every tool is named ``{server}_{tool}`` (stable when a server is
    # added), not only those whose names collide
    always_prefix: bool = False
    # labels for reports (the usage API's chargeback CSV: ``department``, ``cost_center``)
    metadata: dict[str, Any] = {}
