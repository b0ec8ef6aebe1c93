"""A request's audit entry: its metadata, never its bodies, keys, headers or secrets.

``kind`` and ``operation`` are ``request``; ``actor`` is ``proxy`` (the plane that served
it: who called is ``details.consumer_id`` / ``details.subject``); ``entity_id`` is the
consumer (null when the call was refused before one was known); ``revision`` is null;
``occurred_at`` is when the request ended. Decimals (the cost) are strings and times
canonical, so the entry hashes the same after a round trip through Postgres.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from trustgate_admin.governance.chain_append import NewEntry
from trustgate_admin.governance.chain_hash import canonical_time
from trustgate_core.events.requests import RequestEvent
from trustgate_core.ids import uuid7

REQUEST_KIND = "request"
REQUEST_ACTOR = "proxy"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _decimal(value: float) -> str:
    """A float as plain decimal text (``1e-07`` → ``0.0000001``)."""
    return format(Decimal(repr(value)), "f")


def _id(value: UUID | None) -> str | None:
    return str(value) if value is not None else None


def request_details(event: RequestEvent) -> dict[str, Any]:
    """What the entry records of ``event`` (fields without a value are left out)."""
    usage = event.usage.model_dump(exclude_none=True) if event.usage is not None else None
    details: dict[str, Any] = {
        "trace_id": event.trace_id,
        "request_kind": event.kind,
        "consumer_id": _id(event.consumer_id),
        "registry_id": _id(event.registry_id),
        "auth_id": _id(event.auth_id),
        "subject": event.subject,
        "method": event.method,
        "path": event.path.split("?", 1)[0],  # a query string may carry a key
        "provider": event.provider,
        "requested_model": event.requested_model,
        "model": event.model,
        "status": event.status,
        "stream": event.stream,
        "error_kind": event.error_kind,
        "usage": usage,
        "cost_usd": _decimal(event.cost.total_usd) if event.cost is not None else None,
        "currency": event.cost.currency if event.cost is not None else None,
        "cache": event.cache.outcome if event.cache is not None else None,
        "fallback": any(attempt.fallback for attempt in event.attempts),
        "attempts": len(event.attempts),
        "started_at": canonical_time(_aware(event.started_at)),
        "ended_at": canonical_time(_aware(event.ended_at)),
    }
    if event.mcp is not None:
        details["mcp"] = event.mcp.model_dump(
            include={"method", "tool", "server", "is_error"}, exclude_none=True
        )
    return {name: value for name, value in details.items() if value is not None}


def request_entry(event: RequestEvent, tenant_id: str | None) -> NewEntry:
    """The audit entry of ``event`` (``tenant_id``: its gateway's tenant)."""
    return NewEntry(
        id=uuid7(),
        occurred_at=_aware(event.ended_at),
        actor=REQUEST_ACTOR,
        tenant_id=tenant_id,
        gateway_id=event.gateway_id,
        kind=REQUEST_KIND,
        entity_id=event.consumer_id,
        operation=REQUEST_KIND,
        revision=None,
        details=request_details(event),
    )
