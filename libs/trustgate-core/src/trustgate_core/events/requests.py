"""Request events: one per proxied call, on ``trustgate.requests.<gateway_id>``.

A public contract (architecture §2): versioned by ``schema_version``, frozen, evolved only
by adding fields; readers ignore fields they do not know. It carries ids (gateway,
consumer, registry, auth) and never a credential.

The proxy builds the payload as a plain mapping on its hot path and encodes it with
orjson; this model is what readers decode it with (``decode_request_event``), and the
proxy's tests check every payload it emits against it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

REQUEST_SCHEMA_VERSION = 1

ErrorKind = Literal[
    # the gateway refused the call
    "invalid_auth_request",
    "unauthenticated",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "invalid_request",
    "invalid_model",
    "model_not_allowed",
    "no_backend_available",
    "provider_credential_error",
    "unavailable",
    # the upstream failed
    "upstream_status",  # a non-2xx answer, relayed to the client
    "upstream_connect",  # no connection, or it broke before the answer's headers
    "upstream_timeout",
    "stream_interrupted",  # the upstream stream broke after the first byte
    "upstream_stream_error",  # the upstream's stream reported an error, or was corrupt
    "upstream_malformed",  # a 2xx answer that is not the provider's format (translated calls)
    "backend_error",  # any other upstream failure before the answer
    # the client went away
    "client_disconnected",
    "internal_error",
]


# The kinds this version emits. Readers must accept others: a newer proxy may add kinds,
# and an event is never refused (and so never lost by a consumer) for naming one.
ERROR_KINDS: frozenset[str] = frozenset(ErrorKind.__args__)  # type: ignore[attr-defined]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class RequestTimings(_Frozen):
    """Milliseconds. ``gateway_ms`` = total - upstream (never negative)."""

    total_ms: float
    upstream_ttfb_ms: float | None = None
    upstream_ms: float | None = None
    gateway_ms: float


class RequestUsage(_Frozen):
    """Token usage as the upstream reported it (streams included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    cache_write_tokens: int | None = None  # prompt tokens written to a cache (Anthropic, Bedrock)


class RequestSizes(_Frozen):
    request_bytes: int = 0
    response_bytes: int = 0


class RequestEvent(_Frozen):
    schema_version: int = REQUEST_SCHEMA_VERSION
    kind: Literal["llm", "mcp"] = "llm"
    trace_id: str
    gateway_id: UUID
    tenant_id: str | None = None
    consumer_id: UUID | None = None
    registry_id: UUID | None = None
    auth_id: UUID | None = None
    method: str
    path: str
    provider: str | None = None
    requested_model: str | None = None
    model: str | None = None
    status: int
    stream: bool = False
    error_kind: ErrorKind | str | None = None  # one of ERROR_KINDS, or a newer kind
    timings: RequestTimings
    usage: RequestUsage | None = None
    sizes: RequestSizes = RequestSizes()
    started_at: datetime
    ended_at: datetime
    # Only when the gateway's telemetry asks for bodies (``capture_bodies`` or an exporter
    # of ``class: raw``), already cut to its ``max_body_bytes`` (UTF-8, lossy).
    request_body: str | None = None
    response_body: str | None = None
    request_body_truncated: bool = False
    response_body_truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error_kind is None and 200 <= self.status < 300


def decode_request_event(data: bytes | str) -> RequestEvent:
    return RequestEvent.model_validate_json(data)
