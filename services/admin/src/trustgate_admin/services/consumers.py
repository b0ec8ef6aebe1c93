"""Consumer use cases, including the association routes."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from pydantic import ValidationError
from sqlalchemy import delete as sql_delete
from sqlalchemy import func
from sqlmodel import col, select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.catalog import check_attachable
from trustgate_admin.domain.listing import ListQuery, bool_filter
from trustgate_admin.domain.schemas import ConsumerIn, Fallback, LbConfig, parse_uuid
from trustgate_admin.services import wire
from trustgate_admin.services.common import ensure_unique_name, get_child, get_gateway, page, run
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.errors import Conflict, ValidationFailed
from trustgate_core.ids import consumer_slug, uuid7
from trustgate_core.models import Consumer
from trustgate_core.models.base import EntityKind


async def reemit_consumers(uow: UnitOfWork, consumer_ids: list[UUID]) -> None:
    """Emit the current state of consumers whose associations changed."""
    for consumer_id in dict.fromkeys(consumer_ids):
        row = await uow.session.get(t.ConsumerRow, consumer_id)
        if row is None:
            continue
        await _emit(uow, row)


async def _emit(uow: UnitOfWork, row: t.ConsumerRow) -> Consumer:
    return await uow.publish(EntityKind.consumer, row, lambda: wire.consumer(uow.session, row))


async def _registries_of(
    uow: UnitOfWork, gateway_id: UUID, ids: set[UUID]
) -> dict[UUID, t.RegistryRow]:
    if not ids:
        return {}
    rows = (
        await uow.session.exec(
            select(t.RegistryRow).where(
                t.RegistryRow.gateway_id == gateway_id, col(t.RegistryRow.id).in_(ids)
            )
        )
    ).all()
    found = {r.id: r for r in rows}
    missing = ids - found.keys()
    if missing:
        raise ValidationFailed(f"registries: unknown registry {sorted(map(str, missing))[0]}")
    return found


def _referenced(spec: dict[str, Any]) -> set[UUID]:
    """The registries a consumer's routing names besides its own: the fallback chain, the
    pool's members and the semantic strategy's embeddings registry (each must exist in
    the gateway)."""
    lb = spec.get("lb_config") or {}
    named = [
        *((spec.get("fallback") or {}).get("chain") or []),
        *(m["registry_id"] for m in lb.get("members") or []),
        (lb.get("embedding_config") or {}).get("registry_id"),
    ]
    return {UUID(str(x)) for x in named if x}


def _default(model: type[LbConfig | Fallback], value: Any) -> bool:
    """``value`` (a stored or sent document) sets nothing beyond ``model``'s defaults."""
    if not value:
        return True
    try:
        return model.model_validate(value) == model()
    except ValidationError:
        return False


def _mcp_ignored(spec: dict[str, Any]) -> str | None:
    """The first LLM-only setting ``spec`` gives an MCP consumer (the MCP plane routes to
    its servers in order and reads none of them), or None. A default value (a disabled,
    empty ``lb_config`` or ``fallback``, weight 1) sets nothing."""
    if not _default(LbConfig, spec.get("lb_config")):
        return "lb_config"
    if not _default(Fallback, spec.get("fallback")):
        return "fallback"
    if spec.get("model_policies"):
        return "model_policies"
    for ref in spec.get("registries") or []:
        if ref.get("weight", 1) != 1:
            return "registries[].weight"
        if ref.get("model_policies"):
            return "registries[].model_policies"
    return None


