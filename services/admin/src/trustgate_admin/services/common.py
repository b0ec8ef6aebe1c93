"""Shared helpers of the use cases."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import Result, Select, asc, desc, func
from sqlalchemy import select as core_select
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.domain.listing import ListQuery
from trustgate_core.errors import AlreadyExists, NotFound

R = TypeVar("R", bound=SQLModel)


async def get_gateway(session: AsyncSession, gateway_id: UUID) -> t.GatewayRow:
    row = await session.get(t.GatewayRow, gateway_id)
    if row is None:
        raise NotFound()
    return row


async def gateway_tenant(session: AsyncSession, gateway_id: UUID) -> str | None:
    """The gateway's tenant; 404 when there is no such gateway."""
    return (await get_gateway(session, gateway_id)).tenant_id


async def get_child(
    session: AsyncSession, table: type[R], gateway_id: UUID, entity_id: UUID, *, lock: bool = False
) -> R:
    stmt = select(table).where(table.id == entity_id, table.gateway_id == gateway_id)  # type: ignore[attr-defined]
    if lock:
        stmt = stmt.with_for_update()
    row = (await session.exec(stmt)).first()
    if row is None:
        raise NotFound()
    return row


async def ensure_unique_name(
    session: AsyncSession,
    table: type[SQLModel],
    gateway_id: UUID,
    name: str,
    own: UUID | None,
    noun: str,
) -> None:
    """409 when another ``noun`` of the gateway already has ``name``."""
    stmt = select(table.id).where(table.gateway_id == gateway_id, table.name == name)  # type: ignore[attr-defined]
    found = (await session.exec(stmt)).first()
    if found is not None and found != own:
        raise AlreadyExists(f"a {noun} named '{name}' already exists in this gateway")


async def page(
    session: AsyncSession, stmt: Select[Any], q: ListQuery, table: type[SQLModel]
) -> tuple[list[Any], int]:
    columns = {c.key: c for c in table.__table__.columns}  # type: ignore[attr-defined]
    if q.search and "name" in columns:
        stmt = stmt.where(columns["name"].ilike(f"%{_escape_like(q.search)}%", escape="\\"))
    total = int((await run(session, count_of(stmt))).scalar_one())
    stmt = apply_sort(stmt, q, columns).offset(q.offset).limit(q.size)
    rows = list((await session.exec(stmt)).all())  # type: ignore[call-overload]
    return rows, total


async def run(session: AsyncSession, stmt: Executable) -> Result[Any]:
    """Execute a Core statement (counts, bulk deletes, raw SQL) in the session's transaction."""
    conn = await session.connection()
    return await conn.execute(stmt)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def apply_sort(
    stmt: Select[Any], q: ListQuery, columns: Mapping[str, ColumnElement[Any]]
) -> Select[Any]:
    key = columns[q.sort] if q.sort else columns["created_at"]
    primary = desc(key) if q.sort and q.order == "desc" else asc(key)
    return stmt.order_by(primary, asc(columns["id"]))


def count_of(stmt: Select[Any]) -> Select[Any]:
    """``SELECT count(*)`` over what ``stmt`` selects (as a subquery: replacing its columns
    would drop its FROM when it has no WHERE, counting one row)."""
    return core_select(func.count()).select_from(stmt.order_by(None).subquery())
