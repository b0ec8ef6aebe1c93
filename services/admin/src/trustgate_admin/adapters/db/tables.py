"""Postgres tables (SQLModel). Separate from the wire models in trustgate_core.models."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=Column(JSONB, nullable=nullable))


def _ts() -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), nullable=False))


def _gateway_fk() -> Any:
    return Field(sa_column=Column(ForeignKey("gateways.id", ondelete="RESTRICT"), nullable=False))


class GatewayRow(SQLModel, table=True):
    __tablename__ = "gateways"

    id: UUID = Field(primary_key=True)
    slug: str = Field(unique=True, max_length=63)
    name: str | None = None
    status: str = "active"
    domain: str | None = Field(default=None, unique=True)
    tenant_id: str | None = None
    metadata_: dict[str, Any] | None = Field(default=None, sa_column=Column("metadata", JSONB))
    telemetry: dict[str, Any] | None = _json()
    client_tls: dict[str, Any] | None = _json()
    session_config: dict[str, Any] | None = _json()
    entitlements: dict[str, Any] | None = _json()
    governance: dict[str, Any] | None = _json()
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class RegistryRow(SQLModel, table=True):
    __tablename__ = "registries"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _gateway_fk()
    name: str = Field(max_length=255)
    type: str = "LLM"
    enabled: bool = True
    description: str | None = None
    provider: str | None = None
    provider_options: dict[str, Any] | None = _json()
    auth: dict[str, Any] | None = _json()
    health_checks: dict[str, Any] | None = _json()
    mcp_target: dict[str, Any] | None = _json()
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class ConsumerRow(SQLModel, table=True):
    __tablename__ = "consumers"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _gateway_fk()
    name: str = Field(max_length=255)
    slug: str = Field(unique=True, max_length=16)
    type: str = "LLM"
    routing_mode: str = "inline"
    active: bool = True
    model_policies: list[dict[str, Any]] | None = _json()
    lb_config: dict[str, Any] | None = _json()
    fallback: dict[str, Any] | None = _json()
    headers: dict[str, Any] | None = _json()
    toolkit: list[dict[str, Any]] | None = _json()
    fail_mode: str | None = None
    always_prefix: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=false())
    )
    metadata_: dict[str, Any] | None = Field(default=None, sa_column=Column("metadata", JSONB))
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class AuthRow(SQLModel, table=True):
    __tablename__ = "auths"

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _gateway_fk()
    name: str = Field(max_length=255)
    type: str
    enabled: bool = True
    key_hash: str | None = Field(default=None, unique=True)
    key_prefix: str | None = None
    key_suffix: str | None = None
    config: dict[str, Any] | None = _json()
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class PolicyRow(SQLModel, table=True):
    __tablename__ = "policies"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _gateway_fk()
    name: str = Field(max_length=255)
    description: str | None = None
    slug: str
    enabled: bool = True
    priority: int = 0
    parallel: bool = True
    settings: dict[str, Any] | None = _json()
    stages: list[str] | None = _json()
    mode: str = "enforce"
    is_global: bool = Field(default=False, sa_column_kwargs={"name": "global"})
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class RoleRow(SQLModel, table=True):
    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _gateway_fk()
    name: str = Field(max_length=255)
    model_policies: list[dict[str, Any]] | None = _json()
    mcp_policies: dict[str, Any] | None = _json()
    oidc_mapping: dict[str, Any] | None = _json()
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


def _link(target: str, ondelete: str = "CASCADE") -> Any:
    return Field(sa_column=Column(ForeignKey(f"{target}.id", ondelete=ondelete), primary_key=True))


class ConsumerRegistryLink(SQLModel, table=True):
    __tablename__ = "consumer_registries"

    consumer_id: UUID = _link("consumers")
    registry_id: UUID = _link("registries")
    weight: int = 1
    position: int = 0


class ConsumerAuthLink(SQLModel, table=True):
    __tablename__ = "consumer_auths"

    consumer_id: UUID = _link("consumers")
    auth_id: UUID = _link("auths", "RESTRICT")


class ConsumerRoleLink(SQLModel, table=True):
    __tablename__ = "consumer_roles"

    consumer_id: UUID = _link("consumers")
    role_id: UUID = _link("roles", "RESTRICT")


class ConsumerPolicyLink(SQLModel, table=True):
    __tablename__ = "consumer_policies"

    consumer_id: UUID = _link("consumers")
    policy_id: UUID = _link("policies")


class RoleRegistryLink(SQLModel, table=True):
    __tablename__ = "role_registries"

    role_id: UUID = _link("roles")
    registry_id: UUID = _link("registries", "RESTRICT")


#: The channel a commit that queued outbox rows notifies (``NOTIFY``), and the relay listens on.
OUTBOX_CHANNEL = "trustgate_outbox"


class OutboxRow(SQLModel, table=True):
    """A config event waiting to be published (``sent_at`` null) or already published."""

    __tablename__ = "outbox"
    __table_args__ = (Index("outbox_unsent", "id", postgresql_where="sent_at IS NULL"),)

    id: int | None = Field(default=None, sa_column=Column(BigInteger, primary_key=True))
    subject: str
    msg_id: str
    kind: str
    entity_id: UUID
    revision: int = Field(sa_column=Column(BigInteger, nullable=False))
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class IdempotencyRow(SQLModel, table=True):
    """The answer to an admin POST sent with an ``Idempotency-Key``, committed in the same
    transaction as what the request changed; its body is sealed (an auth's key is in it)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("idempotency_keys_created_at", "created_at"),)

    principal: str = Field(primary_key=True)
    method: str = Field(primary_key=True)
    path: str = Field(primary_key=True)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str
    status: int
    body: str
    created_at: datetime = _ts()


class AuditRow(SQLModel, table=True):
    """One entry of the hash-chained audit log: an admin change (who: the token's subject;
    what; when; the gateway's tenant) or, for a gateway with ``audit_requests``, a
    request's metadata (``kind`` ``request``: ``entity_id`` is its consumer, ``revision``
    is null, ``details`` holds the metadata). ``seq`` orders the chain (1, 2, ...);
    ``hash`` covers ``prev_hash`` and every other field (``governance.chain_hash``).
    No foreign key: the entry outlives the gateway it names."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("audit_log_tenant", "tenant_id", "occurred_at"),
        Index("audit_log_occurred_at", "occurred_at"),
        Index("audit_log_seq", "seq", unique=True),
    )

    id: UUID = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    occurred_at: datetime = _ts()
    actor: str
    tenant_id: str | None = None
    gateway_id: UUID
    kind: str
    entity_id: UUID | None = None
    operation: str
    revision: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    details: dict[str, Any] | None = _json()
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
