"""Alert rule use cases (``/v1/gateways/{gw}/alerts``): create, read, list, change and
delete a gateway's rules, and list their deliveries. A rule's references are checked when
it is stored: its consumer belongs to the gateway, and a budget rule's policy is a
``token_rate_limiter`` whose budget the hourly ledger can measure (422 otherwise)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

from sqlmodel import col, select

from trustgate_admin.adapters.db import tables as t
from trustgate_admin.adapters.db.alert_tables import AlertDeliveryRow, AlertFiringRow, AlertRuleRow
from trustgate_admin.domain.listing import ListQuery, bool_filter
from trustgate_admin.governance import alert_channels
from trustgate_admin.governance.alert_evaluation import rule_status
from trustgate_admin.governance.alert_payloads import AlertFacts, exact, outgoing, utc_text
from trustgate_admin.governance.alert_schemas import (
    KIND_FIELDS,
    AlertRule,
    AlertRuleIn,
    checked_rule,
)
from trustgate_admin.governance.alert_windows import budget_measure, calendar_window
from trustgate_admin.governance.webhook_guard import guarded_client, host_refusal
from trustgate_admin.governance.webhooks import send
from trustgate_admin.services.common import ensure_unique_name, get_child, get_gateway, page
from trustgate_admin.services.uow import UnitOfWork, now
from trustgate_core.crypto import SecretBox, find_masked, merge_masked
from trustgate_core.errors import InvalidUUID, NotFound, ValidationFailed
from trustgate_core.ids import uuid7

#: the audit log's kind for alert rule changes
AUDIT_KIND = "alert_rule"
BUDGET_PLUGIN = "token_rate_limiter"
AMOUNTS = frozenset({"amount_usd", "min_spend_usd"})


async def create(
    uow: UnitOfWork, gateway_id: UUID, rule: AlertRule, *, allow_private: bool = True
) -> dict[str, Any]:
    channel = rule.channel.model_dump()
    if find_masked(channel):
        raise ValidationFailed("channel: a masked value cannot be stored")
    _check_receiver(rule, allow_private)
    async with uow:
        await get_gateway(uow.session, gateway_id)
        await ensure_unique_name(uow.session, AlertRuleRow, gateway_id, rule.name, None, "alert")
        await _check_references(uow, gateway_id, rule)
        ts = now()
        row = AlertRuleRow(
            id=uuid7(),
            gateway_id=gateway_id,
            created_at=ts,
            updated_at=ts,
            **_columns(rule, alert_channels.sealed(uow.box, channel)),
        )
        uow.session.add(row)
        await uow.record(AUDIT_KIND, gateway_id, row.id, "create")
        await uow.commit()
        return await answer_with_status(uow, row)


async def get(uow: UnitOfWork, gateway_id: UUID, alert_id: UUID) -> dict[str, Any]:
    async with uow:
        row = await get_child(uow.session, AlertRuleRow, gateway_id, alert_id)
        return await answer_with_status(uow, row)


async def list_(
    uow: UnitOfWork, gateway_id: UUID, q: ListQuery
) -> tuple[list[dict[str, Any]], int]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(AlertRuleRow).where(AlertRuleRow.gateway_id == gateway_id)
        if "kind" in q.filters:
            stmt = stmt.where(AlertRuleRow.kind == q.filters["kind"])
        if "enabled" in q.filters:
            stmt = stmt.where(AlertRuleRow.enabled == bool_filter("enabled", q.filters["enabled"]))
        if "consumer_id" in q.filters:
            stmt = stmt.where(AlertRuleRow.consumer_id == _uuid_filter(q.filters["consumer_id"]))
        rows, total = await page(uow.session, stmt, q, AlertRuleRow)
        return [await answer_with_status(uow, r) for r in rows], total


async def update(
    uow: UnitOfWork,
    gateway_id: UUID,
    alert_id: UUID,
    body: AlertRuleIn,
    *,
    allow_private: bool = True,
) -> dict[str, Any]:
    changes = body.model_dump(exclude_unset=True)
    async with uow:
        row = await get_child(uow.session, AlertRuleRow, gateway_id, alert_id, lock=True)
        stored_channel = alert_channels.opened(uow.box, row.channel)
        fields = _fields(row, stored_channel)
        if "kind" in changes and changes["kind"] != row.kind:
            for name in (*KIND_FIELDS[row.kind], "thresholds"):
                fields.pop(name, None)  # the old kind's settings do not carry over
        if "channel" in changes:
            changes["channel"] = _merged_channel(changes["channel"], stored_channel)
        rule = checked_rule({**fields, **changes})
        _check_receiver(rule, allow_private)
        if rule.name != row.name:
            await ensure_unique_name(
                uow.session, AlertRuleRow, gateway_id, rule.name, row.id, "alert"
            )
        await _check_references(uow, gateway_id, rule)
        for key, value in _columns(
            rule, alert_channels.sealed(uow.box, rule.channel.model_dump())
        ).items():
            setattr(row, key, value)
        row.updated_at = now()
        uow.session.add(row)
        await uow.record(AUDIT_KIND, gateway_id, row.id, "update")
        await uow.commit()
        return await answer_with_status(uow, row)


async def delete(uow: UnitOfWork, gateway_id: UUID, alert_id: UUID) -> None:
    async with uow:
        row = await get_child(uow.session, AlertRuleRow, gateway_id, alert_id, lock=True)
        await uow.session.delete(row)
        await uow.record(AUDIT_KIND, gateway_id, row.id, "delete")
        await uow.commit()


async def deliveries(
    uow: UnitOfWork, gateway_id: UUID, q: ListQuery, alert_id: UUID | None = None
) -> tuple[list[dict[str, Any]], int]:
    """The delivery log, of one rule or of the whole gateway, each with its firing."""
    async with uow:
        await get_gateway(uow.session, gateway_id)
        stmt: Any = select(AlertDeliveryRow).where(AlertDeliveryRow.gateway_id == gateway_id)
        if alert_id is not None:
            await get_child(uow.session, AlertRuleRow, gateway_id, alert_id)
            stmt = stmt.where(AlertDeliveryRow.rule_id == alert_id)
        elif "alert_id" in q.filters:
            stmt = stmt.where(AlertDeliveryRow.rule_id == _uuid_filter(q.filters["alert_id"]))
        if "status" in q.filters:
            stmt = stmt.where(AlertDeliveryRow.status == q.filters["status"])
        rows, total = await page(uow.session, stmt, q, AlertDeliveryRow)
        ids = [r.firing_id for r in rows]
        firings = {
            f.id: f
            for f in (
                await uow.session.exec(
                    select(AlertFiringRow).where(col(AlertFiringRow.id).in_(ids))
                )
            ).all()
        }
        return [delivery_answer(r, firings[r.firing_id]) for r in rows], total


#: What a failed test send answers: no more of the receiver than a user needs to fix it
#: (not its status code, nor how a connection failed: the test is not a network probe).
TEST_ERRORS: Final = {
    "status": "the receiver answered with an error status",
    "unreachable": "the receiver could not be reached",
    "BlockedAddress": "the receiver's address is refused (link-local or cloud metadata, "
    "or loopback or private with ALERT_WEBHOOK_ALLOW_PRIVATE=false)",
}


async def send_test(
    uow: UnitOfWork,
    gateway_id: UUID,
    alert_id: UUID,
    send_timeout: float,
    *,
    allow_private: bool = True,
) -> dict[str, Any]:
    """Send a test message (made-up figures, ``test: true``) to the rule's channel now, once;
    whether it was accepted, and if not, in which of ``TEST_ERRORS``' words (never the URL,
    the receiver's status code or the connection's failure)."""
    async with uow:
        gateway = await get_gateway(uow.session, gateway_id)
        rule = await get_child(uow.session, AlertRuleRow, gateway_id, alert_id)
    ts = now()
    window = calendar_window("day", ts)
    limit = Decimal(rule.settings.get("amount_usd", "100"))
    threshold = (rule.thresholds or [100])[-1]
    facts = AlertFacts(
        delivery_id=None,
        rule_id=rule.id,
        rule_name=rule.name,
        kind=rule.kind,
        gateway_id=gateway_id,
        gateway_name=gateway.name or gateway.slug,
        consumer_id=rule.consumer_id,
        threshold=threshold,
        passed=[],
        window_start=window.start,
        window_end=window.end,
        observed=limit * threshold / 100,
        limit=limit,
        unit="usd",
        fired_at=ts,
        test=True,
    )
    out = outgoing(alert_channels.opened(uow.box, rule.channel), facts, ts)
    async with guarded_client(send_timeout, allow_private) as client:
        sent = await send(client, out)
    if sent.ok:
        return {"ok": True, "status_code": sent.status_code, "error": None}
    if sent.status_code is not None:
        error = TEST_ERRORS["status"]
    else:
        error = TEST_ERRORS.get(sent.error or "", TEST_ERRORS["unreachable"])
    return {"ok": False, "status_code": None, "error": error}


# -- checks ------------------------------------------------------------------------------


async def _check_references(uow: UnitOfWork, gateway_id: UUID, rule: AlertRule) -> None:
    if rule.consumer_id is not None:
        try:
            await get_child(uow.session, t.ConsumerRow, gateway_id, rule.consumer_id)
        except NotFound:
            raise ValidationFailed("consumer_id: no such consumer in this gateway") from None
    if rule.kind == "budget":
        assert rule.policy_id is not None
        await _check_budget_policy(uow, gateway_id, rule.policy_id, rule.consumer_id)


async def _check_budget_policy(
    uow: UnitOfWork, gateway_id: UUID, policy_id: UUID, consumer_id: UUID | None
) -> None:
    """The policy is a ``token_rate_limiter`` of the gateway whose aggregate budget the
    ledger can measure, and the rule's scope is the budget's: the gateway for a global
    policy, else one consumer it is attached to."""
    try:
        policy = await get_child(uow.session, t.PolicyRow, gateway_id, policy_id)
    except NotFound:
        raise ValidationFailed("policy_id: no such policy in this gateway") from None
    if policy.slug != BUDGET_PLUGIN:
        raise ValidationFailed(f"policy_id: is a {policy.slug} policy, not a {BUDGET_PLUGIN}")
    try:
        budget_measure(uow.box.open_fields(policy.settings or {}))
    except ValueError as exc:
        raise ValidationFailed(f"policy_id: {exc}") from None
    if policy.is_global:
        if consumer_id is not None:
            raise ValidationFailed(
                "consumer_id: the policy is global, its budget is the gateway's: leave it out"
            )
        return
    if consumer_id is None:
        raise ValidationFailed(
            "consumer_id: the policy keeps a budget per consumer: name the consumer to watch"
        )
    link = await uow.session.get(t.ConsumerPolicyLink, (consumer_id, policy_id))
    if link is None:
        raise ValidationFailed("consumer_id: the policy is not attached to this consumer")


def _check_receiver(rule: AlertRule, allow_private: bool) -> None:
    """The channel's host is not one the admin refuses to send to (link-local and metadata
    ones are refused by the schema already; here, private ones per the setting)."""
    host = urlsplit(rule.channel.url.strip()).hostname or ""
    reason = host_refusal(host, allow_private)
    if reason is not None:
        raise ValidationFailed(f"channel.url: must not name {reason}")


def _merged_channel(new: Any, stored: dict[str, Any]) -> Any:
    """A PUT's channel: masked values (as answered) keep the stored ones, for the same type."""
    if isinstance(new, dict) and new.get("type") == stored.get("type"):
        new = merge_masked(new, stored)
    if find_masked(new):
        raise ValidationFailed("channel: a masked value cannot be stored")
    return new


