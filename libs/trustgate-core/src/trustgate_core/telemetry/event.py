"""The exported event: what telemetry writes to Kafka (and OTLP) for every request.

A public contract like the bus payloads: frozen, versioned by ``schema_version``
(`EXPORT_SCHEMA_VERSION`), evolved only by adding fields; readers ignore fields they do not
know. Its JSON Schema ships beside this module (``exported_event.schema.json``, generated
from the model; a test keeps them equal) and in the AsyncAPI document.

It is a *sanitized* business event built from the proxy's `RequestEvent`: ids, the route,
status, timings, token usage, cost and the policies' decisions. It never carries an API key, a provider credential or a
request header. ``request.body`` and ``response.body`` are present only when the gateway's
telemetry settings ask for bodies (``capture_bodies`` or an exporter of ``class: raw``), and
then truncated to ``max_body_bytes`` (``*.body_truncated`` says when they were cut).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal, cast
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from trustgate_core.events.requests import (
    McpCallDetails,
    RequestCache,
    RequestEvent,
    RequestReceipt,
)

EXPORT_SCHEMA_VERSION = 1
SCHEMA_FILE = "exported_event.schema.json"

Outcome = Literal["success", "retryable", "terminal"]

_OUTCOMES = frozenset(Outcome.__args__)  # type: ignore[attr-defined]
_TIMEOUT_KINDS = {"upstream_timeout"}
_RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class ExportedStatus(_Frozen):
    code: int = Field(description="HTTP status the client received (499: it went away)")
    is_timeout: bool = Field(description="408/504, or the upstream timed out")
    outcome: Outcome = Field(description="success, retryable or terminal")
    reason: str | None = Field(None, description="the proxy's error kind, when not a success")


class ExportedRequest(_Frozen):
    method: str
    path: str = Field(description="the proxied route, e.g. /v1/chat/completions")
    provider: str | None = None
    registry_id: UUID | None = None
    model: str | None = Field(None, description="the model sent upstream")
    requested_model: str | None = Field(None, description="the model the client asked for")
    stream: bool = False
    bytes: int = 0
    body: str | None = Field(None, description="present only when the gateway asks for bodies")
    body_truncated: bool = False


class ExportedResponse(_Frozen):
    status_code: int
    latency_ms: float
    bytes: int = 0
    body: str | None = Field(None, description="present only when the gateway asks for bodies")
    body_truncated: bool = False


class ExportedUsage(_Frozen):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


class ExportedCost(_Frozen):
    prompt_usd: float = Field(description="prompt tokens not read from a cache")
    completion_usd: float
    cached_usd: float = Field(0.0, description="cache reads, when priced apart")
    total_usd: float
    currency: str = "USD"


class ExportedPolicyDecision(_Frozen):
    policy_id: UUID | None = None
    name: str
    plugin: str
    stage: str
    decision: str = Field(description="block, observe, throttle or pass")
    latency_ms: float
    status_code: int | None = Field(None, description="the status a block answered with")
    error: str | None = None


class ExportedAttempt(_Frozen):
    registry_id: UUID
    provider: str
    attempt: int = Field(description="1-based, in the order the attempts were made")
    fallback: bool = Field(False, description="the fallback chain chose this route")
    route_model: str | None = Field(None, description="the model this route sent")
    outcome: str = Field(description="success, retryable or terminal")
    status_code: int | None = Field(None, description="the upstream's status (none: no answer)")
    latency_ms: float


class ExportedLatency(_Frozen):
    total_ms: float
    provider_ms: float | None = None
    provider_ttfb_ms: float | None = None
    gateway_ms: float = Field(description="total - provider - policies, never negative")
    policies_ms: float | None = Field(None, description="time the policies ran inline")


class ExportedConsumer(_Frozen):
    id: UUID | None = None


class ExportedEvent(_Frozen):
    """One proxied request, as telemetry exports it."""

    schema_version: int = EXPORT_SCHEMA_VERSION
    kind: Literal["llm", "mcp"] = "llm"
    trace_id: str = Field(description="32 hex digits; also the bus message id")
    gateway_id: UUID
    tenant_id: str | None = None
    consumer: ExportedConsumer = ExportedConsumer()
    auth_id: UUID | None = Field(None, description="the consumer key's id (never the key)")
    subject: str | None = Field(
        None, description="who a bearer token names (its auth's subject_claim); not for keys"
    )
    timestamp: datetime = Field(description="when the request arrived (RFC 3339, UTC)")
    end_timestamp: datetime
    status: ExportedStatus
    request: ExportedRequest
    response: ExportedResponse
    usage: ExportedUsage | None = None
    cost: ExportedCost | None = Field(None, description="absent when the model has no price")
    policy_chain: list[ExportedPolicyDecision] = Field(
        default_factory=list, description="the policies that ran, in order"
    )
    latency: ExportedLatency
    session_id: str | None = Field(None, description="the conversation (X-Session-Id)")
    attempts: list[ExportedAttempt] = Field(
        default_factory=list, description="every upstream attempt, in order"
    )
    mcp: McpCallDetails | None = Field(
        None, description="kind mcp only: the method, tool, server and JSON-RPC outcome"
    )
    cache: RequestCache | None = Field(
        None, description="a semantic_cache policy's outcome (hit, miss, bypass, error)"
    )
    receipt: RequestReceipt | None = Field(
        None,
        description="the signed usage record, when the gateway's governance.receipts is on;"
        " `trustgate receipts verify` checks it against this event",
    )


def clip(text: str | None, limit: int) -> tuple[str | None, bool]:
    """The first ``limit`` bytes of ``text`` (UTF-8, never a broken character), and whether
    it was cut."""
    if text is None:
        return None, False
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", "ignore"), True


def outcome_of(event: RequestEvent) -> Outcome:
    """The last upstream attempt's outcome; for a call that made none (refused by the
    gateway or a policy, or from a proxy that records no attempts), one read from its
    status."""
    if event.outcome in _OUTCOMES:
        return cast(Outcome, event.outcome)
    if event.ok:
        return "success"
    if event.status in _RETRYABLE_STATUSES or event.error_kind in _TIMEOUT_KINDS:
        return "retryable"
    return "terminal"


def export_event(event: RequestEvent, *, max_body_bytes: int | None = None) -> ExportedEvent:
    """The sanitized event of a request event. Bodies the proxy attached are kept (cut to
    ``max_body_bytes`` when given)."""
    limit = max_body_bytes if max_body_bytes is not None else 1 << 62
    request_body, request_cut = clip(event.request_body, limit)
    response_body, response_cut = clip(event.response_body, limit)
    timings = event.timings
    return ExportedEvent(
        kind=event.kind,
        trace_id=event.trace_id,
        gateway_id=event.gateway_id,
        tenant_id=event.tenant_id,
        consumer=ExportedConsumer(id=event.consumer_id),
        auth_id=event.auth_id,
        subject=event.subject,
        timestamp=event.started_at,
        end_timestamp=event.ended_at,
        status=ExportedStatus(
            code=event.status,
            is_timeout=event.status in (408, 504) or event.error_kind in _TIMEOUT_KINDS,
            outcome=outcome_of(event),
            reason=event.error_kind,
        ),
        request=ExportedRequest(
            method=event.method,
            path=event.path,
            provider=event.provider,
            registry_id=event.registry_id,
            model=event.model,
            requested_model=event.requested_model,
            stream=event.stream,
            bytes=event.sizes.request_bytes,
            body=request_body,
            body_truncated=request_cut or event.request_body_truncated,
        ),
        response=ExportedResponse(
            status_code=event.status,
            latency_ms=timings.total_ms,
            bytes=event.sizes.response_bytes,
            body=response_body,
            body_truncated=response_cut or event.response_body_truncated,
        ),
        usage=None if event.usage is None else ExportedUsage(**event.usage.model_dump()),
        cost=None if event.cost is None else ExportedCost(**event.cost.model_dump()),
        policy_chain=[ExportedPolicyDecision(**d.model_dump()) for d in event.policy_chain],
        latency=ExportedLatency(
            total_ms=timings.total_ms,
            provider_ms=timings.upstream_ms,
            provider_ttfb_ms=timings.upstream_ttfb_ms,
            gateway_ms=timings.gateway_ms,
            policies_ms=timings.policies_ms,
        ),
        session_id=event.session_id,
        attempts=[ExportedAttempt(**a.model_dump()) for a in event.attempts],
        mcp=event.mcp,
        cache=event.cache,
        receipt=event.receipt,
    )


def generate_json_schema() -> dict[str, Any]:
    """The JSON Schema of `ExportedEvent` as the code defines it (what the file must hold)."""
    schema = ExportedEvent.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:trustgate:exported-event:v{EXPORT_SCHEMA_VERSION}"
    return schema


def render_json_schema() -> str:
    return json.dumps(generate_json_schema(), indent=2, sort_keys=True) + "\n"


@cache
def exported_event_json_schema() -> dict[str, Any]:
    """The shipped JSON Schema file of the exported event."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
