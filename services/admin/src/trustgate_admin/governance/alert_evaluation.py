"""One evaluation of a gateway's alert rules against the usage ledger's rollups.

Each rule is evaluated in its own transaction holding its row (``FOR UPDATE``), so two
admins evaluating at once take turns and the second reads what the first committed. A
crossing inserts ``alert_firings`` rows, unique on (rule, window start, threshold) with
``ON CONFLICT DO NOTHING``: a threshold fires at most once per window whoever evaluates.
When one jump crosses several thresholds only the highest new one is delivered (it names
the others in ``passed``); the lower ones are stored as passed, so they never fire later in
that window. A delivery is queued in the same transaction, and ``NOTIFY`` wakes every
admin's delivery worker when it commits."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import func, text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.alert_tables import (
    DELIVERY_CHANNEL,
    AlertDeliveryRow,
    AlertFiringRow,
    AlertRuleRow,
)
from trustgate_admin.adapters.db.tables import PolicyRow
from trustgate_admin.adapters.db.usage_tables import UsageHourlyRow
from trustgate_admin.governance import alert_windows as w
from trustgate_core.crypto import SecretBox
from trustgate_core.ids import uuid7

log = logging.getLogger(__name__)
#: The threshold an anomaly fires at (percent of its limit: once per hour window).
ANOMALY_THRESHOLD = 100


@dataclass(frozen=True)
class Measurement:
    window: w.Window
    observed: Decimal
    limit: Decimal
    unit: str
    crossed: list[int]


async def rule_ids(session: AsyncSession, gateway_id: UUID) -> list[UUID]:
    stmt = select(AlertRuleRow.id).where(
        AlertRuleRow.gateway_id == gateway_id, col(AlertRuleRow.enabled).is_(True)
    )
    return list((await session.exec(stmt)).all())


async def gateways_with_rules(session: AsyncSession) -> list[UUID]:
    stmt = select(AlertRuleRow.gateway_id).where(col(AlertRuleRow.enabled).is_(True)).distinct()
    return list((await session.exec(stmt)).all())


async def evaluate_rule(session: AsyncSession, box: SecretBox, rule_id: UUID, now: datetime) -> int:
    """Evaluate one rule inside ``session``'s transaction; the deliveries it queued."""
    stmt = select(AlertRuleRow).where(AlertRuleRow.id == rule_id).with_for_update()
    rule = (await session.exec(stmt)).first()
    if rule is None or not rule.enabled:
        return 0
    measured = await measure(session, box, rule, now)
    if measured is None or not measured.crossed:
        return 0
    return await _fire(session, rule, measured, now)


async def measure(
    session: AsyncSession, box: SecretBox, rule: AlertRuleRow, now: datetime
) -> Measurement | None:
    """The rule's window, what it used and its limit; ``None`` when it cannot be measured
    any more (its policy changed to a budget the ledger cannot measure)."""
    settings = rule.settings
    if rule.kind == "spend":
        window = w.calendar_window(settings["period"], now)
        usage = await usage_in(session, rule.gateway_id, rule.consumer_id, window)
        limit = Decimal(settings["amount_usd"])
        return Measurement(
            window, usage.cost_usd, limit, "usd", w.crossed(rule.thresholds, usage.cost_usd, limit)
        )
    if rule.kind == "budget":
        return await _measure_budget(session, box, rule, now)
    window = w.last_full_hour(now)
    hours = int(settings["baseline_hours"])
    baseline = w.Window(window.start - timedelta(hours=hours), window.start)
    last = (await usage_in(session, rule.gateway_id, rule.consumer_id, window)).cost_usd
    before = (await usage_in(session, rule.gateway_id, rule.consumer_id, baseline)).cost_usd
    limit = w.anomaly_limit(before, hours, float(settings["factor"]))
    fired = w.is_anomalous(last, limit, Decimal(settings["min_spend_usd"]))
    return Measurement(window, last, limit, "usd", [ANOMALY_THRESHOLD] if fired else [])


