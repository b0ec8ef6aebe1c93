"""The usage record a receipt signs, and its canonical bytes.

The record names the call (trace, gateway, tenant, consumer, kind), where it went
(provider, model), how it ended (status, error kind), what it used (prompt, completion,
total and cached tokens), what it cost (``total_usd`` as a decimal string, currency) and
when (``started_at``/``ended_at``: UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``). It holds strings,
integers, ``null`` and objects only, never a float, so its canonical form is
unambiguous.

Canonical bytes (RFC 8785, JCS, restricted to what a record holds): JSON with the object
keys sorted, no whitespace, strings escaped as JSON requires (``"``, ``\\``, control
characters; anything else as UTF-8), integers in decimal, UTF-8 encoded. The record's keys
are ASCII, so sorting by code point (Python) and by UTF-16 unit (RFC 8785) agree.

One record builder serves the proxy (a payload mapping holding UUIDs, datetimes and
floats) and the verifier (a JSON-decoded request event, or an exported event): each value
is normalized the same way, so a record rebuilt from an event equals the one signed
unless the event was changed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

#: The record's keys, for readers that compare a receipt's record with its event.
RECORD_KEYS = (
    "trace_id",
    "gateway_id",
    "tenant_id",
    "consumer_id",
    "kind",
    "provider",
    "model",
    "status",
    "error_kind",
    "usage",
    "cost",
    "started_at",
    "ended_at",
)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The bytes a receipt's signature covers (see the module docstring). A float anywhere
    in ``record`` is a ``TypeError``: its text form is not canonical."""
    _refuse_floats(record)
    # orjson's compact output with sorted keys is exactly this form (UTF-8, the short
    # escapes and lowercase \u00xx for control characters): a test holds it to
    # json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _refuse_floats(value: Any) -> None:
    if isinstance(value, float):
        raise TypeError("a usage record holds no floats")
    if isinstance(value, dict):  # orjson encodes dicts and lists only
        for item in value.values():
            _refuse_floats(item)
    elif isinstance(value, list):
        for item in value:
            _refuse_floats(item)


def record_of_request(event: Mapping[str, Any]) -> dict[str, Any]:
    """The usage record of a request event (``RequestEvent``'s fields: the proxy's payload
    mapping, or the event as JSON)."""
    return usage_record(
        trace_id=event.get("trace_id"),
        gateway_id=event.get("gateway_id"),
        tenant_id=event.get("tenant_id"),
        consumer_id=event.get("consumer_id"),
        kind=event.get("kind", "llm"),
        provider=event.get("provider"),
        model=event.get("model"),
        status=event.get("status"),
        error_kind=event.get("error_kind"),
        usage=event.get("usage"),
        cost=event.get("cost"),
        started_at=event.get("started_at"),
        ended_at=event.get("ended_at"),
    )


def record_of_exported(event: Mapping[str, Any]) -> dict[str, Any]:
    """The usage record of an exported event (``ExportedEvent`` as JSON: the telemetry
    file sink's lines, Kafka's values)."""
    consumer = event.get("consumer") or {}
    status = event.get("status") or {}
    request = event.get("request") or {}
    return usage_record(
        trace_id=event.get("trace_id"),
        gateway_id=event.get("gateway_id"),
        tenant_id=event.get("tenant_id"),
        consumer_id=consumer.get("id"),
        kind=event.get("kind", "llm"),
        provider=request.get("provider"),
        model=request.get("model"),
        status=status.get("code"),
        error_kind=status.get("reason"),
        usage=event.get("usage"),
        cost=event.get("cost"),
        started_at=event.get("timestamp"),
        ended_at=event.get("end_timestamp"),
    )


def is_exported(event: Mapping[str, Any]) -> bool:
    """Whether a decoded event is an exported event (its ``status`` is an object) rather
    than a request event (an integer)."""
    return isinstance(event.get("status"), Mapping)


def usage_record(
    *,
    trace_id: Any,
    gateway_id: Any,
    tenant_id: Any,
    consumer_id: Any,
    kind: Any,
    provider: Any,
    model: Any,
    status: Any,
    error_kind: Any,
    usage: Mapping[str, Any] | None,
    cost: Mapping[str, Any] | None,
    started_at: Any,
    ended_at: Any,
) -> dict[str, Any]:
    """The record, each value normalized: ids as text, counts as integers, the cost as a
    decimal string, times as UTC text."""
    return {
        "trace_id": _text(trace_id),
        "gateway_id": _text(gateway_id),
        "tenant_id": _text(tenant_id),
        "consumer_id": _text(consumer_id),
        "kind": _text(kind),
        "provider": _text(provider),
        "model": _text(model),
        "status": _count(status),
        "error_kind": _text(error_kind),
        "usage": None
        if usage is None
        else {
            "prompt_tokens": _count(usage.get("prompt_tokens") or 0),
            "completion_tokens": _count(usage.get("completion_tokens") or 0),
            "total_tokens": _count(usage.get("total_tokens") or 0),
            "cached_input_tokens": _count(usage.get("cached_input_tokens")),
        },
        "cost": None
        if cost is None
        else {
            "total_usd": decimal_text(cost.get("total_usd")),
            "currency": _text(cost.get("currency") or "USD"),
        },
        "started_at": utc_text(started_at),
        "ended_at": utc_text(ended_at),
    }


def decimal_text(amount: Any) -> str | None:
    """A USD amount as a plain decimal string: the float's shortest round-trip digits
    (``repr``), never an exponent (``1e-07`` is ``0.0000001``)."""
    if amount is None:
        return None
    if isinstance(amount, bool):
        raise TypeError("an amount is a number")
    exact = Decimal(repr(amount)) if isinstance(amount, float) else Decimal(str(amount))
    return format(exact, "f")


def utc_text(moment: Any) -> str | None:
    """A time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC (a datetime, or ISO 8601 text)."""
    if moment is None:
        return None
    when = moment if isinstance(moment, datetime) else datetime.fromisoformat(str(moment))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _count(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a count is a number")
    return int(value)
