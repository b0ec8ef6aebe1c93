"""The OTLP log record of an exported event: attributes and severity (pure, no SDK types).

One record per request, ``event.name=gateway.request``; attribute names follow the
OpenTelemetry semantic conventions where one exists (``http.*``, ``url.path``,
``gen_ai.*``) and ``trustgate.*`` otherwise. The policies that ran are flattened into
``trustgate.policies.decisions`` (``plugin=decision`` in order, comma-separated) and
``trustgate.policies.blocked_by`` (the blocking policy's name). An MCP call (``kind: mcp``)
adds ``mcp.method.name``, what it named (``gen_ai.tool.name`` for a tool call,
``mcp.resource.uri`` for a read, ``gen_ai.prompt.name`` for a prompt), the JSON-RPC error
code (``rpc.jsonrpc.error_code``) and ``trustgate.mcp.*`` (server, upstream tool,
``is_error``). Bodies appear (as ``trustgate.request.body``
and ``trustgate.response.body``) only when the event carries them, cut to the exporter's
``max_body_bytes``.
"""

from __future__ import annotations

from typing import Literal

from trustgate_core.telemetry.event import ExportedEvent, clip

EVENT_NAME = "gateway.request"

Severity = Literal["INFO", "WARN", "ERROR"]
AttributeValue = str | bool | int | float


def severity_of(status: int) -> Severity:
    """Info below 400, Warn for 4xx, Error for 5xx."""
    if status >= 500:
        return "ERROR"
    if status >= 400:
        return "WARN"
    return "INFO"


def log_attributes(event: ExportedEvent, max_body_bytes: int) -> dict[str, AttributeValue]:
    req, resp, latency = event.request, event.response, event.latency
    attrs: dict[str, AttributeValue] = {
        "event.name": EVENT_NAME,
        "http.request.method": req.method,
        "http.response.status_code": resp.status_code,
        "url.path": req.path,
        "trustgate.schema_version": event.schema_version,
        "trustgate.kind": event.kind,
        "trustgate.trace_id": event.trace_id,
        "trustgate.gateway_id": str(event.gateway_id),
        "trustgate.status.outcome": event.status.outcome,
        "trustgate.status.is_timeout": event.status.is_timeout,
        "trustgate.request.stream": req.stream,
        "trustgate.request.bytes": req.bytes,
        "trustgate.response.bytes": resp.bytes,
        "trustgate.latency.total_ms": latency.total_ms,
        "trustgate.latency.gateway_ms": latency.gateway_ms,
        "trustgate.timestamp": event.timestamp.isoformat(),
    }
    optional: dict[str, AttributeValue | None] = {
        "gen_ai.provider.name": req.provider,
        "gen_ai.request.model": req.requested_model or req.model,
        "gen_ai.response.model": req.model,
        "trustgate.tenant_id": event.tenant_id,
        "trustgate.consumer.id": None if event.consumer.id is None else str(event.consumer.id),
        "trustgate.registry_id": None if req.registry_id is None else str(req.registry_id),
        "trustgate.status.reason": event.status.reason,
        "trustgate.latency.provider_ms": latency.provider_ms,
        "trustgate.latency.provider_ttfb_ms": latency.provider_ttfb_ms,
        "trustgate.latency.policies_ms": latency.policies_ms,
    }
    if event.usage is not None:
        optional["gen_ai.usage.input_tokens"] = event.usage.prompt_tokens
        optional["gen_ai.usage.output_tokens"] = event.usage.completion_tokens
        optional["trustgate.usage.total_tokens"] = event.usage.total_tokens
        optional["trustgate.usage.cached_input_tokens"] = event.usage.cached_input_tokens
        optional["trustgate.usage.reasoning_output_tokens"] = event.usage.reasoning_output_tokens
    if event.cost is not None:
        optional["trustgate.cost.total_usd"] = event.cost.total_usd
    if event.policy_chain:
        chain = event.policy_chain
        optional["trustgate.policies.decisions"] = ",".join(
            f"{d.plugin}={d.decision}" for d in chain
        )
        optional["trustgate.policies.blocked_by"] = next(
            (d.name for d in chain if d.decision == "block"), None
        )
    if event.mcp is not None:
        optional.update(_mcp_attributes(event))
    for key, body in (
        ("trustgate.request.body", req.body),
        ("trustgate.response.body", resp.body),
    ):
        optional[key], _ = clip(body, max_body_bytes)
    attrs.update({k: v for k, v in optional.items() if v is not None})
    return attrs


_NAMED_BY = {
    "tools/call": "gen_ai.tool.name",
    "resources/read": "mcp.resource.uri",
    "prompts/get": "gen_ai.prompt.name",
}


def _mcp_attributes(event: ExportedEvent) -> dict[str, AttributeValue | None]:
    mcp = event.mcp
    assert mcp is not None
    attrs: dict[str, AttributeValue | None] = {
        "mcp.method.name": mcp.method,
        "rpc.jsonrpc.error_code": mcp.rpc_error_code,
        "trustgate.mcp.server": mcp.server,
        "trustgate.mcp.upstream_tool": mcp.upstream_tool,
        "trustgate.mcp.is_error": mcp.is_error,
    }
    named_by = _NAMED_BY.get(mcp.method)
    if named_by is not None:
        attrs[named_by] = mcp.tool
    return attrs
