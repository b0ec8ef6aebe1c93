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
from typing import Any, Literal
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
    # a policy refused the call
    "policy_rejected",
    "rate_limited",
    "rate_limit_unavailable",  # the limit's counters were unreachable and it fails closed
    "token_budget_exceeded",
    "dollar_budget_exceeded",
    "model_too_expensive",
    "length_required",
    "request_too_large",
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
    """Milliseconds. ``gateway_ms`` = total - upstream - policies (never negative);
    ``policies_ms`` is the time the policies ran inline (``None``: none ran)."""

    total_ms: float
    upstream_ttfb_ms: float | None = None
    upstream_ms: float | None = None
    gateway_ms: float
    policies_ms: float | None = None


class RequestUsage(_Frozen):
    """Token usage as the upstream reported it (streams included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None
    cache_write_tokens: int | None = None  # prompt tokens written to a cache (Anthropic, Bedrock)


class RequestCost(_Frozen):
    """What the call cost, from the models catalog or a policy's custom pricing.
    ``cached_usd`` prices cache reads when the model prices them apart (else they are in
    ``prompt_usd``); ``total_usd`` = prompt + completion + cached."""

    prompt_usd: float
    completion_usd: float
    cached_usd: float = 0.0
    total_usd: float
    currency: str = "USD"


PolicyOutcome = Literal["block", "observe", "throttle", "pass"]


class PolicyDecision(_Frozen):
    """One policy run on the call, in the order they ran. ``observe``: the policy would have
    blocked, but its mode only records it; ``throttle``: it delayed the call."""

    policy_id: UUID | None = None
    name: str
    plugin: str
    stage: str
    decision: PolicyOutcome | str  # one of PolicyOutcome, or a newer one
    latency_ms: float
    status_code: int | None = None  # the status a block answered with
    error: str | None = None  # why the policy failed (its on_error decided the outcome)


AttemptOutcome = Literal["success", "retryable", "terminal"]


class RequestAttempt(_Frozen):
    """One upstream attempt of the call, in the order they were made: where it went
    (``route_model``: the model that route sent), how it ended (``success``: relayed;
    ``retryable``: a transport error, 5xx, 429 or 408, so another attempt may have
    followed; ``terminal``: relayed as it was), the upstream's status (``None``: no
    answer), how long it took, its number (1-based) and whether the fallback chain
    chose it."""

    registry_id: UUID
    provider: str
    attempt: int
    fallback: bool = False
    route_model: str | None = None
    outcome: AttemptOutcome | str  # one of AttemptOutcome, or a newer one
    status_code: int | None = None
    latency_ms: float


class RequestSizes(_Frozen):
    request_bytes: int = 0
    response_bytes: int = 0


class McpCallDetails(_Frozen):
    """What an MCP call (``kind: mcp``) did: the JSON-RPC ``method`` (``tools/call``,
    ``resources/read``, ``prompts/get``), the name the client used (``tool``: the exposed
    tool or prompt name, or the resource URI) and the upstream's own (``upstream_tool``),
    the server (the registry's name; its id is the event's ``registry_id``), whether the
    upstream said the tool failed (``is_error``: a result with ``isError``) and the
    JSON-RPC error code the client got (``rpc_error_code``: ``None`` on success)."""

    method: str
    tool: str | None = None
    upstream_tool: str | None = None
    server: str | None = None
    is_error: bool = False
    rpc_error_code: int | None = None


class RequestCache(_Frozen):
    """What the semantic cache did with the call: ``hit`` (served from the cache, no
    upstream call), ``miss``, ``bypass`` (asked not to, or not cacheable) or ``error``
    (the cache could not answer in time: served uncached); ``similarity`` of a hit (1.0
    for an exact one)."""

    outcome: Literal["hit", "miss", "bypass", "error"] | str
    similarity: float | None = None


class RequestReceipt(_Frozen):
    """The call's usage receipt, when its gateway has ``governance.receipts`` on
    (docs/governance-receipts.md): ``record`` (the canonical usage record, kept exactly as
    signed: readers must not reshape it) signed with the gateway's Ed25519 key ``kid``;
    ``sig`` is base64url. ``trustgate receipts verify`` checks it against the event."""

    v: int = 1
    alg: str = "EdDSA"
    kid: str
    record: dict[str, Any]
    sig: str


class RequestEvent(_Frozen):
    schema_version: int = REQUEST_SCHEMA_VERSION
    kind: Literal["llm", "mcp"] = "llm"
    trace_id: str
    gateway_id: UUID
    tenant_id: str | None = None
    consumer_id: UUID | None = None
    registry_id: UUID | None = None
    auth_id: UUID | None = None
    # who a bearer token names (its auth's ``subject_claim``, ``sub`` by default); None
    # for API keys
    subject: str | None = None
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
    cost: RequestCost | None = None  # None: the model has no known price, or no usage
    policy_chain: list[PolicyDecision] = []
    sizes: RequestSizes = RequestSizes()
    started_at: datetime
    ended_at: datetime
    # Only when the gateway's telemetry asks for bodies (``capture_bodies`` or an exporter
    # of ``class: raw``), already cut to its ``max_body_bytes`` (UTF-8, lossy).
    request_body: str | None = None
    response_body: str | None = None
    request_body_truncated: bool = False
    response_body_truncated: bool = False
    # every upstream attempt, in order (empty: the call never reached an upstream)
    attempts: list[RequestAttempt] = []
    # the last attempt's outcome (``None``: no attempt was made)
    outcome: AttemptOutcome | str | None = None
    # the conversation the call belongs to (``X-Session-Id`` or the gateway's
    # ``session_config``)
    session_id: str | None = None
    # ``kind: mcp`` only: the MCP call
    mcp: McpCallDetails | None = None
    # only when a ``semantic_cache`` policy ran
    cache: RequestCache | None = None
    # only when the gateway's ``governance.receipts`` is on: the signed usage record
    receipt: RequestReceipt | None = None

    @property
    def ok(self) -> bool:
        return self.error_kind is None and 200 <= self.status < 300


def decode_request_event(data: bytes | str) -> RequestEvent:
    return RequestEvent.model_validate_json(data)
