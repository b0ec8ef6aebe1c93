"""Unit of work: one transaction for the entity and its outbox rows.

Every mutation takes a fresh revision from one sequence, writes its rows, and queues the
config event (whole entity state, or a tombstone) in the outbox — all in one transaction.
On commit Postgres notifies the relay, which publishes after the commit.
A unit of work acting for an admin identity (``actor``) also records each change in the
hash-chained audit log and queues its audit event, in the same transaction: the entries
are chained at commit (``governance.chain_append``), so the chain's lock is held only
for the last statements of the transaction.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar, overload
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.errors import is_unavailable
from trustgate_admin.adapters.db.tables import OUTBOX_CHANNEL, GatewayRow, OutboxRow
from trustgate_admin.domain.identity import AdminIdentity
from trustgate_admin.governance.chain_append import NewEntry, append
from trustgate_core.crypto import SecretBox
from trustgate_core.errors import AlreadyExists, Conflict, HasDependents, Unavailable
from trustgate_core.events.audit import AuditEvent, AuditOperation, encode_audit_event
from trustgate_core.events.config import EVENT_TYPES, encode_event
from trustgate_core.events.subjects import audit_subject, config_subject
from trustgate_core.ids import uuid7
from trustgate_core.models.base import Entity, EntityKind

E = TypeVar("E", bound=Entity)
#: What a use case gives a row it creates; every publish assigns one from the sequence (≥ 1).
NEW_ROW_REVISION = 0


def now() -> datetime:
    return datetime.now(UTC)


class UnitOfWork:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
        self._sessions = sessions
        self.box = box
        self._emitted = 0
        self._audited: list[NewEntry] = []
        self.actor: AdminIdentity | None = None

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self._emitted = 0
        self._audited = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc is not None:
                await self.session.rollback()
        finally:
            await self.session.close()
        if isinstance(exc, IntegrityError):
            raise translate_integrity_error(exc) from exc
        if exc is not None and is_unavailable(exc):
            raise Unavailable("the configuration database is unavailable") from exc

    async def next_revision(self) -> int:
        conn = await self.session.connection()
        result = await conn.execute(text("SELECT nextval('config_revision_seq')"))
        return int(result.scalar_one())

    def emit(
        self,
        kind: EntityKind,
        gateway_id: UUID,
        entity_id: UUID,
        revision: int,
        entity: Entity | None,
    ) -> None:
        """Queue the config event for ``entity`` (``None``: a delete tombstone)."""
        event = EVENT_TYPES[kind](
            kind=kind,
            op="upsert" if entity is not None else "delete",
            revision=revision,
            gateway_id=gateway_id,
            entity_id=entity_id,
            occurred_at=now(),
            entity=entity,
        )
        subject = config_subject(kind, gateway_id, entity_id)
        self.session.add(
            OutboxRow(
                subject=subject,
                msg_id=f"{kind.value}:{entity_id}:{revision}",
                kind=str(kind),
                entity_id=entity_id,
                revision=revision,
                payload=encode_event(event),
                created_at=now(),
            )
        )
        self._emitted += 1

    @overload
    async def publish(  # type: ignore[overload-overlap]
        self,
        kind: EntityKind,
        row: Any,
        entity_of: Callable[[], Awaitable[E]],
        *,
        touch: bool = True,
    ) -> E: ...

    @overload
    async def publish(
        self, kind: EntityKind, row: Any, entity_of: Callable[[], E], *, touch: bool = True
    ) -> E: ...

    async def publish(
        self, kind: EntityKind, row: Any, entity_of: Callable[[], Any], *, touch: bool = True
    ) -> Any:
        """Give ``row`` a fresh revision (and ``updated_at`` unless ``touch`` is false),
        flush it, and queue the config event with the state ``entity_of()`` builds."""
        operation: AuditOperation = "create" if row.revision == NEW_ROW_REVISION else "update"
        row.revision = await self.next_revision()
        if touch:
            row.updated_at = now()
        self.session.add(row)
        await self.session.flush()
        entity = entity_of()
        if inspect.isawaitable(entity):
            entity = await entity
        self.emit(kind, entity.gateway_id, entity.id, row.revision, entity)
        await self._audit(kind, entity.gateway_id, entity.id, operation, row.revision)
        return entity

    async def tombstone(self, kind: EntityKind, gateway_id: UUID, entity_id: UUID) -> None:
        """Queue the delete event of an entity (a gateway's before its row is deleted:
        its audit entry reads the gateway's tenant)."""
        revision = await self.next_revision()
        self.emit(kind, gateway_id, entity_id, revision, None)
        await self._audit(kind, gateway_id, entity_id, "delete", revision)

    async def record(
        self, kind: str, gateway_id: UUID, entity_id: UUID, operation: AuditOperation
    ) -> None:
        """Audit a change to something that is not a config entity (an alert rule): it is
        chained and published on the audit stream like every other change."""
        await self._audit(kind, gateway_id, entity_id, operation, await self.next_revision())

    async def _audit(
        self,
        kind: EntityKind | str,
        gateway_id: UUID,
        entity_id: UUID,
        operation: AuditOperation,
        revision: int,
    ) -> None:
        if self.actor is None:
            return
        gateway = await self.session.get(GatewayRow, gateway_id)
        self._audited.append(
            NewEntry(
                id=uuid7(),
                occurred_at=now(),
                actor=self.actor.subject,
                tenant_id=gateway.tenant_id if gateway is not None else self.actor.tenant_id,
                gateway_id=gateway_id,
                kind=str(kind),
                entity_id=entity_id,
                operation=operation,
                revision=revision,
            )
        )
        self._emitted += 1

    async def _chain_audited(self) -> None:
        """Append the changes' entries to the audit chain and queue their audit events
        (with their place in the chain)."""
        entries, self._audited = self._audited, []
        for row in await append(self.session, entries):
            event = AuditEvent.model_validate(row)
            self.session.add(
                OutboxRow(
                    subject=audit_subject(event.gateway_id),
                    msg_id=f"audit:{event.id}",
                    kind="audit",
                    entity_id=event.entity_id,
                    revision=event.revision,
                    payload=encode_audit_event(event),
                    created_at=event.occurred_at,
                )
            )

    async def commit(self) -> None:
        if self._audited:
            await self._chain_audited()
        if self._emitted:
            conn = await self.session.connection()
            await conn.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
        await self.session.commit()
        self._emitted = 0


def translate_integrity_error(exc: IntegrityError) -> Exception:
    sqlstate = getattr(getattr(exc.orig, "__cause__", None), "sqlstate", None) or getattr(
        exc.orig, "sqlstate", None
    )
    detail = str(exc.orig)
    if sqlstate == "23505":  # unique_violation
        return AlreadyExists(_unique_message(detail))
    if sqlstate == "23503":  # foreign_key_violation
        return HasDependents("the resource is still referenced by other resources")
    return Conflict("the change conflicts with existing data")


def _unique_message(detail: str) -> str:
    for field in ("slug", "domain", "name", "key_hash"):
        if f"({field})" in detail or f", {field})" in detail:
            return f"a resource with this {field} already exists"
    return "the resource already exists"
