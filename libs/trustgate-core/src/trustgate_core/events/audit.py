"""The audit event: one admin change (who, what, when, which tenant), on ``TRUSTGATE_AUDIT``.

The admin writes it to its audit table and, in the same transaction, to its outbox, so
an event reaches the bus even when NATS was down at the time of the change."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict

from trustgate_core.models.base import EntityKind

AUDIT_SCHEMA_VERSION = 1
AuditOperation = Literal["create", "update", "delete"]


class AuditEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = AUDIT_SCHEMA_VERSION
    id: UUID
    occurred_at: datetime
    actor: str
    tenant_id: str | None
    gateway_id: UUID
    kind: EntityKind
    entity_id: UUID
    operation: AuditOperation
    revision: int


def encode_audit_event(event: AuditEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode_audit_event(data: bytes | str) -> AuditEvent:
    return AuditEvent.model_validate_json(data)
