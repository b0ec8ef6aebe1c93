"""Reaching a registry's upstream from the admin: an MCP server's live tool list, and the
connection test an operator runs before (or after) saving a registry.

Secrets are opened here, used for the one call, and never repeated: every message that
leaves is scrubbed of the credentials it was built near."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from trustgate_admin.adapters import llm_models, mcp_client
from trustgate_admin.domain.catalog import Catalog
from trustgate_admin.domain.credentials import (
    refuse_url_credentials,
    validate_mcp_target,
    validate_registry_auth,
)
from trustgate_admin.domain.llm_probe import ProbeConfigError, Unsupported, models_request
from trustgate_admin.domain.schemas import TestConnectionIn
from trustgate_admin.domain.upstream import (
    NeedsCallerToken,
    ProbeFailed,
    UpstreamUnavailable,
    mcp_connection,
    scrub,
    secret_values,
)
from trustgate_admin.services import registries
from trustgate_admin.services.uow import UnitOfWork
from trustgate_core.crypto import SecretBox, find_masked, merge_masked
from trustgate_core.errors import UpstreamTimeout, ValidationFailed

SECRET_DOCS = ("auth", "provider_options", "mcp_target")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def live_tools(
    uow: UnitOfWork, box: SecretBox, gateway_id: UUID, registry_id: UUID, within: float
) -> dict[str, Any]:
    """The tools the MCP registry's server lists now (502 when it cannot be listed, 504
    when it does not answer within ``within`` seconds)."""
    reg = await registries.get(uow, gateway_id, registry_id)
    if reg.type != "MCP":
        raise ValidationFailed("registry: only MCP registries have tools (this one is LLM)")
    target = box.open_fields(reg.mcp_target or {})
    conn = mcp_connection(target)
    started = time.monotonic()
    try:
        listing = await mcp_client.list_tools(conn, within)
    except ProbeFailed as failed:
        message = scrub(failed.message, secret_values(target))
        if failed.timed_out:
            raise UpstreamTimeout(message) from None
        raise UpstreamUnavailable(message) from None
    return {
        "registry_id": str(registry_id),
        "tools": listing.tools,
        "count": len(listing.tools),
        "latency_ms": _ms(started),
    }


async def test_connection(
    uow: UnitOfWork,
    box: SecretBox,
    catalog: Catalog,
    gateway_id: UUID,
    body: TestConnectionIn,
    within: float,
) -> dict[str, Any]:
    """Try the registry described by ``body`` (with ``registry_id``: the stored one, the
    body's fields overriding it and its masked values keeping the stored secrets)."""
    fields = body.model_dump(exclude_unset=True, exclude={"registry_id"}, mode="json")
    kind = fields.pop("type", None) or ("MCP" if fields.get("mcp_target") else None)
    if body.registry_id is not None:
        reg = await registries.get(uow, gateway_id, body.registry_id)
        if kind is not None and kind != reg.type:
            raise ValidationFailed(f"type: the registry is {reg.type}")
        kind = reg.type
        stored = {key: box.open_fields(getattr(reg, key)) for key in SECRET_DOCS}
        for key in SECRET_DOCS:
            fields[key] = merge_masked(fields[key], stored[key]) if key in fields else stored[key]
        fields.setdefault("provider", reg.provider)
    for key in SECRET_DOCS:
        masked = find_masked(fields.get(key))
        if masked:
            raise ValidationFailed(
                f"{key}.{masked}: a masked value only stands for a stored secret (send registry_id)"
            )
        refuse_url_credentials(key, fields.get(key))
    if kind == "MCP":
        return await _test_mcp(fields, within)
    return await _test_llm(fields, catalog, within)


def _answer(
    provider: str | None,
    kind: str,
    stage: str,
    started: float,
    message: str,
    *,
    ok: bool = False,
    status_code: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "ok": ok,
        "provider": provider,
        "type": kind,
        "stage": stage,
        "status_code": status_code,
        "latency_ms": _ms(started),
        "message": message,
        **extra,
    }


async def _test_mcp(fields: dict[str, Any], within: float) -> dict[str, Any]:
    target = fields.get("mcp_target")
    if target is None:
        raise ValidationFailed("mcp_target: is required to test an MCP server")
    validate_mcp_target(target)
    started = time.monotonic()
    try:
        conn = mcp_connection(target)
    except NeedsCallerToken as exc:
        return _answer(None, "MCP", "config", started, exc.message or exc.code)
    try:
        listing = await mcp_client.list_tools(conn, within)
    except ProbeFailed as failed:
        message = scrub(failed.message, secret_values(target))
        return _answer(None, "MCP", failed.stage, started, message, status_code=failed.status_code)
    count = len(listing.tools)
    return _answer(
        None,
        "MCP",
        "done",
        started,
        f"initialized (protocol {listing.protocol_version}) and listed {count} tools",
        ok=True,
        tool_count=count,
        protocol_version=listing.protocol_version,
        server_name=listing.server_name,
    )


async def _test_llm(fields: dict[str, Any], catalog: Catalog, within: float) -> dict[str, Any]:
    provider = fields.get("provider")
    if not provider:
        raise ValidationFailed("provider: is required to test an LLM registry")
    if provider not in catalog.provider_codes():
        raise ValidationFailed(f"provider: unknown provider '{provider}'")
    if fields.get("mcp_target") is not None:
        raise ValidationFailed("mcp_target: only MCP registries have an mcp_target")
    if fields.get("auth") is not None:
        validate_registry_auth(fields["auth"])
    options = fields.get("provider_options") or {}
    started = time.monotonic()
    try:
        request = models_request(provider, options, fields.get("auth"))
    except Unsupported as exc:
        return _answer(provider, "LLM", "unsupported", started, str(exc))
    except ProbeConfigError as exc:
        return _answer(provider, "LLM", "config", started, str(exc))
    try:
        status = await llm_models.get_models(request, within)
    except ProbeFailed as failed:
        return _answer(provider, "LLM", failed.stage, started, failed.message)
    if 200 <= status < 300:
        return _answer(
            provider,
            "LLM",
            "done",
            started,
            f"the provider listed its models (HTTP {status})",
            ok=True,
            status_code=status,
        )
    stage = "authenticate" if status in (401, 403) else "list_models"
    return _answer(
        provider, "LLM", stage, started, f"the provider answered HTTP {status}", status_code=status
    )
