from __future__ import annotations

from typing import Any
from uuid import UUID

from trustgate_core.models.base import Entity
from trustgate_core.models.consumer import ModelPolicy


class Role(Entity):
    """Routing configuration selected from identity-provider claims."""

    name: str
    model_policies: list[ModelPolicy] = []
    mcp_policies: dict[str, Any] | None = None
    oidc_mapping: dict[str, Any] | None = None
    registry_ids: list[UUID] = []
