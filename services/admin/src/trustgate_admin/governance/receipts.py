"""Receipt keys: the admin records each gateway's public receipt keys, rotates them and
publishes them as a JWKS (docs/governance-receipts.md).

The admin never stores a private key: like the proxy, it derives the gateway's key pair
from the secrets key (`trustgate_core.receipts.keys`) and writes down the public half the
first time it sees it (a rotation, the admin starting and every ``RECORD_INTERVAL`` after,
or an admin listing the keys), so receipts signed with it stay verifiable after a rotation
or a change of the secrets key. The public JWKS only reads: the recorded keys, and the
current one derived (its public half cached) if it is not recorded yet. A rotation raises ``governance.receipt_key_version`` through the
gateway's config event (the proxies sign with the new key from then on) and marks the
previous key retired; retired keys stay listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
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
from trustgate_core.events.subjects import CONFIG_PREFIX
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


@functools.lru_cache(maxsize=4096)
def current_public_x(material: str, gateway_id: UUID, version: int) -> str:
    """The public half (JWK ``x``) of the gateway's receipt key of ``version``: derived once
    per process, then cached (the derivation is the costly part of a JWKS read)."""
    return ReceiptKey.derive(material, gateway_id, version).x


async def public_jwks(uow: UnitOfWork, gateway_id: UUID, material: str) -> dict[str, Any]:
    """The JWKS of every key the gateway's receipts were signed with, retired ones
    included (a deleted gateway's keys too), and the current one when receipts are on
    (recorded or not yet). Read-only: anyone may call it, so it never writes (the keys
    are recorded at rotation, at the admin's start and every ``RECORD_INTERVAL``). 404: no
    such gateway, or it never had receipts."""
    async with uow:
        row = await uow.session.get(t.GatewayRow, gateway_id)
        xs = [k.x for k in await keys_of(uow.session, gateway_id)]
    if row is not None:
        governance = governance_of(row)
        if governance.receipts:
            x = current_public_x(material, row.id, governance.receipt_key_version)
            if x not in xs:
                xs.append(x)
    if not xs:
        raise NotFound("no receipt keys for this gateway")
    return {"keys": [jwk(x) for x in xs]}


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
    the admin starts, whenever a gateway's config event goes out (receipts turned on, the
    event that makes the proxies start signing: recorded within moments of the first
    receipt), and every ``interval`` seconds after (a missed event, a changed secrets key).
    An admin listing the keys records them too; the public JWKS never writes."""

    def __init__(self, deps: GovernanceDeps, interval: float = RECORD_INTERVAL) -> None:
        self.deps = deps
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._subscription: Any = None
        self._recorded_at = 0.0

    async def start(self) -> None:
        await self._record_quietly()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="receipt-keys")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._subscribe()
            due = self._recorded_at + self.interval
            # until subscribed (the relay makes the connection), try again every second
            wait = self.interval if self._subscription is not None else 1.0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(wait, due - loop.time()))):
                    await self._wake.wait()
            if self._wake.is_set() or loop.time() >= due:
                self._wake.clear()
                await self._record_quietly()

    async def _subscribe(self) -> None:
        """Wake on every gateway config event (core NATS: a missed one waits for the
        interval); nats-py subscribes again after a reconnect."""
        nc = self.deps.nc
        if self._subscription is not None or not nc.is_connected:
            return

        async def woken(_msg: Any) -> None:
            self._wake.set()

        try:
            self._subscription = await nc.subscribe(f"{CONFIG_PREFIX}.gateway.*.*", cb=woken)
        except Exception as exc:
            log.debug("receipts: not subscribed to gateway events yet (%r)", exc)

    async def _record_quietly(self) -> None:
        self._recorded_at = asyncio.get_running_loop().time()
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
