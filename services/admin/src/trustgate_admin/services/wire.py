"""Rows to wire models (the state a config event carries)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlmodel import SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_core.models import (
    Auth,
    Consumer,
    Fallback,
    Gateway,
    GatewayGovernance,
    HealthChecks,
    LbConfig,
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
        governance=GatewayGovernance.model_validate(row.governance or {}),
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
        health_checks=HealthChecks.model_validate(row.health_checks) if row.health_checks else None,
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


async def roles(session: AsyncSession, rows: Sequence[t.RoleRow]) -> list[Role]:
    """Wire models of many roles, their registry links loaded in one query."""
    registry_ids = await _links(session, t.RoleRegistryLink, "role_id", "registry_id", rows)
    return [
        Role(
            id=row.id,
            gateway_id=row.gateway_id,
            name=row.name,
            model_policies=[ModelPolicy.model_validate(m) for m in row.model_policies or []],
            mcp_policies=row.mcp_policies,
            oidc_mapping=row.oidc_mapping,
            registry_ids=registry_ids.get(row.id, []),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def role(session: AsyncSession, row: t.RoleRow) -> Role:
    return (await roles(session, [row]))[0]


async def consumers(session: AsyncSession, rows: Sequence[t.ConsumerRow]) -> list[Consumer]:
    """Wire models of many consumers, each kind of link loaded in one query."""
    ids = [row.id for row in rows]
    bindings: dict[UUID, list[RegistryBinding]] = defaultdict(list)
    if ids:
        links = await session.exec(
            select(t.ConsumerRegistryLink)
            .where(col(t.ConsumerRegistryLink.consumer_id).in_(ids))
            .order_by(col(t.ConsumerRegistryLink.position))
        )
        for lk in links.all():
            bindings[lk.consumer_id].append(
                RegistryBinding(registry_id=lk.registry_id, weight=lk.weight)
            )
    auth_ids = await _links(session, t.ConsumerAuthLink, "consumer_id", "auth_id", rows)
    role_ids = await _links(session, t.ConsumerRoleLink, "consumer_id", "role_id", rows)
    policy_ids = await _links(session, t.ConsumerPolicyLink, "consumer_id", "policy_id", rows)
    return [
        Consumer(
            id=row.id,
            gateway_id=row.gateway_id,
            name=row.name,
            slug=row.slug,
            type=row.type,  # type: ignore[arg-type]
            routing_mode=row.routing_mode,  # type: ignore[arg-type]
            active=row.active,
            registries=bindings.get(row.id, []),
            model_policies=[ModelPolicy.model_validate(m) for m in row.model_policies or []],
            lb_config=LbConfig.model_validate(row.lb_config) if row.lb_config else None,
            fallback=Fallback.model_validate(row.fallback) if row.fallback else None,
            headers=row.headers or {},
            auth_ids=auth_ids.get(row.id, []),
            role_ids=role_ids.get(row.id, []),
            policy_ids=policy_ids.get(row.id, []),
            toolkit=row.toolkit,
            fail_mode=row.fail_mode,  # type: ignore[arg-type]
            always_prefix=row.always_prefix,
            metadata=row.metadata_ or {},
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


async def consumer(session: AsyncSession, row: t.ConsumerRow) -> Consumer:
    return (await consumers(session, [row]))[0]


async def links_by(
    session: AsyncSession, link: type[SQLModel], owner: str, target: str, owner_ids: list[UUID]
) -> dict[UUID, list[UUID]]:
    """``owner id -> sorted target ids`` of a link table, for many owners in one query."""
    if not owner_ids:
        return {}
    stmt = select(getattr(link, owner), getattr(link, target)).where(
        getattr(link, owner).in_(owner_ids)
    )
    out: dict[UUID, list[UUID]] = defaultdict(list)
    for owner_id, target_id in (await session.exec(stmt)).all():
        out[owner_id].append(target_id)
    return {k: sorted(v, key=str) for k, v in out.items()}


async def _links(
    session: AsyncSession, link: type[SQLModel], owner: str, target: str, rows: Sequence[Any]
) -> dict[UUID, list[UUID]]:
    return await links_by(session, link, owner, target, [row.id for row in rows])
