from __future__ import annotations

from typing import Any, Literal

from trustgate_core.models.base import Entity
from trustgate_core.models.routing import HealthChecks


class Registry(Entity):
    """An upstream: an LLM provider endpoint or an MCP server.

    ``auth``, ``mcp_target`` and ``provider_options`` carry their secret fields sealed
    (``headers`` values, fields named like a secret: see ``crypto``); a reader holding the
    secrets key opens them with ``SecretBox.open_fields``.
    """

    name: str
    type: Literal["LLM", "MCP"] = "LLM"
    enabled: bool = True
    description: str | None = None
    provider: str | None = None
    provider_options: dict[str, Any] = {}
    auth: dict[str, Any] | None = None
    health_checks: HealthChecks | None = None
    mcp_target: dict[str, Any] | None = None
