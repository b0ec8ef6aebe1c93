"""The in-memory configuration state a replica holds, with O(1) indexes. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

from trustgate_core.events.config import AnyConfigEvent
from trustgate_core.models import Auth, Consumer, Gateway, Policy, Registry, Role
from trustgate_core.models.base import Entity, EntityKind

Listener = Callable[[AnyConfigEvent], None]


class ReplicaState:
    """Latest state of every entity, applied by revision.

    An event is applied only if its revision is newer than the one held for that entity
    (deletes leave their revision behind), so redelivery and reordering are harmless.
    """

    def __init__(self) -> None:
        self.revisions: dict[tuple[EntityKind, UUID], int] = {}
        self.gateways: dict[UUID, Gateway] = {}
        self.registries: dict[UUID, Registry] = {}
        self.consumers: dict[UUID, Consumer] = {}
        self.auths: dict[UUID, Auth] = {}
        self.policies: dict[UUID, Policy] = {}
        self.roles: dict[UUID, Role] = {}
        self._gateway_by_slug: dict[str, Gateway] = {}
        self._gateway_by_domain: dict[str, Gateway] = {}
        self._consumer_by_slug: dict[tuple[UUID, str], Consumer] = {}
        self._consumer_by_any_slug: dict[str, Consumer] = {}
        self._auth_by_hash: dict[str, Auth] = {}
        self._tables: dict[EntityKind, dict[UUID, Entity]] = {
            EntityKind.gateway: self.gateways,  # type: ignore[dict-item]
            EntityKind.registry: self.registries,  # type: ignore[dict-item]
            EntityKind.consumer: self.consumers,  # type: ignore[dict-item]
            EntityKind.auth: self.auths,  # type: ignore[dict-item]
            EntityKind.policy: self.policies,  # type: ignore[dict-item]
            EntityKind.role: self.roles,  # type: ignore[dict-item]
        }

    # -- applying ------------------------------------------------------------------
    def apply(self, event: AnyConfigEvent) -> bool:
        """Apply one event; return whether it changed the state."""
        key = (event.kind, event.entity_id)
        if event.revision <= self.revisions.get(key, 0):
            return False
        self.revisions[key] = event.revision
        table = self._tables[event.kind]
        old = table.pop(event.entity_id, None)
        if old is not None:
            self._unindex(old)
        if event.op == "upsert" and event.entity is not None:
            table[event.entity_id] = event.entity
            self._index(event.entity)
        return True

    def _index(self, entity: Entity) -> None:
        if isinstance(entity, Gateway):
            self._gateway_by_slug[entity.slug] = entity
            if entity.domain:
                self._gateway_by_domain[entity.domain.lower()] = entity
        elif isinstance(entity, Consumer):
            self._consumer_by_slug[(entity.gateway_id, entity.slug)] = entity
            self._consumer_by_any_slug[entity.slug] = entity
        elif isinstance(entity, Auth) and entity.key_hash:
            self._auth_by_hash[entity.key_hash] = entity

    def _unindex(self, entity: Entity) -> None:
        if isinstance(entity, Gateway):
            if self._gateway_by_slug.get(entity.slug) is entity:
                del self._gateway_by_slug[entity.slug]
            if entity.domain and self._gateway_by_domain.get(entity.domain.lower()) is entity:
                del self._gateway_by_domain[entity.domain.lower()]
        elif isinstance(entity, Consumer):
            k = (entity.gateway_id, entity.slug)
            if self._consumer_by_slug.get(k) is entity:
                del self._consumer_by_slug[k]
            if self._consumer_by_any_slug.get(entity.slug) is entity:
                del self._consumer_by_any_slug[entity.slug]
        elif isinstance(entity, Auth) and entity.key_hash:
            if self._auth_by_hash.get(entity.key_hash) is entity:
                del self._auth_by_hash[entity.key_hash]

    def entities(self) -> Iterator[tuple[EntityKind, Entity, int]]:
        """Every entity held, with its kind and revision (what a snapshot records)."""
        for kind, table in self._tables.items():
            for entity_id, entity in table.items():
                yield kind, entity, self.revisions[(kind, entity_id)]

    # -- lookups (O(1)) --------------------------------------------------------------
    def gateway_by_slug(self, slug: str) -> Gateway | None:
        return self._gateway_by_slug.get(slug)

    def gateway_by_host(self, host: str, base_domain: str) -> Gateway | None:
        """``{slug}.{base_domain}`` (one label, a port allowed), or a gateway's own domain."""
        name = host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()
        suffix = "." + base_domain.lower()
        if name.endswith(suffix):
            label = name[: -len(suffix)]
            if label and "." not in label:
                return self._gateway_by_slug.get(label)
        return self._gateway_by_domain.get(name)

    def consumer_by_slug(self, gateway_id: UUID, slug: str) -> Consumer | None:
        return self._consumer_by_slug.get((gateway_id, slug))

    def consumer_by_any_slug(self, slug: str) -> Consumer | None:
        """The consumer of that slug in any gateway: slugs are globally unique (the admin
        mints them), so a path alone names its gateway (the MCP plane's path-first
        scoping, and OAuth clients that send no gateway header)."""
        return self._consumer_by_any_slug.get(slug)

    def auth_by_key_hash(self, key_hash: str) -> Auth | None:
        return self._auth_by_hash.get(key_hash)
