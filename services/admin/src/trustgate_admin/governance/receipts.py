"""Receipt keys: the admin records each gateway's public receipt keys, rotates them and
publishes them as a JWKS (docs/governance-receipts.md).

The admin never stores a private key: like the proxy, it derives the gateway's key pair
from the secrets key (`trustgate_core.receipts.keys`) and writes down the public half the
first time it sees it (receipts turned on, a rotation, the admin starting, or the keys
being read), so receipts signed with it stay verifiable after a rotation or a change of
the secrets key. A rotation raises ``governance.receipt_key_version`` through the
gateway's config event (the proxies sign with the new key from then on) and marks the
previous key retired; retired keys stay listed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.adapters.db.receipt_tables import ReceiptKeyRow
from trustgate_admin.governance.ports import GovernanceDeps
from trustgate_admin.services import wire
from trustgate_admin.services.common import get_gateway, run
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.errors import Conflict, NotFound
from trustgate_core.models import GatewayGovernance
from trustgate_core.models.base import EntityKind
from trustgate_core.receipts.keys import ReceiptKey, jwk
from trustgate_core.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: How often the admin writes down keys it has not seen yet (seconds).
RECORD_INTERVAL = 60.0


def governance_of(row: t.GatewayRow) -> GatewayGovernance:
    return GatewayGovernance.model_validate(row.governance or {})


async def record_current(
    session: AsyncSession, row: t.GatewayRow, material: str
) -> ReceiptKey | None:
    """Record the key the gateway's receipts are signed with now (if receipts are on),
    retiring any other; the key, or ``None``."""
    governance = governance_of(row)
    if not governance.receipts:
        return None
    key = ReceiptKey.derive(material, row.id, governance.receipt_key_version)
    await record(session, key)
    return key


async def record(session: AsyncSession, key: ReceiptKey) -> None:
    """Write down ``key`` (once: a key already recorded keeps its row) as the gateway's
    current key; its other keys are retired."""
    stamp = now()
    await run(
        session,
        insert(ReceiptKeyRow)
        .values(
            gateway_id=key.gateway_id, kid=key.kid, version=key.version, x=key.x, created_at=stamp
        )
        .on_conflict_do_nothing(index_elements=["gateway_id", "kid"]),
    )
    await run(
        session,
        update(ReceiptKeyRow)
        .where(
            col(ReceiptKeyRow.gateway_id) == key.gateway_id,
            col(ReceiptKeyRow.kid) != key.kid,
            col(ReceiptKeyRow.retired_at).is_(None),
        )
        .values(retired_at=stamp),
    )


async def keys_of(session: AsyncSession, gateway_id: UUID) -> list[ReceiptKeyRow]:
    """The gateway's recorded keys, oldest first."""
    stmt = (
        select(ReceiptKeyRow)
        .where(ReceiptKeyRow.gateway_id == gateway_id)
        .order_by(col(ReceiptKeyRow.version), col(ReceiptKeyRow.created_at))
    )
    return list((await session.exec(stmt)).all())


async def list_keys(uow: UnitOfWork, gateway_id: UUID, material: str) -> list[ReceiptKeyRow]:
    """The gateway's keys, its current one recorded first if it was not yet (404: no such
    gateway)."""
    async with uow:
        row = await get_gateway(uow.session, gateway_id)
        await record_current(uow.session, row, material)
        keys = await keys_of(uow.session, gateway_id)
        await uow.commit()
        return keys


async def public_jwks(uow: UnitOfWork, gateway_id: UUID, material: str) -> dict[str, Any]:
    """The JWKS of every key the gateway's receipts were signed with, retired ones
    included (a deleted gateway's keys too). 404: no such gateway, or it never had
    receipts."""
    async with uow:
        row = await uow.session.get(t.GatewayRow, gateway_id)
        if row is not None:
            await record_current(uow.session, row, material)
        keys = await keys_of(uow.session, gateway_id)
        await uow.commit()
    if not keys:
        raise NotFound("no receipt keys for this gateway")
    return {"keys": [jwk(k.x) for k in keys]}


async def rotate(uow: UnitOfWork, gateway_id: UUID, material: str) -> ReceiptKeyRow:
    """A new key for the gateway's receipts: its ``receipt_key_version`` raised (the config
    event tells the proxies), the new key recorded and the previous one retired. 409 when
    the gateway's receipts are off."""
    async with uow:
        row = await uow.session.get(t.GatewayRow, gateway_id, with_for_update=True)
        if row is None:
            raise NotFound()
        governance = governance_of(row)
        if not governance.receipts:
            raise Conflict("receipts are off for this gateway: turn governance.receipts on first")
        await record_current(uow.session, row, material)  # the old key, if never recorded
        version = governance.receipt_key_version + 1
        row.governance = {**(row.governance or {}), "receipt_key_version": version}
        await uow.publish(EntityKind.gateway, row, lambda: wire.gateway(row))
        key = ReceiptKey.derive(material, gateway_id, version)
        await record(uow.session, key)
        recorded = await uow.session.get(ReceiptKeyRow, (gateway_id, key.kid))
        assert recorded is not None
        await uow.commit()
        return recorded


class ReceiptKeys:
    """A governance part: records the current key of every gateway with receipts on when
    the admin starts and every ``interval`` seconds after, so a key is written down soon
    after receipts are turned on (or the secrets key changes) even if nobody reads the
    keys (reading them records them at once)."""

    def __init__(self, deps: GovernanceDeps, interval: float = RECORD_INTERVAL) -> None:
        self.deps = deps
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._record_quietly()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="receipt-keys")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._record_quietly()

    async def _record_quietly(self) -> None:
        try:
            await self.record_all()
        except Exception:  # the database may be down: the next round (or a read) records
            log.exception("receipts: could not record the gateways' receipt keys")

    async def record_all(self) -> int:
        """Record the keys not yet recorded; how many gateways sign receipts."""
        material = self.deps.settings.secrets_material
        async with self.deps.sessions() as session:
            stmt = select(t.GatewayRow).where(
                t.GatewayRow.governance["receipts"].as_boolean().is_(True)  # type: ignore[index]
            )
            rows = list((await session.exec(stmt)).all())
            known = set(
                (
                    await session.exec(
                        select(ReceiptKeyRow.gateway_id, ReceiptKeyRow.kid).where(
                            col(ReceiptKeyRow.retired_at).is_(None)
                        )
                    )
                ).all()
            )
            for row in rows:
                governance = governance_of(row)
                key = ReceiptKey.derive(material, row.id, governance.receipt_key_version)
                if (row.id, key.kid) not in known:
                    await record(session, key)
            await session.commit()
            return len(rows)
