"""The proxy's Prometheus metrics, aggregated from finished calls.

``trustgate_proxy_requests_total{gateway_id,consumer_id,model,status}``, the latency
histograms ``trustgate_proxy_request_duration_seconds`` (whole request),
``trustgate_proxy_upstream_duration_seconds`` and ``trustgate_proxy_overhead_duration_seconds``
(request minus upstream; both only for calls that reached an upstream) by
``gateway_id,model``, ``trustgate_proxy_tokens_total{gateway_id,consumer_id,model,type}``
(``type``: ``input``, ``output``, ``cached_input``), and values read at scrape time: the
request-event publisher's counters and queue, config events applied, readiness.

Labels are bounded: at most ``max_models`` distinct model names (later ones are
``other``) and a cap on label sets per metric (see `CappedCounter`). A missing value (no
gateway found, no model sent) is the empty string.
"""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from prometheus_client import CollectorRegistry

from trustgate_core.observability.metrics import (
    LATENCY_BUCKETS,
    OTHER,
    OVERHEAD_BUCKETS,
    Aggregates,
    CappedCounter,
    CappedHistogram,
    render,
)
from trustgate_proxy.domain.call import Call

_CALL_LABELS = ("gateway_id", "consumer_id", "model")
_STATUS = {code: str(code) for code in range(100, 600)}


class ProxyMetrics:
    """The registry and its aggregates. ``observe`` runs in the background, never on the
    request path; ``render`` on a scrape."""

    def __init__(
        self,
        *,
        max_series: int = 2000,
        max_models: int = 200,
        before_collect: Callable[[], None] | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.aggregates = Aggregates(before_collect)
        a = self.aggregates
        self.requests = a.add(
            CappedCounter(
                "trustgate_proxy_requests_total",
                "Requests handled, by gateway, consumer, model sent upstream and HTTP status.",
                (*_CALL_LABELS, "status"),
                max_series,
            )
        )
        self.tokens = a.add(
            CappedCounter(
                "trustgate_proxy_tokens_total",
                "Tokens the upstream reported, by type (input, output, cached_input).",
                (*_CALL_LABELS, "type"),
                max_series,
            )
        )
        hist_series = max(1, max_series // 4)
        self.duration = a.add(
            CappedHistogram(
                "trustgate_proxy_request_duration_seconds",
                "Whole request, from the first byte read to the last byte written.",
                ("gateway_id", "model"),
                LATENCY_BUCKETS,
                hist_series,
            )
        )
        self.upstream = a.add(
            CappedHistogram(
                "trustgate_proxy_upstream_duration_seconds",
                "Upstream exchange, from sending the request to its last byte.",
                ("gateway_id", "model"),
                LATENCY_BUCKETS,
                hist_series,
            )
        )
        self.overhead = a.add(
            CappedHistogram(
                "trustgate_proxy_overhead_duration_seconds",
                "What the gateway added: the whole request minus the upstream exchange.",
                ("gateway_id", "model"),
                OVERHEAD_BUCKETS,
                hist_series,
            )
        )
        self.max_models = max_models
        self._models: dict[str, str] = {}
        self._ids: dict[UUID, str] = {}
        self.registry.register(a)

    def _id(self, value: UUID | None) -> str:
        if value is None:
            return ""
        text = self._ids.get(value)
        if text is None:
            if len(self._ids) > 8192:
                self._ids.clear()
            text = self._ids[value] = str(value)
        return text

    def _model(self, model: str | None) -> str:
        if not model:
            return ""
        label = self._models.get(model)
        if label is None:
            label = model if len(self._models) < self.max_models else OTHER
            if label is not OTHER:
                self._models[model] = label
        return label

    def observe(self, call: Call) -> None:
        gateway = self._id(call.gateway_id)
        consumer = self._id(call.consumer_id)
        model = self._model(call.model)
        status = _STATUS.get(call.status) or str(call.status)
        self.requests.inc((gateway, consumer, model, status))
        total = call.ended - call.started
        if total < 0.0:
            total = 0.0
        by_model = (gateway, model)
        self.duration.observe(by_model, total)
        if call.upstream_start:
            end = call.upstream_end or call.ended
            upstream = end - call.upstream_start
            if upstream < 0.0:
                upstream = 0.0
            self.upstream.observe(by_model, upstream)
            overhead = total - upstream
            self.overhead.observe(by_model, overhead if overhead > 0.0 else 0.0)
        usage = call.usage
        if usage:
            tokens = self.tokens
            n = usage.get("prompt_tokens")
            if n:
                tokens.inc((gateway, consumer, model, "input"), n)
            n = usage.get("completion_tokens")
            if n:
                tokens.inc((gateway, consumer, model, "output"), n)
            n = usage.get("cached_input_tokens")
            if n:
                tokens.inc((gateway, consumer, model, "cached_input"), n)

    def render(self) -> tuple[bytes, str]:
        return render(self.registry)
