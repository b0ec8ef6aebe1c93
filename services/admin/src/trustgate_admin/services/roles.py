"""Role use cases."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.listing import ListQuery
from trustgate_admin.domain.schemas import RoleIn
from trustgate_admin.services import wire
from trustgate_admin.services.common import ensure_unique_name, get_child, get_gateway, page
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.errors import HasDependents, ValidationFailed
from trustgate_core.ids import uuid7
from trustgate_core.models import Role
from trustgate_core.models.base import EntityKind


async def _emit(uow: UnitOfWork, row: t.RoleRow) -> Role:
    return await uow.publish(EntityKind.role, row, lambda: wire.role(uow.session, row))


def _refuse_mcp_policies(spec: dict[str, Any]) -> None:
    """No plane reads a role's MCP policies (role-based MCP consumers are refused too):
    stored, they would look enforced."""
    if spec.get("mcp_policies") is not None:
        raise ValidationFailed("mcp_policies: not supported yet")


async def create(uow: UnitOfWork, gateway_id: UUID, body: RoleIn) -> Role:
    if not body.name:
        raise ValidationFailed("name: is required")
    spec = body.model_dump(exclude_unset=True, mode="json")
    _refuse_mcp_policies(spec)
    async with uow:
        await get_gateway(uow.session, gateway_id)
        await ensure_unique_name(uow.session, t.RoleRow, gateway_id, body.name, None, "role")
        ts = now()
        row = t.RoleRow(
            id=uuid7(),
            gateway_id=gateway_id,
            name=body.name,
            model_policies=spec.get("model_policies") or [],
            mcp_policies=spec.get("mcp_policies"),
            oidc_mapping=spec.get("oidc_mapping"),
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        uow.session.add(row)
        entity = await _emit(uow, row)
        await uow.commit()
        return entity


async def get(uow: UnitOfWork, gateway_id: UUID, role_id: UUID) -> Role:
    async with uow:
        return await wire.role(
            uow.session, await get_child(uow.session, t.RoleRow, gateway_id, role_id)
        )


async def list_(uow: UnitOfWork, gateway_id: UUID, q: ListQuery) -> tuple[list[Role], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(t.RoleRow).where(t.RoleRow.gateway_id == gateway_id)
        rows, total = await page(uow.session, stmt, q, t.RoleRow)
        return await wire.roles(uow.session, rows), total


async def update(uow: UnitOfWork, gateway_id: UUID, role_id: UUID, body: RoleIn) -> Role:
    changes = body.model_dump(exclude_unset=True, mode="json")
    _refuse_mcp_policies(changes)
    async with uow:
        row = await get_child(uow.session, t.RoleRow, gateway_id, role_id, lock=True)
        if "name" in changes and changes["name"] != row.name:
            await ensure_unique_name(
                uow.session, t.RoleRow, gateway_id, changes["name"], row.id, "role"
            )
        for key, value in changes.items():
            setattr(row, key, value)
        entity = await _emit(uow, row)
        await uow.commit()
        return entity


async def delete(uow: UnitOfWork, gateway_id: UUID, role_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, t.RoleRow, gateway_id, role_id, lock=True)
        linked = (
            await uow.session.exec(
                select(t.ConsumerRoleLink.consumer_id).where(t.ConsumerRoleLink.role_id == role_id)
            )
        ).first()
        if linked is not None:
            raise HasDependents("the role is attached to a consumer; detach it first")
        await uow.session.delete(row)
        await uow.tombstone(EntityKind.role, gateway_id, role_id)
        await uow.commit()


async def attach_registry(
    uow: UnitOfWork, gateway_id: UUID, role_id: UUID, registry_id: UUID, attach: bool
) -> None:
    async with uow:
        row = await get_child(uow.session, t.RoleRow, gateway_id, role_id, lock=True)
        await get_child(uow.session, t.RegistryRow, gateway_id, registry_id)
        link = await uow.session.get(t.RoleRegistryLink, (role_id, registry_id))
        if attach == (link is not None):
            return
        if attach:
            uow.session.add(t.RoleRegistryLink(role_id=role_id, registry_id=registry_id))
        else:
            await uow.session.delete(link)
        await uow.session.flush()
        await _emit(uow, row)
        await uow.commit()
