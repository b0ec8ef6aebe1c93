"""The audit event: one admin change (who, what, when, which tenant), on ``TRUSTGATE_AUDIT``;
and the audit chain's head, on ``TRUSTGATE_AUDIT_HEAD``.

The admin writes an audit event to its hash-chained audit table and, in the same
transaction, to its outbox, so an event reaches the bus even when NATS was down at the
time of the change. The head (the chain's last ``seq`` and ``hash``) is published
periodically so that a copy kept outside TrustGate can anchor the chain
(docs/governance-audit.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field

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
    # a config entity's kind (an EntityKind), or another admin-managed thing: a str
    # (``alert_rule``)
    kind: EntityKind | str = Field(union_mode="left_to_right")
    entity_id: UUID
    operation: AuditOperation
    revision: int
    # the entry's place in the audit chain (None from an admin before the chain)
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None


AUDIT_HEAD_SCHEMA_VERSION = 1


class AuditHeadEvent(BaseModel):
    """The audit chain's head when it was published: entry ``seq`` (its ``id``, written
    at ``occurred_at``) has ``hash``. Keep these pairs outside TrustGate and pass them to
    ``trustgate admin audit verify --anchor SEQ:HASH``: a chain rewritten after one of
    them no longer verifies. Its ``Nats-Msg-Id`` is the seq, so replicas publishing the
    same head store it once."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = AUDIT_HEAD_SCHEMA_VERSION
    seq: int
    hash: str
    id: UUID
    occurred_at: datetime
    published_at: datetime


def encode_audit_head(event: AuditHeadEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode_audit_head(data: bytes | str) -> AuditHeadEvent:
    return AuditHeadEvent.model_validate_json(data)


def encode_audit_event(event: AuditEvent) -> bytes:
    return orjson.dumps(event.model_dump(mode="json"))


def decode_audit_event(data: bytes | str) -> AuditEvent:
    return AuditEvent.model_validate_json(data)
