"""The seams between the governance parts: what the ledger hands on, and to whom."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.settings import AdminSettings
from trustgate_core.crypto import SecretBox
from trustgate_core.events.requests import RequestEvent


@dataclass(frozen=True)
class GovernanceDeps:
    """What every governance part may use: the admin's settings, database, secret box and
    NATS connection. The outbox relay connects ``nc`` and keeps it connected; a part must
    not assume it is connected when it starts (the bus may be down: retry, never fail)."""

    settings: AdminSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    nc: NATS


class LedgerSink(Protocol):
    """Sees, inside the ledger's transaction, each request event the first time it is
    counted (never a redelivery): what it writes commits or rolls back with the rollups."""

    async def record(self, session: AsyncSession, events: Sequence[RequestEvent]) -> None: ...


class AfterCommit(Protocol):
    """Told, after a ledger batch committed, which gateways' usage moved."""

    async def committed(self, gateway_ids: set[UUID]) -> None: ...


class Part(Protocol):
    """A background part: started once, stopped once."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...
