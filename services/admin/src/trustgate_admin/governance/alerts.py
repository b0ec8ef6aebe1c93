"""Budget alerts (stub: issue 17 fills it in)."""

from __future__ import annotations

from uuid import UUID

from trustgate_admin.governance.ports import GovernanceDeps


class AlertEngine:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps

    async def committed(self, gateway_ids: set[UUID]) -> None:
        return None

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
