"""Re-emit the current state of every entity (a lost stream, a new cluster)."""

from __future__ import annotations

from sqlmodel import select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.adapters.db.engine import create_engine, session_factory
from trustgate_admin.adapters.db.migrate import migrate
from trustgate_admin.services import wire
from trustgate_admin.services.uow import UnitOfWork
from trustgate_admin.settings import AdminSettings
from trustgate_core.crypto import SecretBox
from trustgate_core.models.base import EntityKind


async def republish(uow: UnitOfWork) -> int:
    """Queue one upsert per entity, with a fresh revision, in the outbox."""
    count = 0
    async with uow:
        s = uow.session
        for gw in (await s.exec(select(t.GatewayRow))).all():
            gw.revision = await uow.next_revision()
            uow.emit(EntityKind.gateway, gw.id, gw.id, gw.revision, wire.gateway(gw))
            count += 1
        for reg in (await s.exec(select(t.RegistryRow))).all():
            reg.revision = await uow.next_revision()
            uow.emit(EntityKind.registry, reg.gateway_id, reg.id, reg.revision, wire.registry(reg))
            count += 1
        for a in (await s.exec(select(t.AuthRow))).all():
            a.revision = await uow.next_revision()
            uow.emit(EntityKind.auth, a.gateway_id, a.id, a.revision, wire.auth(a))
            count += 1
        for p in (await s.exec(select(t.PolicyRow))).all():
            p.revision = await uow.next_revision()
            uow.emit(EntityKind.policy, p.gateway_id, p.id, p.revision, wire.policy(p))
            count += 1
        for r in (await s.exec(select(t.RoleRow))).all():
            r.revision = await uow.next_revision()
            uow.emit(EntityKind.role, r.gateway_id, r.id, r.revision, await wire.role(s, r))
            count += 1
        for c in (await s.exec(select(t.ConsumerRow))).all():
            c.revision = await uow.next_revision()
            uow.emit(EntityKind.consumer, c.gateway_id, c.id, c.revision, await wire.consumer(s, c))
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
