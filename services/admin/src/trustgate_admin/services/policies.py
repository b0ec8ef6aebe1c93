"""Policy use cases: plugin instances, attached per consumer or global."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import col, select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.catalog import check_attachable, check_enforced
from trustgate_admin.domain.listing import ListQuery, bool_filter
from trustgate_admin.domain.schemas import PolicyIn
from trustgate_admin.services import wire
from trustgate_admin.services.common import ensure_unique_name, get_child, get_gateway, page
from trustgate_admin.services.consumers import reemit_consumers
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.crypto import find_masked, merge_masked
from trustgate_core.errors import ValidationFailed
from trustgate_core.ids import uuid7
from trustgate_core.models import Policy
from trustgate_core.models.base import EntityKind
from trustgate_core.plugins import ValidatedPolicy, validate_policy


def _enforced(checked: ValidatedPolicy) -> ValidatedPolicy:
    """A policy no plane (LLM or MCP) enforces is refused, not stored and ignored."""
    check_enforced(checked.plugin)
    return checked


async def _planes_of(uow: UnitOfWork, consumer_ids: list[UUID]) -> set[str]:
    """The planes (consumer types) of these consumers."""
    if not consumer_ids:
        return set()
    stmt = select(t.ConsumerRow.type).where(col(t.ConsumerRow.id).in_(consumer_ids))
    return set((await uow.session.exec(stmt)).all())


async def consumer_ids(uow: UnitOfWork, policy_id: UUID) -> list[UUID]:
    return (await consumers_of(uow, [policy_id])).get(policy_id, [])


async def consumers_of(uow: UnitOfWork, policy_ids: list[UUID]) -> dict[UUID, list[UUID]]:
    return await wire.links_by(
        uow.session, t.ConsumerPolicyLink, "policy_id", "consumer_id", policy_ids
    )


async def _emit(uow: UnitOfWork, row: t.PolicyRow) -> Policy:
    return await uow.publish(EntityKind.policy, row, lambda: wire.policy(row))


async def create(
    uow: UnitOfWork, gateway_id: UUID, body: PolicyIn, *, copy_of: t.PolicyRow | None = None
) -> tuple[Policy, list[UUID]]:
    if not body.name:
        raise ValidationFailed("name: is required")
    if not body.slug:
        raise ValidationFailed("slug: is required (the plugin id)")
    if find_masked(body.settings):
        raise ValidationFailed("settings: a masked value cannot be stored")
    checked = _enforced(validate_policy(body.slug, body.stages, body.mode, body.settings))
    async with uow:
        await get_gateway(uow.session, gateway_id)
        await ensure_unique_name(uow.session, t.PolicyRow, gateway_id, body.name, None, "policy")
        ts = now()
        row = t.PolicyRow(
            id=uuid7(),
            gateway_id=gateway_id,
            name=body.name,
            description=body.description,
            slug=body.slug,
            enabled=True if body.enabled is None else body.enabled,
            priority=body.priority or 0,
            parallel=True if body.parallel is None else body.parallel,
            settings=uow.box.seal_fields(checked.settings) if copy_of is None else copy_of.settings,
            stages=list(checked.stages),
            mode=checked.mode,
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        uow.session.add(row)
        entity = await _emit(uow, row)
        await uow.commit()
        return entity, []


async def get(uow: UnitOfWork, gateway_id: UUID, policy_id: UUID) -> tuple[Policy, list[UUID]]:
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id)
        return wire.policy(row), await consumer_ids(uow, policy_id)


async def list_(
    uow: UnitOfWork, gateway_id: UUID, q: ListQuery
) -> tuple[list[tuple[Policy, list[UUID]]], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(t.PolicyRow).where(t.PolicyRow.gateway_id == gateway_id)
        if "enabled" in q.filters:
            stmt = stmt.where(t.PolicyRow.enabled == bool_filter("enabled", q.filters["enabled"]))
        if "global" in q.filters:
            stmt = stmt.where(t.PolicyRow.is_global == bool_filter("global", q.filters["global"]))
        if "mode" in q.filters:
            stmt = stmt.where(t.PolicyRow.mode == q.filters["mode"])
        for key in ("type", "slug"):
            if key in q.filters:
                stmt = stmt.where(t.PolicyRow.slug == q.filters[key])
        if q.sort == "type":  # a policy's type is its plugin: the slug column
            q.sort = "slug"
        rows, total = await page(uow.session, stmt, q, t.PolicyRow)
        linked = await consumers_of(uow, [r.id for r in rows])
        return [(wire.policy(r), linked.get(r.id, [])) for r in rows], total


async def update(
    uow: UnitOfWork, gateway_id: UUID, policy_id: UUID, body: PolicyIn
) -> tuple[Policy, list[UUID]]:
    changes = body.model_dump(exclude_unset=True, mode="json")
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id, lock=True)
        if "name" in changes and changes["name"] != row.name:
            await ensure_unique_name(
                uow.session, t.PolicyRow, gateway_id, changes["name"], row.id, "policy"
            )
        stored = uow.box.open_fields(row.settings or {})
        settings = merge_masked(changes["settings"], stored) if "settings" in changes else stored
        checked = _enforced(
            validate_policy(
                changes.get("slug", row.slug),
                changes.get("stages", row.stages),
                changes.get("mode", row.mode),
                settings,
            )
        )
        # still enforced on every plane it is attached to (a change could make it ignored)
        for plane in sorted(await _planes_of(uow, await consumer_ids(uow, policy_id))):
            check_attachable(
                checked.slug, list(checked.stages), checked.mode, checked.settings, plane
            )
        for key in ("name", "description", "slug", "enabled", "priority", "parallel"):
            if key in changes:
                setattr(row, key, changes[key])
        row.settings = uow.box.seal_fields(checked.settings)
        row.stages = list(checked.stages)
        row.mode = checked.mode
        entity = await _emit(uow, row)
        await uow.commit()
        return entity, await consumer_ids(uow, policy_id)


async def set_global(
    uow: UnitOfWork, gateway_id: UUID, policy_id: UUID, value: bool
) -> tuple[Policy, list[UUID]]:
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id, lock=True)
        if row.is_global == value:
            return wire.policy(row), await consumer_ids(uow, policy_id)
        row.is_global = value
        entity = await _emit(uow, row)
        ids = await consumer_ids(uow, policy_id)
        await uow.commit()
        return entity, ids


async def duplicate(
    uow: UnitOfWork, gateway_id: UUID, policy_id: UUID
) -> tuple[Policy, list[UUID]]:
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id)
        names = set(
            (
                await uow.session.exec(
                    select(t.PolicyRow.name).where(t.PolicyRow.gateway_id == gateway_id)
                )
            ).all()
        )
    name = f"{row.name} (copy)"
    n = 2
    while name in names:
        name, n = f"{row.name} (copy {n})", n + 1
    body = PolicyIn(
        name=name[:255],
        description=row.description,
        slug=row.slug,
        enabled=row.enabled,
        priority=row.priority,
        parallel=row.parallel,
        settings=uow.box.open_fields(row.settings or {}),
        stages=row.stages,
        mode=row.mode,
    )
    return await create(uow, gateway_id, body)


async def delete(uow: UnitOfWork, gateway_id: UUID, policy_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id, lock=True)
        linked = await consumer_ids(uow, policy_id)
        await uow.session.delete(row)
        await uow.session.flush()
        await uow.tombstone(EntityKind.policy, gateway_id, policy_id)
        await reemit_consumers(uow, linked)
        await uow.commit()
