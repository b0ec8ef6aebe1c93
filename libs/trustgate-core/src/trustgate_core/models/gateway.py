from __future__ import annotations

from typing import Any, Literal

from trustgate_core.models.base import Entity


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

    @property
    def active(self) -> bool:
        return self.status == "active"
