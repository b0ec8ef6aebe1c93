"""Config events: the whole entity, an op, and a revision that only grows."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from trustgate_core.models import Auth, Consumer, Gateway, Policy, Registry, Role
from trustgate_core.models.base import EntityKind

CONFIG_SCHEMA_VERSION = 1


class ConfigEvent(BaseModel):
    """Envelope of every message on ``TRUSTGATE_CONFIG``.

    ``op=delete`` is a tombstone: ``entity`` is null. A replica applies an event only if
    its ``revision`` is newer than the one it holds for that entity.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: int = CONFIG_SCHEMA_VERSION
    kind: EntityKind
    op: Literal["upsert", "delete"]
    revision: int
    gateway_id: UUID
    entity_id: UUID
    occurred_at: datetime
    entity: Any = None


class GatewayEvent(ConfigEvent):
    kind: Literal[EntityKind.gateway] = EntityKind.gateway
    entity: Gateway | None = None


class RegistryEvent(ConfigEvent):
    kind: Literal[EntityKind.registry] = EntityKind.registry
    entity: Registry | None = None


class ConsumerEvent(ConfigEvent):
    kind: Literal[EntityKind.consumer] = EntityKind.consumer
    entity: Consumer | None = None


class AuthEvent(ConfigEvent):
    kind: Literal[EntityKind.auth] = EntityKind.auth
    entity: Auth | None = None


class PolicyEvent(ConfigEvent):
    kind: Literal[EntityKind.policy] = EntityKind.policy
    entity: Policy | None = None


class RoleEvent(ConfigEvent):
    kind: Literal[EntityKind.role] = EntityKind.role
    entity: Role | None = None


AnyConfigEvent = Annotated[
    GatewayEvent | RegistryEvent | ConsumerEvent | AuthEvent | PolicyEvent | RoleEvent,
    Field(discriminator="kind"),
]
EVENT_TYPES: dict[EntityKind, type[ConfigEvent]] = {
    EntityKind.gateway: GatewayEvent,
    EntityKind.registry: RegistryEvent,
    EntityKind.consumer: ConsumerEvent,
    EntityKind.auth: AuthEvent,
    EntityKind.policy: PolicyEvent,
    EntityKind.role: RoleEvent,
}
_adapter: TypeAdapter[AnyConfigEvent] = TypeAdapter(AnyConfigEvent)


def decode_config_event(data: bytes | str) -> AnyConfigEvent:
    return _adapter.validate_json(data)


def encode_event(event: BaseModel) -> bytes:
    return orjson.dumps(event.model_dump(mode="json", by_alias=True))
