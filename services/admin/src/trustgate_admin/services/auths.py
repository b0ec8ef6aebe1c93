"""Auth use cases: an API key is returned in clear exactly once; only its hash is kept."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.credentials import normalize_auth_config
from trustgate_admin.domain.listing import ListQuery, bool_filter
from trustgate_admin.domain.schemas import AuthIn
from trustgate_admin.services import wire
from trustgate_admin.services.common import get_child, get_gateway, page
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.crypto import find_masked, merge_masked
from trustgate_core.errors import Conflict, HasDependents, ValidationFailed
from trustgate_core.ids import hash_api_key, key_preview, new_api_key, uuid7
from trustgate_core.models import Auth
from trustgate_core.models.base import EntityKind


async def create(uow: UnitOfWork, gateway_id: UUID, body: AuthIn) -> tuple[Auth, str | None]:
    if not body.name:
        raise ValidationFailed("name: is required")
    if not body.type:
        raise ValidationFailed("type: is required (api_key, oauth2, oidc or mtls)")
    if find_masked(body.config):
        raise ValidationFailed("config: a masked value cannot be stored")
    config = normalize_auth_config(body.type, body.config)
    key: str | None = None
    async with uow:
        await get_gateway(uow.session, gateway_id)
        ts = now()
        row = t.AuthRow(
            id=uuid7(),
            gateway_id=gateway_id,
            name=body.name,
            type=body.type,
            enabled=True if body.enabled is None else body.enabled,
            config=uow.box.seal_fields(config),
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        if body.type == "api_key":
            key = new_api_key()
            row.key_hash = hash_api_key(key)
            row.key_prefix, row.key_suffix = key_preview(key)
        entity = await uow.publish(EntityKind.auth, row, lambda: wire.auth(row), touch=False)
        await uow.commit()
        return entity, key


async def get(uow: UnitOfWork, gateway_id: UUID, auth_id: UUID) -> Auth:
    async with uow:
        return wire.auth(await get_child(uow.session, t.AuthRow, gateway_id, auth_id))


async def list_(uow: UnitOfWork, gateway_id: UUID, q: ListQuery) -> tuple[list[Auth], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(t.AuthRow).where(t.AuthRow.gateway_id == gateway_id)
        if "type" in q.filters:
            stmt = stmt.where(t.AuthRow.type == q.filters["type"])
        if "enabled" in q.filters:
            stmt = stmt.where(t.AuthRow.enabled == bool_filter("enabled", q.filters["enabled"]))
        rows, total = await page(uow.session, stmt, q, t.AuthRow)
        return [wire.auth(r) for r in rows], total


async def update(uow: UnitOfWork, gateway_id: UUID, auth_id: UUID, body: AuthIn) -> Auth:
    changes = body.model_dump(exclude_unset=True, mode="json")
    async with uow:
        row = await get_child(uow.session, t.AuthRow, gateway_id, auth_id, lock=True)
        if "type" in changes and changes["type"] != row.type:
            raise Conflict("the type of an auth cannot be changed; create a new auth")
        if "config" in changes:
            merged = merge_masked(changes["config"], uow.box.open_fields(row.config))
            if find_masked(merged):
                raise ValidationFailed("config: a masked value cannot be stored")
            row.config = uow.box.seal_fields(normalize_auth_config(row.type, merged))
        for key in ("name", "enabled"):
            if key in changes:
                setattr(row, key, changes[key])
        entity = await uow.publish(EntityKind.auth, row, lambda: wire.auth(row))
        await uow.commit()
        return entity


async def delete(uow: UnitOfWork, gateway_id: UUID, auth_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, t.AuthRow, gateway_id, auth_id, lock=True)
        linked = (
            await uow.session.exec(
                select(t.ConsumerAuthLink.consumer_id).where(t.ConsumerAuthLink.auth_id == auth_id)
            )
        ).first()
        if linked is not None:
            raise HasDependents("the auth is attached to a consumer; detach it first")
        await uow.session.delete(row)
        await uow.tombstone(EntityKind.auth, gateway_id, auth_id)
        await uow.commit()
