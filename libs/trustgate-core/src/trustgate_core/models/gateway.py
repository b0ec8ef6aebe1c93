from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from trustgate_core.models.base import Entity


class GatewayGovernance(BaseModel):
    """What a gateway records for governance (docs/governance.md): ``receipts`` signs each
    request event's usage record with the gateway's Ed25519 key of version
    ``receipt_key_version`` (raised by a key rotation, never set by a client);
    ``audit_requests`` appends every request's metadata to the hash-chained audit log."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    receipts: bool = False
    receipt_key_version: int = 1
    audit_requests: bool = False


class Gateway(Entity):
    """The top-level tenant, addressed by its slug. ``gateway_id`` equals ``id``.

    ``telemetry`` carries its exporters' ``headers`` sealed (see ``crypto``)."""

    slug: str
    name: str | None = None
    status: Literal["active", "disabled"] = "active"
    domain: str | None = None
    tenant_id: str | None = None
    metadata: dict[str, Any] = {}
    telemetry: dict[str, Any] | None = None
    client_tls: dict[str, Any] | None = None
    session_config: dict[str, Any] | None = None
    entitlements: dict[str, Any] | None = None
    governance: GatewayGovernance = GatewayGovernance()

    @property
    def active(self) -> bool:
        return self.status == "active"
