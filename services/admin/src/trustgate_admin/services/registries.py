"""Registry use cases: LLM providers and MCP servers, credentials sealed at rest.

Three documents may hold secrets, ``auth``, ``mcp_target`` and ``provider_options`` (its
``headers``, any field named like a secret): each is sealed in the row and on the bus, and
an update that sends a masked value back keeps the stored secret."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.catalog import Catalog
from trustgate_admin.domain.credentials import (
    refuse_url_credentials,
    validate_mcp_target,
    validate_registry_auth,
)
from trustgate_admin.domain.listing import ListQuery, bool_filter
from trustgate_admin.domain.schemas import RegistryIn
from trustgate_admin.services import wire
from trustgate_admin.services.common import ensure_unique_name, get_child, get_gateway, page
from trustgate_admin.services.consumers import reemit_consumers
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.crypto import find_masked, merge_masked
from trustgate_core.durations import parse_duration
from trustgate_core.errors import HasDependents, ValidationFailed
from trustgate_core.ids import uuid7
from trustgate_core.models import Registry
from trustgate_core.models.base import EntityKind

SEALED = ("auth", "mcp_target", "provider_options")


def _validate(fields: dict[str, Any], catalog: Catalog) -> None:
    for key in SEALED:
        refuse_url_credentials(key, fields.get(key))
    kind = fields.get("type") or "LLM"
    if kind == "LLM":
        provider = fields.get("provider")
        if not provider:
            raise ValidationFailed("provider: is required for LLM registries")
        if provider not in catalog.provider_codes():
            raise ValidationFailed(f"provider: unknown provider '{provider}'")
        if fields.get("auth") is None:
            raise ValidationFailed("auth: is required for LLM registries")
        validate_registry_auth(fields["auth"])
        if provider == "openai_compatible" and not (fields.get("provider_options") or {}).get(
            "base_url"
        ):
            raise ValidationFailed("provider_options.base_url: is required for openai_compatible")
        if fields.get("mcp_target") is not None:
            raise ValidationFailed("mcp_target: only MCP registries have an mcp_target")
        _check_timeouts(fields.get("provider_options") or {})
    else:
        if fields.get("mcp_target") is None:
            raise ValidationFailed("mcp_target: is required for MCP registries")
        validate_mcp_target(fields["mcp_target"])


#: ``provider_options`` the proxy times a registry's calls by (connect, first byte, between
#: stream chunks, whole call): a positive duration ("30s", "250ms") or seconds.
TIMEOUT_OPTIONS = ("connect_timeout", "first_byte_timeout", "idle_timeout", "total_timeout")


def _check_timeouts(options: dict[str, Any]) -> None:
    for name in TIMEOUT_OPTIONS:
        value = options.get(name)
        if value is None:
            continue
        try:
            seconds = None if isinstance(value, bool) else parse_duration(value, bare="s")
        except (TypeError, ValueError):
            seconds = None
        if seconds is None or seconds <= 0:
            raise ValidationFailed(
                f'provider_options.{name}: must be a positive duration ("30s", "250ms") '
                "or a number of seconds"
            )


async def create(uow: UnitOfWork, catalog: Catalog, gateway_id: UUID, body: RegistryIn) -> Registry:
    fields = body.model_dump(exclude_unset=True, mode="json")
    if not body.name:
        raise ValidationFailed("name: is required")
    _refuse_masked(fields)
    fields.setdefault("type", "LLM")
    _validate(fields, catalog)
    async with uow:
        await get_gateway(uow.session, gateway_id)
        await ensure_unique_name(
            uow.session, t.RegistryRow, gateway_id, body.name, None, "registry"
        )
        ts = now()
        row = t.RegistryRow(
            id=uuid7(),
            gateway_id=gateway_id,
            name=body.name,
            type=fields["type"],
            enabled=fields.get("enabled", True),
            description=fields.get("description"),
            provider=fields.get("provider"),
            provider_options=uow.box.seal_fields(fields.get("provider_options") or {}),
            auth=uow.box.seal_fields(fields.get("auth")),
            health_checks=fields.get("health_checks"),
            mcp_target=uow.box.seal_fields(fields.get("mcp_target")),
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        entity = await uow.publish(
            EntityKind.registry, row, lambda: wire.registry(row), touch=False
        )
        await uow.commit()
        return entity


def _refuse_masked(fields: dict[str, Any]) -> None:
    """A mask is only a placeholder for a stored secret: with nothing stored, refused."""
    for key in SEALED:
        masked = find_masked(fields.get(key))
        if masked:
            raise ValidationFailed(f"{key}.{masked}: a masked value cannot be stored")


async def get(uow: UnitOfWork, gateway_id: UUID, registry_id: UUID) -> Registry:
    async with uow:
        return wire.registry(await get_child(uow.session, t.RegistryRow, gateway_id, registry_id))


async def list_(uow: UnitOfWork, gateway_id: UUID, q: ListQuery) -> tuple[list[Registry], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(t.RegistryRow).where(t.RegistryRow.gateway_id == gateway_id)
        if "type" in q.filters:
            stmt = stmt.where(t.RegistryRow.type == q.filters["type"].upper())
        if "provider" in q.filters:
            stmt = stmt.where(t.RegistryRow.provider == q.filters["provider"])
        if "enabled" in q.filters:
            stmt = stmt.where(t.RegistryRow.enabled == bool_filter("enabled", q.filters["enabled"]))
        rows, total = await page(uow.session, stmt, q, t.RegistryRow)
        return [wire.registry(r) for r in rows], total


async def update(
    uow: UnitOfWork, catalog: Catalog, gateway_id: UUID, registry_id: UUID, body: RegistryIn
) -> Registry:
    changes = body.model_dump(exclude_unset=True, mode="json")
    async with uow:
        row = await get_child(uow.session, t.RegistryRow, gateway_id, registry_id, lock=True)
        if "name" in changes and changes["name"] != row.name:
            await ensure_unique_name(
                uow.session, t.RegistryRow, gateway_id, changes["name"], row.id, "registry"
            )
        for key in SEALED:
            if key in changes:
                stored = uow.box.open_fields(getattr(row, key))
                changes[key] = merge_masked(changes[key], stored)
        _refuse_masked(changes)
        merged = {
            "type": row.type,
            "provider": row.provider,
            **{key: uow.box.open_fields(getattr(row, key)) for key in SEALED},
            **changes,
        }
        _validate(merged, catalog)
        for key, value in changes.items():
            if key in SEALED:
                value = uow.box.seal_fields(value)
            setattr(row, key, value)
        entity = await uow.publish(EntityKind.registry, row, lambda: wire.registry(row))
        await uow.commit()
        return entity


async def delete(uow: UnitOfWork, gateway_id: UUID, registry_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, t.RegistryRow, gateway_id, registry_id, lock=True)
        role = (
            await uow.session.exec(
                select(t.RoleRegistryLink.role_id).where(
                    t.RoleRegistryLink.registry_id == registry_id
                )
            )
        ).first()
        if role is not None:
            raise HasDependents("the registry is attached to a role")
        consumers = (
            await uow.session.exec(
                select(t.ConsumerRow).where(
                    t.ConsumerRow.gateway_id == gateway_id,
                    t.ConsumerRow.active == True,  # noqa: E712
                )
            )
        ).all()
        for consumer in consumers:
            chain = (consumer.fallback or {}).get("chain") or []
            if (consumer.fallback or {}).get("enabled") and str(registry_id) in chain:
                raise HasDependents(
                    f"the registry is in the fallback chain of consumer '{consumer.name}'"
                )
        linked = (
            await uow.session.exec(
                select(t.ConsumerRegistryLink.consumer_id).where(
                    t.ConsumerRegistryLink.registry_id == registry_id
                )
            )
        ).all()
        await uow.session.delete(row)
        await uow.session.flush()
        await uow.tombstone(EntityKind.registry, gateway_id, registry_id)
        await reemit_consumers(uow, list(linked))
        await uow.commit()
