"""Alert webhook delivery (stub: issue 17 fills it in)."""

from __future__ import annotations

from trustgate_admin.governance.ports import GovernanceDeps


class DeliveryWorker:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
