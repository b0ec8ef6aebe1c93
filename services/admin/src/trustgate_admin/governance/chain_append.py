"""Appending to the audit chain, inside the caller's transaction.

One transaction-scoped advisory lock serialises every append across connections and
admin replicas: the appender takes it, reads the head, numbers and hashes its entries
and inserts them; the lock is released when the transaction commits or rolls back, so
the entries and the change they record stand or fall together. Take it as late as
possible (just before the commit): the transaction holds it until then, and a
transaction that waited for it while holding row locks another appender needs would
deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.tables import AuditRow
from trustgate_admin.governance.chain_hash import GENESIS, entry_hash

#: ``pg_advisory_xact_lock`` key of the chain's appenders ("tg-audit").
CHAIN_LOCK_KEY = 0x74672D6175646974


@dataclass(frozen=True)
class NewEntry:
    """An audit entry before the chain numbers and hashes it."""

    id: UUID
    occurred_at: datetime
    actor: str
    tenant_id: str | None
    gateway_id: UUID
    kind: str
    entity_id: UUID | None
    operation: str
    revision: int | None
    details: dict[str, Any] | None = None


class Head(NamedTuple):
    """The chain's last entry: what an outside copy anchors."""

    seq: int
    hash: str
    id: UUID
    occurred_at: datetime


async def read_head(conn: AsyncConnection) -> Head | None:
    """The last entry (``None``: the chain is empty)."""
    row = (
        await conn.execute(
            text("SELECT seq, hash, id, occurred_at FROM audit_log ORDER BY seq DESC LIMIT 1")
        )
    ).first()
    return None if row is None else Head(int(row.seq), str(row.hash), row.id, row.occurred_at)


async def append(session: AsyncSession, entries: Sequence[NewEntry]) -> list[dict[str, Any]]:
    """Chain ``entries`` after the head, in order, in ``session``'s transaction: one lock,
    one head read, one multi-row insert. Returns the rows as stored."""
    if not entries:
        return []
    conn = await session.connection()
    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHAIN_LOCK_KEY})
    head = await read_head(conn)
    seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
    rows: list[dict[str, Any]] = []
    names = [field.name for field in fields(NewEntry)]
    for entry in entries:
        seq += 1
        row = {name: getattr(entry, name) for name in names}
        row["seq"], row["prev_hash"] = seq, prev
        row["hash"] = prev = entry_hash(prev, row)
        rows.append(row)
    await conn.execute(insert(AuditRow.__table__), rows)  # type: ignore[attr-defined]
    return rows
