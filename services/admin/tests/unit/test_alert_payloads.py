"""The messages: a generic body signed as the docs say a receiver verifies it, and a Slack
body; neither carries the channel's URL or secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from trustgate_admin.governance.alert_payloads import AlertFacts, outgoing

URL = "https://receiver.example.com/hook/path-secret"
SECRET = "a-signing-secret-of-some-length"
NOW = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)


def _facts(**extra: object) -> AlertFacts:
    values: dict[str, object] = {
        "delivery_id": uuid.uuid4(),
        "rule_id": uuid.uuid4(),
        "rule_name": "monthly",
        "kind": "spend",
        "gateway_id": uuid.uuid4(),
        "gateway_name": "prod",
        "consumer_id": None,
        "threshold": 100,
        "passed": [50, 80],
        "window_start": datetime(2026, 12, 1, tzinfo=UTC),
        "window_end": datetime(2027, 1, 1, tzinfo=UTC),
        "observed": Decimal("102.500000000000"),
        "limit": Decimal("100.000000000000"),
        "unit": "usd",
        "fired_at": NOW,
        **extra,
    }
    return AlertFacts(**values)  # type: ignore[arg-type]


def test_a_webhook_body_is_signed_over_the_timestamp_and_the_body() -> None:
    facts = _facts()
    out = outgoing({"type": "webhook", "url": URL, "secret": SECRET}, facts, NOW)
    timestamp = out.headers["X-TrustGate-Timestamp"]
    assert timestamp == str(int(NOW.timestamp()))
    mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + out.body, hashlib.sha256)
    assert out.headers["X-TrustGate-Signature"] == "sha256=" + mac.hexdigest()
    assert out.headers["X-TrustGate-Delivery"] == str(facts.delivery_id)
    body = json.loads(out.body)
    assert body["firing"]["observed"] == "102.5" and body["firing"]["limit"] == "100"
    assert body["firing"]["percent"] == 102.5 and body["firing"]["passed"] == [50, 80]
    assert "monthly" in body["text"] and "$102.50 of $100.00" in body["text"]
    assert URL not in out.body.decode() and SECRET not in out.body.decode()


def test_a_slack_body_is_text_and_a_section_block_unsigned() -> None:
    out = outgoing({"type": "slack", "url": URL}, _facts(unit="tokens"), NOW)
    body = json.loads(out.body)
    assert set(body) == {"text", "blocks"}
    assert "102 tokens of 100 tokens" in body["text"]
    assert body["blocks"] == [{"type": "section", "text": {"type": "mrkdwn", "text": body["text"]}}]
    assert "X-TrustGate-Signature" not in out.headers and out.url == URL


def test_an_anomaly_says_the_hour_and_its_limit() -> None:
    out = outgoing({"type": "slack", "url": URL}, _facts(kind="anomaly", threshold=100), NOW)
    assert "above $100.00" in json.loads(out.body)["text"]


def test_amounts_under_a_dollar_keep_four_significant_digits() -> None:
    small = _facts(observed=Decimal("0.0000756"), limit=Decimal("0.000050000000"))
    out = outgoing({"type": "slack", "url": URL}, small, NOW)
    assert "$0.0000756 of $0.00005" in json.loads(out.body)["text"]