def _check_rules(spec: dict[str, Any]) -> None:
    mode = spec.get("routing_mode") or "inline"
    registries = spec.get("registries") or []
    fallback = spec.get("fallback") or {}
    if mode == "role_based":
        if registries or spec.get("model_policies"):
            raise ValidationFailed(
                "routing_mode: role_based consumers take no registries or model_policies"
            )
        if (spec.get("lb_config") or {}).get("enabled"):
            raise ValidationFailed("lb_config: not allowed for role_based consumers")
        if fallback.get("enabled"):
            raise ValidationFailed("fallback: not allowed for role_based consumers")
    elif spec.get("roles"):
        raise ValidationFailed("roles: only role_based consumers have roles")
    is_mcp = (spec.get("type") or "LLM") == "MCP"
    if spec.get("toolkit") and not is_mcp:
        raise ValidationFailed("toolkit: only MCP consumers have a toolkit")
    if spec.get("always_prefix") and not is_mcp:
        raise ValidationFailed("always_prefix: only MCP consumers name tools")
    if is_mcp and mode == "role_based":
        raise ValidationFailed("routing_mode: role_based is not supported on the MCP plane yet")
    ignored = _mcp_ignored(spec) if is_mcp else None
    if ignored is not None:
        raise ValidationFailed(
            f"{ignored}: not supported on MCP consumers (load balancing, fallback, weights "
            "and model policies are LLM routing; the MCP plane does not read them)"
        )
    chain = {str(x) for x in fallback.get("chain") or []}
    pool = {str(r["id"]) for r in registries} | {
        str(m["registry_id"]) for m in (spec.get("lb_config") or {}).get("members") or []
    }
    if fallback.get("enabled") and chain & pool:
        raise ValidationFailed(
            "fallback.chain: a registry of the consumer's pool cannot be its own fallback "
            f"(the chain would loop back to {sorted(chain & pool)[0]})"
        )
    keys = {str(r["id"]) for r in registries} | chain
    for mp in spec.get("model_policies") or []:
        if str(mp["registry_id"]) not in keys:
            raise ValidationFailed(
                f"model_policies: registry {mp['registry_id']} is not one of the consumer's "
                "registries or fallback chain"
            )
    lb = spec.get("lb_config") or {}
    if lb.get("enabled") and spec.get("model_policies"):
        policy_keys = {str(mp["registry_id"]) for mp in spec["model_policies"]}
        for member in lb.get("members") or []:
            if str(member["registry_id"]) not in policy_keys:
                raise ValidationFailed(
                    f"lb_config.members: registry {member['registry_id']} has no model_policies entry"
                )
    toolkit = spec.get("toolkit") or []
    exposed = [e["expose_as"] for e in toolkit if e.get("expose_as")]
    if len(exposed) != len(set(exposed)):
        raise ValidationFailed("toolkit: expose_as must be unique")


def _model_policies(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = {str(m["registry_id"]): m for m in spec.get("model_policies") or []}
    for ref in spec.get("registries") or []:
        if ref.get("model_policies"):
            out.setdefault(str(ref["id"]), {"registry_id": str(ref["id"]), **ref["model_policies"]})
    return [{k: v for k, v in m.items() if v is not None} for m in out.values()]


async def _set_registries(uow: UnitOfWork, row: t.ConsumerRow, refs: list[dict[str, Any]]) -> None:
    regs = await _registries_of(uow, row.gateway_id, {UUID(str(r["id"])) for r in refs})
    for reg in regs.values():
        if reg.type != row.type:
            raise ValidationFailed(
                f"registries: registry '{reg.name}' is {reg.type}, consumer is {row.type}"
            )
    await run(
        uow.session,
        sql_delete(t.ConsumerRegistryLink).where(col(t.ConsumerRegistryLink.consumer_id) == row.id),
    )
    for position, ref in enumerate(refs):
        uow.session.add(
            t.ConsumerRegistryLink(
                consumer_id=row.id,
                registry_id=UUID(str(ref["id"])),
                weight=ref.get("weight", 1),
                position=position,
            )
        )


async def create(uow: UnitOfWork, gateway_id: UUID, body: ConsumerIn) -> Consumer:
    spec = body.model_dump(exclude_unset=True, mode="json")
    if not body.name:
        raise ValidationFailed("name: is required")
    _check_rules(spec)
    async with uow:
        await get_gateway(uow.session, gateway_id)
        await ensure_unique_name(
            uow.session, t.ConsumerRow, gateway_id, body.name, None, "consumer"
        )
        await _registries_of(uow, gateway_id, _referenced(spec))
        fallback = spec.get("fallback")
        slug = consumer_slug()
        while (
            await uow.session.exec(select(t.ConsumerRow.id).where(t.ConsumerRow.slug == slug))
        ).first():
            slug = consumer_slug()
        ts = now()
        row = t.ConsumerRow(
            id=uuid7(),
            gateway_id=gateway_id,
            name=body.name,
            slug=slug,
            type=spec.get("type", "LLM"),
            routing_mode=spec.get("routing_mode", "inline"),
            active=spec.get("active", True),
            model_policies=_model_policies(spec),
            lb_config=spec.get("lb_config"),
            fallback=fallback,
            headers=spec.get("headers") or {},
            toolkit=spec.get("toolkit"),
            fail_mode=spec.get("fail_mode") or ("open" if spec.get("type") == "MCP" else None),
            always_prefix=bool(spec.get("always_prefix")),
            metadata_=spec.get("metadata") or {},
            revision=0,
            created_at=ts,
            updated_at=ts,
        )
        uow.session.add(row)
        await uow.session.flush()
        await _set_registries(uow, row, spec.get("registries") or [])
        for role_id in spec.get("roles") or []:
            await get_child(uow.session, t.RoleRow, gateway_id, UUID(role_id))
            uow.session.add(t.ConsumerRoleLink(consumer_id=row.id, role_id=UUID(role_id)))
        entity = await _emit(uow, row)
        await uow.commit()
        return entity


async def get(uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID) -> Consumer:
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id)
        return await wire.consumer(uow.session, row)


