"""Gateway use cases.

A gateway's ``telemetry`` holds its exporters' ``headers`` (an OTLP collector's token):
sealed in the row and on the bus, masked in answers, kept when an update sends the mask."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.listing import ListQuery
from trustgate_admin.domain.schemas import GatewayIn, GatewayUpdate
from trustgate_admin.services import wire
from trustgate_admin.services.common import get_gateway, page
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.crypto import SecretBox, find_masked, merge_masked
from trustgate_core.errors import AlreadyExists, Forbidden, HasDependents, ValidationFailed
from trustgate_core.ids import gateway_slug, uuid7
from trustgate_core.models import Gateway
from trustgate_core.models.base import EntityKind
from trustgate_core.telemetry import validate_telemetry

CHILD_TABLES = (t.RegistryRow, t.ConsumerRow, t.AuthRow, t.PolicyRow, t.RoleRow)


async def _check_unique(
    session: AsyncSession, slug: str | None, domain: str | None, own: UUID | None
) -> None:
    if slug:
        row = (await session.exec(select(t.GatewayRow).where(t.GatewayRow.slug == slug))).first()
        if row and row.id != own:
            raise AlreadyExists(f"a gateway with slug '{slug}' already exists")
    if domain:
        row = (
            await session.exec(select(t.GatewayRow).where(t.GatewayRow.domain == domain))
        ).first()
        if row and row.id != own:
            raise AlreadyExists(f"a gateway with domain '{domain}' already exists")


def _sealed_telemetry(box: SecretBox, telemetry: dict[str, Any] | None) -> dict[str, Any] | None:
    """The telemetry settings checked (422 naming the field, e.g. ``telemetry.exporters[0]
    .settings.protocol``) and their secrets sealed; a mask left in them is refused."""
    masked = find_masked(telemetry)
    if masked:
        raise ValidationFailed(f"telemetry.{masked}: a masked value cannot be stored")
    validate_telemetry(telemetry)
    sealed: dict[str, Any] | None = box.seal_fields(telemetry)
    return sealed


def _owned_by(body: GatewayIn, tenant: str | None) -> GatewayIn:
    """The body with its tenant: a tenant's token creates gateways for its tenant only
    (naming another is a 422); a platform token names any."""
    if tenant is None:
        return body
    if body.tenant_id is not None and body.tenant_id != tenant:
        raise ValidationFailed("tenant_id: a tenant's token creates gateways for its tenant only")
    if "entitlements" in body.model_fields_set:  # a tenant must not lift its own plan
        raise Forbidden("entitlements are set by the platform, not by a tenant")
    return body.model_copy(update={"tenant_id": tenant})


async def create(uow: UnitOfWork, body: GatewayIn, tenant: str | None = None) -> Gateway:
    body = _owned_by(body, tenant)
    telemetry = _sealed_telemetry(uow.box, body.telemetry)
    async with uow:
        slug = body.slug or gateway_slug()
        await _check_unique(uow.session, slug, body.domain, None)
        ts = now()
        row = t.GatewayRow(
            id=uuid7(),
            slug=slug,
            name=body.name,
            domain=body.domain,
            tenant_id=body.tenant_id,
            metadata_=body.metadata or {},
            telemetry=telemetry,
            client_tls=body.client_tls,
            session_config=body.session_config,
            entitlements=body.entitlements,
            governance=body.governance.model_dump(exclude_none=True) if body.governance else None,
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        entity = await uow.publish(EntityKind.gateway, row, lambda: wire.gateway(row), touch=False)
        await uow.commit()
        return entity


async def get(uow: UnitOfWork, gateway_id: UUID) -> Gateway:
    async with uow:
        return wire.gateway(await get_gateway(uow.session, gateway_id))


async def list_(
    uow: UnitOfWork, q: ListQuery, tenant: str | None = None
) -> tuple[list[Gateway], int]:
    """The gateways (of ``tenant`` only, when given)."""
    async with uow:
        stmt: Any = select(t.GatewayRow)
        if tenant is not None:
            stmt = stmt.where(t.GatewayRow.tenant_id == tenant)
        if "slug" in q.filters:
            stmt = stmt.where(t.GatewayRow.slug == q.filters["slug"])
        rows, total = await page(uow.session, stmt, q, t.GatewayRow)
        return [wire.gateway(r) for r in rows], total


async def update(
    uow: UnitOfWork, gateway_id: UUID, body: GatewayUpdate, tenant: str | None = None
) -> Gateway:
    if tenant is not None and (
        "tenant_id" in body.model_fields_set or "entitlements" in body.model_fields_set
    ):
        _owned_by(body, tenant)  # a tenant's token cannot hand its gateway to another
    async with uow:
        row = await get_gateway(uow.session, gateway_id)
        await _check_unique(uow.session, body.slug, body.domain, row.id)
        fields = body.model_dump(exclude_unset=True)
        if "telemetry" in fields:
            stored = uow.box.open_fields(row.telemetry)
            fields["telemetry"] = _sealed_telemetry(
                uow.box, merge_masked(fields["telemetry"], stored)
            )
        if "governance" in fields:  # the key version is the rotation's, not the body's
            given = {k: v for k, v in (fields["governance"] or {}).items() if v is not None}
            fields["governance"] = {**(row.governance or {}), **given}
        for key, value in fields.items():
            setattr(row, "metadata_" if key == "metadata" else key, value)
        entity = await uow.publish(EntityKind.gateway, row, lambda: wire.gateway(row))
        await uow.commit()
        return entity


async def delete(uow: UnitOfWork, gateway_id: UUID) -> None:
    async with uow:
        row = await get_gateway(uow.session, gateway_id)
        for table in CHILD_TABLES:
            child = (
                await uow.session.exec(
                    select(table.id).where(table.gateway_id == gateway_id).limit(1)
                )
            ).first()  # type: ignore[attr-defined]
            if child is not None:
                raise HasDependents(
                    f"the gateway still has {table.__tablename__}; delete them first"
                )
        await uow.tombstone(EntityKind.gateway, row.id, row.id)
        await uow.session.delete(row)
        await uow.commit()
