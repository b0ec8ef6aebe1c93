"""The hash-chained audit log (stub: issue 17 fills it in)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.settings import AdminSettings
from trustgate_core.events.requests import RequestEvent


class RequestAuditSink:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps

    async def record(self, session: AsyncSession, events: Sequence[RequestEvent]) -> None:
        return None


class HeadPublisher:
    def __init__(self, deps: GovernanceDeps) -> None:
        self.deps = deps

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


def verify_command(settings: AdminSettings, argv: list[str]) -> int:
    """``trustgate admin audit verify [options]``: 0 when the chain verifies."""
    print("audit verify: not built yet")
    return 2
