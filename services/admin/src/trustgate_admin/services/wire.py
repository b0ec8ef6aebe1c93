"""Rows to wire models (the state a config event carries)."""

from __future__ import annotations

from uuid import UUID

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_core.models import (
    Auth,
    Consumer,
    Gateway,
    ModelPolicy,
    Policy,
    Registry,
    RegistryBinding,
    Role,
)


def gateway(row: t.GatewayRow) -> Gateway:
    return Gateway(
        id=row.id,
        gateway_id=row.id,
        slug=row.slug,
        name=row.name,
        status=row.status,  # type: ignore[arg-type]
        domain=row.domain,
        tenant_id=row.tenant_id,
        metadata=row.metadata_ or {},
        telemetry=row.telemetry,
        client_tls=row.client_tls,
        session_config=row.session_config,
        entitlements=row.entitlements,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def registry(row: t.RegistryRow) -> Registry:
    return Registry(
        id=row.id,
        gateway_id=row.gateway_id,
        name=row.name,
        type=row.type,  # type: ignore[arg-type]
        enabled=row.enabled,
        description=row.description,
        provider=row.provider,
        provider_options=row.provider_options or {},
        auth=row.auth,
        health_checks=row.health_checks,
        mcp_target=row.mcp_target,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def auth(row: t.AuthRow) -> Auth:
    return Auth(
        id=row.id,
        gateway_id=row.gateway_id,
        name=row.name,
        type=row.type,  # type: ignore[arg-type]
        enabled=row.enabled,
        key_hash=row.key_hash,
        key_prefix=row.key_prefix,
        key_suffix=row.key_suffix,
        config=row.config,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def policy(row: t.PolicyRow) -> Policy:
    return Policy(
        id=row.id,
        gateway_id=row.gateway_id,
        name=row.name,
        description=row.description,
        slug=row.slug,
        enabled=row.enabled,
        priority=row.priority,
        parallel=row.parallel,
        settings=row.settings or {},
        stages=row.stages or [],  # type: ignore[arg-type]
        mode=row.mode,  # type: ignore[arg-type]
        global_=row.is_global,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def role(session: AsyncSession, row: t.RoleRow) -> Role:
    registry_ids = (
        await session.exec(
            select(t.RoleRegistryLink.registry_id).where(t.RoleRegistryLink.role_id == row.id)
        )
    ).all()
    return Role(
        id=row.id,
        gateway_id=row.gateway_id,
        name=row.name,
        model_policies=[ModelPolicy.model_validate(m) for m in row.model_policies or []],
        mcp_policies=row.mcp_policies,
        oidc_mapping=row.oidc_mapping,
        registry_ids=sorted(registry_ids, key=str),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def consumer(session: AsyncSession, row: t.ConsumerRow) -> Consumer:
    links = (
        await session.exec(
            select(t.ConsumerRegistryLink)
            .where(t.ConsumerRegistryLink.consumer_id == row.id)
            .order_by(col(t.ConsumerRegistryLink.position))
        )
    ).all()
    return Consumer(
        id=row.id,
        gateway_id=row.gateway_id,
        name=row.name,
        slug=row.slug,
        type=row.type,  # type: ignore[arg-type]
        routing_mode=row.routing_mode,  # type: ignore[arg-type]
        active=row.active,
        registries=[RegistryBinding(registry_id=lk.registry_id, weight=lk.weight) for lk in links],
        model_policies=[ModelPolicy.model_validate(m) for m in row.model_policies or []],
        lb_config=row.lb_config,
        fallback=row.fallback,
        headers=row.headers or {},
        auth_ids=await _ids(session, t.ConsumerAuthLink, "auth_id", row.id),
        role_ids=await _ids(session, t.ConsumerRoleLink, "role_id", row.id),
        policy_ids=await _ids(session, t.ConsumerPolicyLink, "policy_id", row.id),
        toolkit=row.toolkit,
        fail_mode=row.fail_mode,  # type: ignore[arg-type]
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def _ids(session: AsyncSession, link: type, column: str, consumer_id: UUID) -> list[UUID]:
    stmt = select(getattr(link, column)).where(link.consumer_id == consumer_id)  # type: ignore[attr-defined]
    return sorted((await session.exec(stmt)).all(), key=str)