def _uuid_filter(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidUUID(f"'{raw}' is not a valid UUID") from None


# -- rows and answers --------------------------------------------------------------------


def _columns(rule: AlertRule, channel: dict[str, Any]) -> dict[str, Any]:
    """A rule's row columns (``channel`` already sealed)."""
    return {
        "name": rule.name,
        "consumer_id": rule.consumer_id,
        "policy_id": rule.policy_id,
        "enabled": rule.enabled,
        "kind": rule.kind,
        "settings": rule.settings(),
        "thresholds": rule.thresholds or [],
        "channel": channel,
    }


def _fields(row: AlertRuleRow, channel: dict[str, Any]) -> dict[str, Any]:
    """The stored rule as a rule's fields (to merge a PUT's changes into)."""
    fields: dict[str, Any] = {
        "name": row.name,
        "consumer_id": row.consumer_id,
        "enabled": row.enabled,
        "kind": row.kind,
        "channel": channel,
        **row.settings,
    }
    if row.policy_id is not None:
        fields["policy_id"] = row.policy_id
    if row.kind != "anomaly":
        fields["thresholds"] = row.thresholds
    return fields


def _number(name: str, value: Any) -> Any:
    """Amounts are stored exact (strings); answered as JSON numbers."""
    return float(Decimal(value)) if name in AMOUNTS else value


def answer(row: AlertRuleRow, box: SecretBox) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(row.id),
        "gateway_id": str(row.gateway_id),
        "name": row.name,
        "consumer_id": str(row.consumer_id) if row.consumer_id else None,
        "enabled": row.enabled,
        "kind": row.kind,
    }
    data.update({k: _number(k, v) for k, v in row.settings.items()})
    if row.policy_id is not None:
        data["policy_id"] = str(row.policy_id)
    if row.kind != "anomaly":
        data["thresholds"] = row.thresholds
    data["channel"] = alert_channels.masked(box, row.channel)
    data["created_at"] = utc_text(row.created_at)
    data["updated_at"] = utc_text(row.updated_at)
    return data


