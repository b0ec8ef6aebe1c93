"""The usage ledger's tables: hourly rollups of the request events, and the trace ids
already counted (so a redelivered event counts once). Written by
``trustgate_admin.governance.ledger``; read by the usage API and the alerts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Column, DateTime, Index, Numeric
from sqlmodel import Field, SQLModel

#: ``consumer_id`` of events without a consumer (refused before one was known): the
#: rollup's key has no NULLs, so every event lands in exactly one row.
NO_CONSUMER = UUID(int=0)


def _count() -> Any:
    return Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class UsageHourlyRow(SQLModel, table=True):
    """One gateway x consumer x model x provider x hour. ``model``/``provider`` are ``""``
    when the event named none; ``cost_usd`` is exact (NUMERIC), summed from each event's
    ``cost.total_usd``."""

    __tablename__ = "usage_hourly"
    __table_args__ = (Index("usage_hourly_gateway_hour", "gateway_id", "hour"),)

    gateway_id: UUID = Field(primary_key=True)
    hour: datetime = Field(sa_column=Column(DateTime(timezone=True), primary_key=True))
    consumer_id: UUID = Field(primary_key=True)
    model: str = Field(primary_key=True)
    provider: str = Field(primary_key=True)
    requests: int = _count()
    errors: int = _count()
    input_tokens: int = _count()
    output_tokens: int = _count()
    cached_tokens: int = _count()
    cache_hits: int = _count()
    fallbacks: int = _count()
    cost_usd: Decimal = Field(
        default=Decimal(0),
        sa_column=Column(Numeric(24, 12), nullable=False, server_default="0"),
    )


class UsageEventSeenRow(SQLModel, table=True):
    """A request event already counted, by its trace id; pruned after the retention."""

    __tablename__ = "usage_events_seen"
    __table_args__ = (Index("usage_events_seen_at", "seen_at"),)

    trace_id: str = Field(primary_key=True)
    seen_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