async def list_(uow: UnitOfWork, gateway_id: UUID, q: ListQuery) -> tuple[list[Consumer], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(t.ConsumerRow).where(t.ConsumerRow.gateway_id == gateway_id)
        if "type" in q.filters:
            stmt = stmt.where(t.ConsumerRow.type == q.filters["type"].upper())
        if "active" in q.filters:
            stmt = stmt.where(t.ConsumerRow.active == bool_filter("active", q.filters["active"]))
        if "auth_id" in q.filters:
            auth_id = parse_uuid(q.filters["auth_id"])
            stmt = stmt.where(
                col(t.ConsumerRow.id).in_(
                    select(t.ConsumerAuthLink.consumer_id).where(
                        t.ConsumerAuthLink.auth_id == auth_id
                    )
                )
            )
        rows, total = await page(uow.session, stmt, q, t.ConsumerRow)
        return await wire.consumers(uow.session, rows), total


async def update(
    uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID, body: ConsumerIn
) -> Consumer:
    changes = body.model_dump(exclude_unset=True, mode="json")
    if "always_prefix" in changes:
        changes["always_prefix"] = bool(changes["always_prefix"])  # null: the default
    if "roles" in changes:
        raise ValidationFailed("roles: set on create only; use the association routes")
    if any(r.get("model_policies") for r in changes.get("registries") or []):
        raise ValidationFailed(
            "registries[].model_policies: not accepted on update; use model_policies"
        )
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id, lock=True)
        if "name" in changes and changes["name"] != row.name:
            await ensure_unique_name(
                uow.session, t.ConsumerRow, gateway_id, changes["name"], row.id, "consumer"
            )
        current = await wire.consumer(uow.session, row)
        spec: dict[str, Any] = {
            "type": row.type,
            "routing_mode": row.routing_mode,
            "registries": [
                {"id": str(b.registry_id), "weight": b.weight} for b in current.registries
            ],
            "model_policies": row.model_policies or [],
            "lb_config": row.lb_config,
            "fallback": row.fallback,
            "toolkit": row.toolkit,
            "always_prefix": row.always_prefix,
            "roles": [str(r) for r in current.role_ids] if "routing_mode" in changes else None,
            **changes,
        }
        _check_rules(spec)
        await _registries_of(uow, gateway_id, _referenced(spec))
        if "registries" in changes:
            await _set_registries(uow, row, changes["registries"])
        if changes.get("type") not in (None, row.type):
            await _check_policies_on(uow, consumer_id, changes["type"])
        for key in (
            "name",
            "type",
            "routing_mode",
            "active",
            "lb_config",
            "fallback",
            "headers",
            "toolkit",
            "fail_mode",
            "always_prefix",
        ):
            if key in changes:
                setattr(row, key, changes[key])
        if "model_policies" in changes:
            row.model_policies = _model_policies({"model_policies": changes["model_policies"]})
        if "metadata" in changes:
            row.metadata_ = changes["metadata"] or {}
        entity = await _emit(uow, row)
        await uow.commit()
        return entity


async def delete(uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id, lock=True)
        for link in (
            t.ConsumerRegistryLink,
            t.ConsumerAuthLink,
            t.ConsumerRoleLink,
            t.ConsumerPolicyLink,
        ):
            await run(uow.session, sql_delete(link).where(col(link.consumer_id) == consumer_id))
        await uow.session.delete(row)
        await uow.tombstone(EntityKind.consumer, gateway_id, consumer_id)
        await uow.commit()


