"""Wire models to API responses (secrets masked, derived fields added)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from trustgate_admin import __version__
from trustgate_admin.settings import AdminSettings
from trustgate_core.crypto import SecretBox, mask_fields
from trustgate_core.models import Auth, Consumer, Gateway, Policy, Registry, Role


def _base(entity: Any, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    data: dict[str, Any] = entity.model_dump(mode="json", by_alias=True)
    for key in drop:
        data.pop(key, None)
    return data


def gateway(gw: Gateway, settings: AdminSettings, box: SecretBox) -> dict[str, Any]:
    data = _base(gw, drop=("gateway_id",))
    data["telemetry"] = mask_fields(box, gw.telemetry) if gw.telemetry is not None else None
    data["version"] = __version__
    data["hosts"] = {
        "proxy": gw.domain or f"{gw.slug}.{settings.gateway_base_domain}",
        "mcp": f"{gw.slug}.{settings.mcp_base_domain}",
    }
    return data


def registry(reg: Registry, box: SecretBox) -> dict[str, Any]:
    data = _base(reg)
    data["provider_options"] = mask_fields(box, reg.provider_options)
    data["auth"] = mask_fields(box, reg.auth) if reg.auth is not None else None
    data["mcp_target"] = mask_fields(box, reg.mcp_target) if reg.mcp_target is not None else None
    return data


def consumer(c: Consumer) -> dict[str, Any]:
    data = _base(c, drop=("registries",))
    data["registry_ids"] = [str(b.registry_id) for b in c.registries]
    data["registry_weights"] = [
        {"registry_id": str(b.registry_id), "weight": b.weight} for b in c.registries
    ]
    return data


def auth(a: Auth, box: SecretBox, api_key: str | None = None) -> dict[str, Any]:
    data = _base(a, drop=("key_hash",))
    data["config"] = mask_fields(box, a.config) if a.config is not None else None
    if api_key is not None:
        data["api_key"] = api_key
    return data


def policy(p: Policy, consumer_ids: list[UUID], box: SecretBox) -> dict[str, Any]:
    data = _base(p)
    data["settings"] = mask_fields(box, p.settings)
    data["consumer_ids"] = [str(c) for c in consumer_ids]
    return data


def role(r: Role) -> dict[str, Any]:
    return _base(r)