async def answer_with_status(uow: UnitOfWork, row: AlertRuleRow) -> dict[str, Any]:
    """The answer with the rule's ``status`` (active, disabled, or inactive: a budget rule
    its policy no longer lets the ledger measure, skipped) and the ``reason`` of inactive."""
    data = answer(row, uow.box)
    data["status"], data["reason"] = await rule_status(uow.session, uow.box, row)
    return data


def delivery_answer(row: AlertDeliveryRow, firing: AlertFiringRow) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "alert_id": str(row.rule_id),
        "status": row.status,
        "attempts": row.attempts,
        "last_status_code": row.last_status_code,
        "last_error": row.last_error,
        "next_attempt_at": utc_text(row.next_attempt_at) if row.status == "pending" else None,
        "created_at": utc_text(row.created_at),
        "updated_at": utc_text(row.updated_at),
        "delivered_at": utc_text(row.delivered_at) if row.delivered_at else None,
        "firing": {
            "id": str(firing.id),
            "threshold": firing.threshold,
            "passed": firing.passed,
            "window_start": utc_text(firing.window_start),
            "window_end": utc_text(firing.window_end),
            "observed": exact(firing.observed),
            "limit": exact(firing.limit),
            "unit": firing.unit,
            "fired_at": utc_text(firing.fired_at),
        },
    }
