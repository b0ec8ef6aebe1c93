from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class EntityKind(StrEnum):
    gateway = "gateway"
    registry = "registry"
    consumer = "consumer"
    auth = "auth"
    policy = "policy"
    role = "role"


class Entity(BaseModel):
    """Common shape: an id, its gateway, and timestamps."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: UUID
    gateway_id: UUID
    created_at: datetime
    updated_at: datetime