async def _measure_budget(
    session: AsyncSession, box: SecretBox, rule: AlertRuleRow, now: datetime
) -> Measurement | None:
    scope = await budget_scope(session, box, rule)
    if isinstance(scope, str):
        log.warning("alerts: rule %s skipped: %s", rule.id, scope)
        return None
    budget, consumer = scope
    window = w.fixed_window(budget.seconds, now)
    used = budget.used(await usage_in(session, rule.gateway_id, consumer, window))
    return Measurement(
        window, used, budget.maximum, budget.unit, w.crossed(rule.thresholds, used, budget.maximum)
    )


async def budget_scope(
    session: AsyncSession, box: SecretBox, rule: AlertRuleRow
) -> tuple[w.BudgetMeasure, UUID | None] | str:
    """What a budget rule measures today: its policy's budget and the consumer whose usage
    counts (None: the gateway's); or, when its policy changed since the rule was stored so
    that the ledger cannot measure it, why (the rule is then skipped, and its answer says
    so: ``rule_status``)."""
    policy = await session.get(PolicyRow, rule.policy_id)
    if policy is None:
        return "its policy no longer exists"
    try:
        budget = w.budget_measure(box.open_fields(policy.settings or {}))
    except ValueError as exc:
        return f"its policy's budget cannot be measured by the ledger: {exc}"
    if policy.is_global:
        return budget, None
    if rule.consumer_id is None:
        return "its policy is no longer global and the rule names no consumer"
    return budget, rule.consumer_id


async def rule_status(
    session: AsyncSession, box: SecretBox, rule: AlertRuleRow
) -> tuple[str, str | None]:
    """``("active", None)`` for a rule that is evaluated, ``("disabled", None)`` for one
    switched off, ``("inactive", reason)`` for a budget rule that cannot be measured any
    more (it is skipped until its policy or the rule is changed)."""
    if not rule.enabled:
        return "disabled", None
    if rule.kind == "budget":
        scope = await budget_scope(session, box, rule)
        if isinstance(scope, str):
            return "inactive", scope
    return "active", None


async def usage_in(
    session: AsyncSession, gateway_id: UUID, consumer_id: UUID | None, window: w.Window
) -> w.Usage:
    """The ledger's figures of the gateway (or one consumer) over the window's hours."""
    u = UsageHourlyRow
    stmt: Any = select(
        func.coalesce(func.sum(u.cost_usd), 0),
        func.coalesce(func.sum(u.input_tokens), 0),
        func.coalesce(func.sum(u.output_tokens), 0),
        func.coalesce(func.sum(u.cached_tokens), 0),
    ).where(u.gateway_id == gateway_id, u.hour >= window.start, u.hour < window.end)
    if consumer_id is not None:
        stmt = stmt.where(u.consumer_id == consumer_id)
    cost, inputs, outputs, cached = (await session.exec(stmt)).one()
    return w.Usage(Decimal(cost), int(inputs), int(outputs), int(cached))


async def _fire(session: AsyncSession, rule: AlertRuleRow, m: Measurement, now: datetime) -> int:
    rows = [
        {
            "id": uuid7(),
            "rule_id": rule.id,
            "gateway_id": rule.gateway_id,
            "window_start": m.window.start,
            "window_end": m.window.end,
            "threshold": threshold,
            "observed": m.observed,
            "limit": m.limit,
            "unit": m.unit,
            "notified": False,
            "passed": [],
            "fired_at": now,
        }
        for threshold in m.crossed
    ]
    stmt = (
        insert(AlertFiringRow)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["rule_id", "window_start", "threshold"])
        .returning(col(AlertFiringRow.id), col(AlertFiringRow.threshold))
    )
    conn = await session.connection()
    new = sorted(((r[0], r[1]) for r in await conn.execute(stmt)), key=lambda r: r[1])
    if not new:
        return 0
    firing_id, threshold = new[-1]
    passed = [t for _, t in new[:-1]]
    await conn.execute(
        update(AlertFiringRow)
        .where(col(AlertFiringRow.id) == firing_id)
        .values(notified=True, passed=passed)
    )
    session.add(
        AlertDeliveryRow(
            id=uuid7(),
            firing_id=firing_id,
            rule_id=rule.id,
            gateway_id=rule.gateway_id,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
    )
    await conn.execute(text(f"NOTIFY {DELIVERY_CHANNEL}"))
    log.info("alerts: rule %s fired at %s%% (window %s)", rule.id, threshold, m.window.start)
    return 1
