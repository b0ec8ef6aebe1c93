"""Budget alerts' tables: the rules, what they fired (one row per rule, window and
threshold, so a threshold fires at most once per window whoever evaluates), and the webhook
deliveries of those firings (the delivery log and the retry queue)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

#: Postgres NOTIFY channel: a delivery was queued (wakes every admin's delivery worker).
DELIVERY_CHANNEL = "alert_deliveries"


def _ts(nullable: bool = False) -> Any:
    return Field(
        default=None if nullable else ...,
        sa_column=Column(DateTime(timezone=True), nullable=nullable),
    )


def _fk(target: str, nullable: bool = False) -> Any:
    """Deleting what a rule watches (its gateway, consumer or policy) deletes the rule:
    nothing would be left to measure."""
    column: Column[Any] = Column(ForeignKey(f"{target}.id", ondelete="CASCADE"), nullable=nullable)
    return Field(default=None if nullable else ..., sa_column=column)


def _usd() -> Any:
    return Field(sa_column=Column(Numeric(24, 12), nullable=False))


class AlertRuleRow(SQLModel, table=True):
    """A rule: ``settings`` holds its kind's fields (amounts as strings), ``channel`` the
    delivery target with its ``url`` and ``secret`` sealed."""

    __tablename__ = "alert_rules"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: UUID = Field(primary_key=True)
    gateway_id: UUID = _fk("gateways")
    consumer_id: UUID | None = _fk("consumers", nullable=True)
    policy_id: UUID | None = _fk("policies", nullable=True)
    name: str = Field(sa_column=Column(String(255), nullable=False))
    enabled: bool = True
    kind: str
    settings: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    thresholds: list[int] = Field(sa_column=Column(JSONB, nullable=False))
    channel: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class AlertFiringRow(SQLModel, table=True):
    """A threshold a rule's window crossed. ``notified`` is false for a lower threshold one
    jump passed together with a higher one (only the highest is delivered; it names the
    others in ``passed``)."""

    __tablename__ = "alert_firings"
    __table_args__ = (UniqueConstraint("rule_id", "window_start", "threshold"),)

    id: UUID = Field(primary_key=True)
    rule_id: UUID = _fk("alert_rules")
    gateway_id: UUID
    window_start: datetime = _ts()
    window_end: datetime = _ts()
    threshold: int
    observed: Decimal = _usd()
    limit: Decimal = _usd()
    unit: str
    notified: bool
    passed: list[int] = Field(sa_column=Column(JSONB, nullable=False))
    fired_at: datetime = _ts()


class AlertDeliveryRow(SQLModel, table=True):
    """One firing's message to its rule's channel: ``pending`` until a 2xx (``delivered``)
    or until it is older than the maximum age (``failed``). ``last_error`` names the
    failure's kind only (never the URL or a secret)."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("alert_deliveries_due", "status", "next_attempt_at"),
        Index("alert_deliveries_rule", "rule_id", "created_at"),
        Index("alert_deliveries_gateway", "gateway_id", "created_at"),
    )

    id: UUID = Field(primary_key=True)
    firing_id: UUID = _fk("alert_firings")
    rule_id: UUID
    gateway_id: UUID
    status: str = "pending"
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = _ts()
    last_status_code: int | None = None
    last_error: str | None = None
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    delivered_at: datetime | None = _ts(nullable=True)
