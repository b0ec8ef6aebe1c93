"""One proxied call, as recorded along the hot path, and the request event made from it.

The hot path only sets attributes on a ``Call`` (slots, no validation); the event payload
(the ``RequestEvent`` contract of ``trustgate_core.events.requests``) is built later, by the
publisher's background task, which also prices the call when no policy did.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from trustgate_core.events.requests import REQUEST_SCHEMA_VERSION
from trustgate_core.pricing import Cost, PriceBook, cost_of


class AttemptRecord:
    """One upstream attempt of a call, in order: where it went (``model``: the model the
    route sent), how it ended (``success`` | ``retryable`` | ``terminal``), the upstream
    status (0: no answer), how long it took, its number (1-based) and whether it came from
    the fallback chain."""

    __slots__ = (
        "attempt",
        "fallback",
        "latency",
        "model",
        "outcome",
        "provider",
        "registry_id",
        "status",
    )

    def __init__(
        self,
        registry_id: UUID,
        provider: str,
        model: str | None,
        outcome: str,
        status: int,
        latency: float,
        attempt: int = 1,
        fallback: bool = False,
    ) -> None:
        self.registry_id = registry_id
        self.provider = provider
        self.model = model
        self.outcome = outcome
        self.status = status
        self.latency = latency  # seconds
        self.attempt = attempt
        self.fallback = fallback


class PolicyRecord(Protocol):
    """One policy's decision on a call, as the policy engine records it: ``decision`` is
    ``block`` | ``observe`` | ``throttle`` | ``pass``, ``latency`` in seconds,
    ``status_code`` 0 when the policy answered nothing, ``error`` why it failed."""

    @property
    def policy_id(self) -> UUID | None: ...
    @property
    def name(self) -> str: ...
    @property
    def plugin(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def decision(self) -> str: ...
    @property
    def latency(self) -> float: ...
    @property
    def status_code(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    def as_event(self) -> dict[str, Any]:
        """Its entry in the request event's ``policy_chain``."""
        ...


_NO_POLICIES: tuple[PolicyRecord, ...] = ()


class Call:
    __slots__ = (
        "attempts",
        "auth_id",
        "body_limit",
        "cache_outcome",
        "cache_similarity",
        "consumer_id",
        "cost",
        "ended",
        "error_kind",
        "gateway_id",
        "method",
        "model",
        "path",
        "policies_time",
        "policy_chain",
        "provider",
        "registry_id",
        "request_body",
        "request_bytes",
        "requested_model",
        "response_body",
        "response_bytes",
        "session_id",
        "started",
        "started_wall",
        "status",
        "stream",
        "subject",
        "tenant_id",
        "trace_id",
        "upstream_end",
        "upstream_start",
        "upstream_ttfb",
        "usage",
    )

    def __init__(
        self, trace_id: str, method: str, path: str, started: float, started_wall: float
    ) -> None:
        self.trace_id = trace_id
        self.method = method
        self.path = path
        self.started = started  # perf_counter seconds
        self.started_wall = started_wall  # epoch seconds
        self.ended = 0.0
        self.gateway_id: UUID | None = None
        self.tenant_id: str | None = None
        self.consumer_id: UUID | None = None
        self.registry_id: UUID | None = None
        self.auth_id: UUID | None = None
        self.subject: str | None = None  # a bearer token's subject_claim (not for API keys)
        self.provider: str | None = None
        self.requested_model: str | None = None
        self.model: str | None = None
        self.status = 0
        self.stream = False
        self.error_kind: str | None = None
        self.upstream_start = 0.0
        self.upstream_ttfb = 0.0
        self.upstream_end = 0.0
        self.usage: dict[str, Any] | None = None
        self.cost: Cost | None = None  # set by a policy that prices with its own rates
        # the engine assigns its own list; a call without policies shares the empty tuple
        self.policy_chain: Sequence[PolicyRecord] = _NO_POLICIES
        # the semantic cache's outcome (hit | miss | bypass | error) and a hit's similarity
        self.cache_outcome: str | None = None
        self.cache_similarity: float | None = None
        self.policies_time = 0.0  # seconds spent running policies inline
        self.attempts: list[AttemptRecord] = []
        self.session_id: str | None = None  # the conversation (X-Session-Id)
        self.request_bytes = 0
        self.response_bytes = 0
        # body capture, only when the gateway's telemetry asks (then references, cut later)
        self.body_limit = 0
        self.request_body: bytes | None = None
        self.response_body: bytes | None = None


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def call_cost(call: Call) -> Cost | None:
    """The call's cost: a policy's, else the catalog's (kept on the call: the event and
    the metrics both read it); ``None`` for an unpriced model or a call without usage."""
    cost = call.cost
    if cost is None and call.usage and call.model:
        price = PriceBook.default().price(call.model, call.provider)
        if price is not None:
            cost = call.cost = cost_of(call.usage, price)
    return cost