def _check_policy_on(uow: UnitOfWork, policy: t.PolicyRow, plane: str) -> None:
    """A policy whose plugin the consumer's plane does not enforce would be stored and
    ignored: 422 naming the plane."""
    settings = uow.box.open_fields(policy.settings or {})
    check_attachable(policy.slug, policy.stages, policy.mode, settings, plane)


async def _check_policies_on(uow: UnitOfWork, consumer_id: UUID, plane: str) -> None:
    """The consumer's attached policies, were it moved to ``plane``."""
    attached = await uow.session.exec(
        select(t.PolicyRow)
        .join(t.ConsumerPolicyLink, col(t.ConsumerPolicyLink.policy_id) == col(t.PolicyRow.id))
        .where(col(t.ConsumerPolicyLink.consumer_id) == consumer_id)
    )
    for policy in attached.all():
        _check_policy_on(uow, policy, plane)


# -- associations ---------------------------------------------------------------------------
async def attach_registry(
    uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID, registry_id: UUID, weight: int | None
) -> None:
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id, lock=True)
        reg = await get_child(uow.session, t.RegistryRow, gateway_id, registry_id)
        if row.routing_mode == "role_based":
            raise Conflict("role_based consumers route through roles, not registries")
        if reg.type != row.type:
            raise ValidationFailed(
                f"registry type {reg.type} does not match consumer type {row.type}"
            )
        if row.type == "MCP" and weight not in (None, 1):
            raise ValidationFailed("weight: not supported on MCP consumers (LLM routing only)")
        link = await uow.session.get(t.ConsumerRegistryLink, (consumer_id, registry_id))
        if link is None:
            position = (
                await run(
                    uow.session,
                    select(func.coalesce(func.max(t.ConsumerRegistryLink.position), -1)).where(
                        t.ConsumerRegistryLink.consumer_id == consumer_id
                    ),
                )
            ).scalar_one()
            uow.session.add(
                t.ConsumerRegistryLink(
                    consumer_id=consumer_id,
                    registry_id=registry_id,
                    weight=weight or 1,
                    position=position + 1,
                )
            )
        elif weight is not None and link.weight != weight:
            link.weight = weight
            uow.session.add(link)
        else:
            return
        await _emit(uow, row)
        await uow.commit()


async def attach(
    uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID, kind: str, target_id: UUID
) -> None:
    """Attach an auth, role or policy (idempotent)."""
    table, link_table, field = _LINKS[kind]
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id, lock=True)
        target = await get_child(uow.session, table, gateway_id, target_id)
        if kind == "role" and row.routing_mode != "role_based":
            raise Conflict("only role_based consumers take roles")
        if kind == "auth":
            assert isinstance(target, t.AuthRow)
            if row.routing_mode == "role_based" and target.type not in ("oauth2", "oidc"):
                raise Conflict("a role_based consumer needs an oauth2 or oidc auth")
        if kind == "policy":
            assert isinstance(target, t.PolicyRow)
            _check_policy_on(uow, target, row.type)
        if await uow.session.get(link_table, (consumer_id, target_id)) is not None:
            return
        uow.session.add(link_table(consumer_id=consumer_id, **{field: target_id}))
        await _emit(uow, row)
        await uow.commit()


async def detach(
    uow: UnitOfWork, gateway_id: UUID, consumer_id: UUID, kind: str, target_id: UUID
) -> None:
    _, link_table, _ = _LINKS[kind]
    async with uow:
        row = await get_child(uow.session, t.ConsumerRow, gateway_id, consumer_id, lock=True)
        link = await uow.session.get(link_table, (consumer_id, target_id))
        if link is None:
            return
        await uow.session.delete(link)
        await uow.session.flush()
        await _emit(uow, row)
        await uow.commit()


_LINKS: dict[str, tuple[type[Any], type[Any], str]] = {
    "registry": (t.RegistryRow, t.ConsumerRegistryLink, "registry_id"),
    "auth": (t.AuthRow, t.ConsumerAuthLink, "auth_id"),
    "role": (t.RoleRow, t.ConsumerRoleLink, "role_id"),
    "policy": (t.PolicyRow, t.ConsumerPolicyLink, "policy_id"),
}
