"""Who calls the admin API: what a verified admin token says (api.security)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdminIdentity:
    """``tenant_id`` None: a platform (operator) token; ``can_write`` False: read-only."""

    subject: str
    tenant_id: str | None
    platform_admin: bool
    can_write: bool