#: what a call answered from the semantic cache cost upstream: nothing (in USD, like
#: every priced call, so governance sums add it as 0, not as unknown)
CACHE_HIT_COST = Cost(prompt_usd=0.0, completion_usd=0.0, cached_usd=0.0, total_usd=0.0)


def _cost(call: Call) -> dict[str, Any] | None:
    if call.cache_outcome == "hit" and not call.attempts:  # served from the cache
        return CACHE_HIT_COST.as_event()
    if not call.usage:
        return None
    cost = call_cost(call)
    return None if cost is None else cost.as_event()


def _attempt(record: AttemptRecord) -> dict[str, Any]:
    return {
        "registry_id": record.registry_id,
        "provider": record.provider,
        "attempt": record.attempt,
        "fallback": record.fallback,
        "route_model": record.model,
        "outcome": record.outcome,
        "status_code": record.status or None,
        "latency_ms": _ms(record.latency),
    }


def event_payload(call: Call) -> dict[str, Any]:
    """The ``RequestEvent`` of a finished call, as a mapping orjson encodes directly."""
    total = max(0.0, call.ended - call.started)
    policies = call.policies_time
    upstream: float | None = None
    ttfb: float | None = None
    if call.upstream_start:
        if call.upstream_end:
            upstream = max(0.0, call.upstream_end - call.upstream_start)
        if call.upstream_ttfb:
            ttfb = max(0.0, call.upstream_ttfb - call.upstream_start)
    attempts = call.attempts
    payload = {
        "schema_version": REQUEST_SCHEMA_VERSION,
        "kind": "llm",
        "trace_id": call.trace_id,
        "gateway_id": call.gateway_id,
        "tenant_id": call.tenant_id,
        "consumer_id": call.consumer_id,
        "registry_id": call.registry_id,
        "auth_id": call.auth_id,
        "subject": call.subject,
        "method": call.method,
        "path": call.path,
        "provider": call.provider,
        "requested_model": call.requested_model,
        "model": call.model,
        "status": call.status,
        "stream": call.stream,
        "error_kind": call.error_kind,
        "timings": {
            "total_ms": _ms(total),
            "upstream_ttfb_ms": None if ttfb is None else _ms(ttfb),
            "upstream_ms": None if upstream is None else _ms(upstream),
            "gateway_ms": _ms(max(0.0, total - (upstream or 0.0) - policies)),
            "policies_ms": _ms(policies) if policies or call.policy_chain else None,
        },
        "usage": call.usage,
        "cost": _cost(call),
        "policy_chain": [r.as_event() for r in call.policy_chain] if call.policy_chain else [],
        "sizes": {"request_bytes": call.request_bytes, "response_bytes": call.response_bytes},
        "started_at": datetime.fromtimestamp(call.started_wall, UTC),
        "ended_at": datetime.fromtimestamp(call.started_wall + total, UTC),
        "attempts": [_attempt(a) for a in attempts],
        "outcome": attempts[-1].outcome if attempts else None,
        "session_id": call.session_id,
    }
    if call.cache_outcome is not None:
        payload["cache"] = {"outcome": call.cache_outcome, "similarity": call.cache_similarity}
    if call.body_limit:
        for name, body in (("request", call.request_body), ("response", call.response_body)):
            if body is not None:
                cut = len(body) > call.body_limit
                payload[f"{name}_body"] = body[: call.body_limit].decode("utf-8", "ignore")
                payload[f"{name}_body_truncated"] = cut
    return payload
