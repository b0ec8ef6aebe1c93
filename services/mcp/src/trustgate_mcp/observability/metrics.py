"""The MCP plane's Prometheus metrics (operations port only):
``trustgate_mcp_requests_total{gateway_id,method,outcome}``, the histograms
``trustgate_mcp_request_duration_seconds`` and ``trustgate_mcp_upstream_duration_seconds``
by ``gateway_id,method`` (the upstream one for calls that reached an upstream), and
values read at scrape time (sessions initialized, upstream sessions opened again, request
events published and dropped, config readiness).

Labels are bounded: ``method`` is one the plane knows (else ``other``), ``outcome`` one
of a few words, and each metric caps its label sets."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from trustgate_core.observability.metrics import (
    Aggregates,
    CappedCounter,
    CappedHistogram,
    render,
)

KNOWN_METHODS = frozenset(
    (
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "notification",
        "delete",
    )
)


class McpMetrics:
    def __init__(self) -> None:
        self.aggregates = Aggregates()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.aggregates)
        self.requests = self.aggregates.add(
            CappedCounter(
                "trustgate_mcp_requests_total",
                "MCP requests answered, by JSON-RPC method and outcome (ok; limited and"
                " blocked: a policy refused it, -32004 and -32001; error: another JSON-RPC"
                " error answer; refused: an HTTP error before any method ran).",
                ("gateway_id", "method", "outcome"),
            )
        )
        self.duration = self.aggregates.add(
            CappedHistogram(
                "trustgate_mcp_request_duration_seconds",
                "Time to answer an MCP request.",
                ("gateway_id", "method"),
            )
        )
        self.upstream = self.aggregates.add(
            CappedHistogram(
                "trustgate_mcp_upstream_duration_seconds",
                "Time the upstream MCP server took on a call.",
                ("gateway_id", "method"),
            )
        )

    def observe(
        self, gateway_id: str, method: str, outcome: str, seconds: float, upstream: float | None
    ) -> None:
        method = method if method in KNOWN_METHODS else "other"
        self.requests.inc((gateway_id, method, outcome))
        self.duration.observe((gateway_id, method), seconds)
        if upstream is not None:
            self.upstream.observe((gateway_id, method), upstream)

    def render(self) -> tuple[bytes, str]:
        return render(self.registry)
