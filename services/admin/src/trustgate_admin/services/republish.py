"""Re-emit the current state of every entity (a lost stream, a new cluster, an upgrade)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.adapters.db.engine import create_engine, session_factory
from trustgate_admin.adapters.db.migrate import migrate
from trustgate_admin.services import wire
from trustgate_admin.services.uow import UnitOfWork
from trustgate_admin.settings import AdminSettings
from trustgate_core.crypto import SecretBox
from trustgate_core.models.base import EntityKind

# Every kind, in an order where each event's references were announced before it.
_KINDS: list[tuple[EntityKind, type[Any], Callable[[AsyncSession, Any], Any]]] = [
    (EntityKind.gateway, t.GatewayRow, lambda _, row: wire.gateway(row)),
    (EntityKind.registry, t.RegistryRow, lambda _, row: wire.registry(row)),
    (EntityKind.auth, t.AuthRow, lambda _, row: wire.auth(row)),
    (EntityKind.policy, t.PolicyRow, lambda _, row: wire.policy(row)),
    (EntityKind.role, t.RoleRow, wire.role),
    (EntityKind.consumer, t.ConsumerRow, wire.consumer),
]


def _seal_documents(box: SecretBox, row: Any) -> None:
    """Rows written before ``provider_options`` and ``telemetry`` were sealed hold their
    secrets in clear: sealed now, in the row and in the event (sealed leaves are kept)."""
    if isinstance(row, t.RegistryRow):
        row.provider_options = box.seal_fields(row.provider_options)
    elif isinstance(row, t.GatewayRow):
        row.telemetry = box.seal_fields(row.telemetry)


async def republish(uow: UnitOfWork) -> int:
    """Queue one upsert per entity, with a fresh revision, in the outbox."""
    count = 0
    async with uow:
        s = uow.session
        for kind, table, build in _KINDS:
            for row in (await s.exec(select(table))).all():
                _seal_documents(uow.box, row)
                await uow.publish(kind, row, partial(build, s, row), touch=False)
                count += 1
        await uow.commit()
    return count


async def republish_all(settings: AdminSettings) -> int:
    engine = create_engine(settings.dsn)
    try:
        await migrate(engine)
        return await republish(
            UnitOfWork(session_factory(engine), SecretBox(settings.secrets_material))
        )
    finally:
        await engine.dispose()
