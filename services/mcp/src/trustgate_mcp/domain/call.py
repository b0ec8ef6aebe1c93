"""One MCP call (``tools/call``, ``resources/read``, ``prompts/get``) as recorded along
the request path, and the request event (``kind: mcp``) made from it.

The request path only sets attributes (slots, no validation); the payload, a plain dict
orjson encodes, is built by the publisher's background task."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from trustgate_core.events.requests import REQUEST_SCHEMA_VERSION
from trustgate_core.observability.tracing import format_traceparent

# the methods that are calls (one request event each); the rest are the handshake, lists
CALL_METHODS = frozenset(("tools/call", "resources/read", "prompts/get"))


class McpCall:
    __slots__ = (
        "auth_id",
        "consumer_id",
        "ended",
        "error_kind",
        "gateway_id",
        "is_error",
        "method",
        "policies_time",
        "policy_chain",
        "registry_id",
        "request_bytes",
        "response_bytes",
        "rpc_error_code",
        "server",
        "session_id",
        "started",
        "started_wall",
        "status",
        "subject",
        "tenant_id",
        "tool",
        "trace_id",
        "upstream_end",
        "upstream_start",
        "upstream_tool",
    )

    def __init__(self, trace_id: str, method: str, started: float, started_wall: float) -> None:
        self.trace_id = trace_id
        self.method = method  # the JSON-RPC method
        self.started = started  # perf_counter
        self.started_wall = started_wall
        self.ended = started
        self.gateway_id: UUID | None = None
        self.tenant_id: str | None = None
        self.consumer_id: UUID | None = None
        self.auth_id: UUID | None = None
        self.subject: str | None = None
        self.registry_id: UUID | None = None
        self.server: str | None = None  # the registry's name
        self.tool: str | None = None  # the name (or URI) the client used
        self.upstream_tool: str | None = None
        self.is_error = False
        self.rpc_error_code: int | None = None
        self.status = 200
        self.error_kind: str | None = None
        self.upstream_start = 0.0
        self.upstream_end = 0.0
        self.policies_time = 0.0
        self.policy_chain: list[Any] = []  # PolicyRecord
        self.request_bytes = 0
        self.response_bytes = 0
        self.session_id: str | None = None  # the session's nonce, not its sealed id


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def event_payload(call: McpCall) -> dict[str, Any]:
    """The ``RequestEvent`` of a finished call, as a mapping orjson encodes directly."""
    total = max(0.0, call.ended - call.started)
    upstream: float | None = None
    if call.upstream_start:
        upstream = max(0.0, (call.upstream_end or call.ended) - call.upstream_start)
    policies = call.policies_time
    return {
        "schema_version": REQUEST_SCHEMA_VERSION,
        "kind": "mcp",
        "trace_id": call.trace_id,
        "gateway_id": call.gateway_id,
        "tenant_id": call.tenant_id,
        "consumer_id": call.consumer_id,
        "registry_id": call.registry_id,
        "auth_id": call.auth_id,
        "subject": call.subject,
        "method": "POST",
        "path": "/mcp",
        "provider": "mcp",
        "status": call.status,
        "error_kind": call.error_kind,
        "timings": {
            "total_ms": _ms(total),
            "upstream_ms": None if upstream is None else _ms(upstream),
            "gateway_ms": _ms(max(0.0, total - (upstream or 0.0) - policies)),
            "policies_ms": _ms(policies) if policies or call.policy_chain else None,
        },
        "policy_chain": [r.as_event() for r in call.policy_chain],
        "sizes": {"request_bytes": call.request_bytes, "response_bytes": call.response_bytes},
        "started_at": datetime.fromtimestamp(call.started_wall, UTC),
        "ended_at": datetime.fromtimestamp(call.started_wall + total, UTC),
        "session_id": call.session_id,
        "mcp": {
            "method": call.method,
            "tool": call.tool,
            "upstream_tool": call.upstream_tool,
            "server": call.server,
            "is_error": call.is_error,
            "rpc_error_code": call.rpc_error_code,
        },
    }


def call_traceparent(call: McpCall, sampled: bool = True) -> str:
    """The event's ``traceparent``: the call's trace, a span id derived from it."""
    return format_traceparent(call.trace_id, call.trace_id[:16], sampled)
