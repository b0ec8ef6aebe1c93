"""The audit log: every admin change (chained by the unit of work) and the request entries
of the gateways that ask for them (``kind=request``), listed newest first (by ``seq``,
the chain's order)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import asc, desc
from sqlmodel import col, select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.listing import ListQuery
from trustgate_admin.services.common import count_of, run
from trustgate_admin.services.uow import UnitOfWork
from trustgate_core.errors import InvalidFilter

FILTERS = ("gateway_id", "kind", "entity_id", "operation", "actor")


def _filter_value(name: str, raw: str) -> Any:
    if name in ("gateway_id", "entity_id"):
        try:
            return UUID(raw)
        except ValueError as exc:
            raise InvalidFilter(f"{name} must be a UUID") from exc
    return raw


async def list_(
    uow: UnitOfWork, q: ListQuery, tenant: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The entries (of ``tenant``'s gateways only, when given), newest first unless
    ``sort=seq|occurred_at&order=asc``; ties (equal times) in chain order."""
    async with uow:
        stmt: Any = select(t.AuditRow)
        if tenant is not None:
            stmt = stmt.where(t.AuditRow.tenant_id == tenant)
        for name, raw in q.filters.items():
            stmt = stmt.where(getattr(t.AuditRow, name) == _filter_value(name, raw))
        total = int((await run(uow.session, count_of(stmt))).scalar_one())
        order = asc if q.sort and q.order == "asc" else desc
        if q.sort == "occurred_at":
            stmt = stmt.order_by(order(col(t.AuditRow.occurred_at)))
        stmt = stmt.order_by(order(col(t.AuditRow.seq)))
        rows = (await uow.session.exec(stmt.offset(q.offset).limit(q.size))).all()
        return [row.model_dump(mode="json") for row in rows], total
