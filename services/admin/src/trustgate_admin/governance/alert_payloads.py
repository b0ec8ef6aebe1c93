"""The messages an alert sends: a Slack incoming-webhook body, or a generic JSON body signed
with HMAC-SHA256 (docs/governance-alerts.md says how a receiver verifies it). Pure."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final
from uuid import UUID

import orjson

SIGNATURE_HEADER: Final = "X-TrustGate-Signature"
TIMESTAMP_HEADER: Final = "X-TrustGate-Timestamp"
DELIVERY_HEADER: Final = "X-TrustGate-Delivery"
EVENT_TYPE: Final = "trustgate.alert"


@dataclass(frozen=True)
class AlertFacts:
    """What a message says: the rule, its gateway, and the firing (a test message has
    made-up figures and ``test`` set)."""

    delivery_id: UUID | None
    rule_id: UUID
    rule_name: str
    kind: str
    gateway_id: UUID
    gateway_name: str
    consumer_id: UUID | None
    threshold: int
    passed: list[int]
    window_start: datetime
    window_end: datetime
    observed: Decimal
    limit: Decimal
    unit: str
    fired_at: datetime
    test: bool = False

    @property
    def percent(self) -> Decimal:
        return (self.observed * 100 / self.limit) if self.limit > 0 else Decimal(0)


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, as the other admin answers write times."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def exact(value: Decimal) -> str:
    """A decimal as a plain exact string (``"81.2"``, never ``"8.12E+1"``)."""
    return format(value.normalize(), "f")


def _amount(value: Decimal, unit: str) -> str:
    """Dollars to the cent, or to four significant digits under a dollar (a budget of
    $0.05 must not read "$0.05 of $0.05" at half of it, nor "$0.00")."""
    if unit != "usd":
        return f"{value:,.0f} tokens"
    if value == 0 or abs(value) >= 1:
        return f"${value:,.2f}"
    digits = value.quantize(Decimal(1).scaleb(value.adjusted() - 3)).normalize()
    return f"${digits:f}"


def summary(f: AlertFacts) -> str:
    """One line a person reads first."""
    window = f"{f.window_start:%Y-%m-%d %H:%M} to {f.window_end:%Y-%m-%d %H:%M} UTC"
    prefix = "[test] " if f.test else ""
    if f.kind == "anomaly":
        return (
            f"{prefix}TrustGate alert '{f.rule_name}' on gateway {f.gateway_name}: spend of"
            f" {_amount(f.observed, 'usd')} in the hour {window} is above"
            f" {_amount(f.limit, 'usd')} (the usual hour times the rule's factor)"
        )
    return (
        f"{prefix}TrustGate alert '{f.rule_name}' on gateway {f.gateway_name}:"
        f" {f.percent:.0f}% used ({_amount(f.observed, f.unit)} of {_amount(f.limit, f.unit)}),"
        f" past the {f.threshold}% threshold, window {window}"
    )


def generic_document(f: AlertFacts) -> dict[str, Any]:
    """The generic webhook's JSON body."""
    return {
        "type": EVENT_TYPE,
        "version": 1,
        "test": f.test,
        "delivery_id": str(f.delivery_id) if f.delivery_id else None,
        "text": summary(f),
        "alert": {"id": str(f.rule_id), "name": f.rule_name, "kind": f.kind},
        "gateway": {"id": str(f.gateway_id), "name": f.gateway_name},
        "consumer_id": str(f.consumer_id) if f.consumer_id else None,
        "firing": {
            "threshold": f.threshold,
            "passed": f.passed,
            "window": {"start": utc_text(f.window_start), "end": utc_text(f.window_end)},
            "observed": exact(f.observed),
            "limit": exact(f.limit),
            "unit": f.unit,
            "percent": round(float(f.percent), 2),
            "fired_at": utc_text(f.fired_at),
        },
    }


def slack_document(f: AlertFacts) -> dict[str, Any]:
    """A Slack incoming webhook's body: ``text`` (the notification) and one section block."""
    text = summary(f)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256(secret, timestamp + "." + body)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True)
class Outgoing:
    """One HTTP POST to a channel (``url`` is a secret: never logged)."""

    url: str
    body: bytes
    headers: dict[str, str]


def outgoing(channel: dict[str, Any], f: AlertFacts, now: datetime) -> Outgoing:
    """The POST for ``channel`` (opened: its url and secret in clear)."""
    headers = {"Content-Type": "application/json"}
    if f.delivery_id is not None:
        headers[DELIVERY_HEADER] = str(f.delivery_id)
    if channel["type"] == "slack":
        return Outgoing(channel["url"], orjson.dumps(slack_document(f)), headers)
    body = orjson.dumps(generic_document(f))
    timestamp = str(int(now.timestamp()))
    headers[TIMESTAMP_HEADER] = timestamp
    headers[SIGNATURE_HEADER] = signature(channel["secret"], timestamp, body)
    return Outgoing(channel["url"], body, headers)
