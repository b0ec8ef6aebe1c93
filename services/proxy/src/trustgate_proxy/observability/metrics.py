"""The proxy's Prometheus metrics, aggregated from finished calls.

``trustgate_proxy_requests_total{gateway_id,consumer_id,model,status}``, the latency
histograms ``trustgate_proxy_request_duration_seconds`` (whole request),
``trustgate_proxy_upstream_duration_seconds`` and ``trustgate_proxy_overhead_duration_seconds``
(request minus upstream; both only for calls that reached an upstream) by
``gateway_id,model``, ``trustgate_proxy_tokens_total{gateway_id,consumer_id,model,type}``,
``trustgate_proxy_cost_usd_total{gateway_id,consumer_id,model}``
(``type``: ``input``, ``output``, ``cached_input``), and values read at scrape time: the
request-event publisher's counters and queue, config events applied, readiness.

Labels are bounded: a model name (chosen by the client) is cut to its printable
characters, at most ``MAX_LABEL_CHARS`` of them; each gateway has at most
``max_models_per_gateway`` distinct model names and the process ``max_models`` (later
ones are ``other``), so one tenant cannot crowd out another's; and each metric has a cap
on label sets (see `CappedCounter`). A missing value (no gateway found, no model sent) is
the empty string.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol
from uuid import UUID

from prometheus_client import CollectorRegistry

from trustgate_core.observability.metrics import (
    LATENCY_BUCKETS,
    OTHER,
    OVERHEAD_BUCKETS,
    Aggregates,
    CappedCounter,
    CappedHistogram,
    Cell,
    Series,
    label_value,
    render,
)
from trustgate_proxy.domain.call import Call, call_cost

_CALL_LABELS = ("gateway_id", "consumer_id", "model")
ATTEMPT_BUCKETS = (1.0, 2.0, 3.0, 4.0, 6.0, 9.0)


class _RouteHealthReadings(Protocol):
    ejections_total: int

    def unhealthy(self) -> list[str]: ...


class _RoutingCounters(Protocol):
    retries: int
    fallbacks: int


class RoutingReadings(Protocol):
    """What ``watch_routing`` reads (``services.resilience.Routing``)."""

    @property
    def stats(self) -> _RoutingCounters: ...

    @property
    def health(self) -> _RouteHealthReadings: ...


_MAX_SLOTS = 8192
MAX_LABEL_CHARS = 128
MAX_MODELS_PER_GATEWAY = 50


class _Slot:
    """What one (gateway, consumer, model, status) updates, resolved once; the upstream
    and token series on first use (a call that never reached an upstream adds none)."""

    __slots__ = (
        "by_call",
        "by_model",
        "cached_tokens",
        "cost",
        "duration",
        "input_tokens",
        "output_tokens",
        "overhead",
        "requests",
        "upstream",
    )

    def __init__(
        self,
        by_call: tuple[str, str, str],
        by_model: tuple[str, str],
        requests: Cell,
        duration: Series,
    ) -> None:
        self.by_call = by_call
        self.by_model = by_model
        self.requests = requests
        self.duration = duration
        self.upstream: Series | None = None
        self.overhead: Series | None = None
        self.input_tokens: Cell | None = None
        self.output_tokens: Cell | None = None
        self.cached_tokens: Cell | None = None
        self.cost: Cell | None = None


class ProxyMetrics:
    """The registry and its aggregates. ``observe`` runs in the background, never on the
    request path; ``render`` on a scrape."""

    def __init__(
        self,
        *,
        max_series: int = 2000,
        max_models: int = 200,
        max_models_per_gateway: int = MAX_MODELS_PER_GATEWAY,
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
        self.cost = a.add(
            CappedCounter(
                "trustgate_proxy_cost_usd_total",
                "What the calls cost in USD (a policy's custom pricing, else the models"
                " catalog; unpriced models add nothing).",
                _CALL_LABELS,
                max_series,
            )
        )
        self.cache_lookups = a.add(
            CappedCounter(
                "trustgate_proxy_cache_lookups_total",
                "Semantic cache lookups by outcome: hit, miss, bypass, or error (the cache"
                " did not answer in time or at all: served uncached).",
                ("outcome",),
                8,
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
        self.attempts = a.add(
            CappedHistogram(
                "trustgate_proxy_upstream_attempts",
                "Upstream attempts per request (retries and fallbacks included), by"
                " gateway; requests that reached no upstream are not counted.",
                ("gateway_id",),
                ATTEMPT_BUCKETS,
                hist_series,
            )
        )
        self.max_models = max_models
        self.max_models_per_gateway = max_models_per_gateway
        self._models: dict[tuple[UUID | None, str], str] = {}  # (gateway, name) -> label
        self._gateway_models: dict[UUID | None, int] = {}
        self._slots: dict[tuple[UUID | None, UUID | None, str | None, int], _Slot] = {}
        self.registry.register(a)

    def _id(self, value: UUID | None) -> str:
        return "" if value is None else str(value)

    def _model(self, gateway: UUID | None, model: str | None) -> str:
        """The label of ``model`` on ``gateway`` (``other`` beyond either cap); resolved
        once per slot, off the request path."""
        if not model:
            return ""
        label = self._models.get((gateway, model))
        if label is not None:
            return label
        seen = self._gateway_models.get(gateway, 0)
        if len(self._models) >= self.max_models or seen >= self.max_models_per_gateway:
            return OTHER
        label = self._models[(gateway, model)] = label_value(model, MAX_LABEL_CHARS)
        self._gateway_models[gateway] = seen + 1
        return label

    def _slot(self, key: tuple[UUID | None, UUID | None, str | None, int]) -> _Slot:
        gateway_id, consumer_id, model_name, status = key
        gateway, consumer = self._id(gateway_id), self._id(consumer_id)
        model = self._model(gateway_id, model_name)
        by_model = (gateway, model)
        slot = _Slot(
            (gateway, consumer, model),
            by_model,
            self.requests.cell((gateway, consumer, model, str(status))),
            self.duration.series_for(by_model),
        )
        if len(self._slots) >= _MAX_SLOTS:
            self._slots.clear()
        self._slots[key] = slot
        return slot

    def observe(self, call: Call) -> None:
        key = (call.gateway_id, call.consumer_id, call.model, call.status)
        slot = self._slots.get(key) or self._slot(key)
        slot.requests.value += 1
        total = call.ended - call.started
        if total < 0.0:
            total = 0.0
        slot.duration.observe(total)
        if call.upstream_start:
            upstream = (call.upstream_end or call.ended) - call.upstream_start
            if upstream < 0.0:
                upstream = 0.0
            if slot.upstream is None or slot.overhead is None:
                slot.upstream = self.upstream.series_for(slot.by_model)
                slot.overhead = self.overhead.series_for(slot.by_model)
            slot.upstream.observe(upstream)
            overhead = total - upstream
            slot.overhead.observe(overhead if overhead > 0.0 else 0.0)
        if call.cache_outcome is not None:
            self.cache_lookups.inc((call.cache_outcome,))
        if call.attempts:
            self.attempts.series_for((slot.by_model[0],)).observe(len(call.attempts))
        usage = call.usage
        if usage:
            n = usage.get("prompt_tokens")
            if n:
                cell = slot.input_tokens or self._tokens(slot, "input")
                cell.value += n
            n = usage.get("completion_tokens")
            if n:
                cell = slot.output_tokens or self._tokens(slot, "output")
                cell.value += n
            n = usage.get("cached_input_tokens")
            if n:
                cell = slot.cached_tokens or self._tokens(slot, "cached_input")
                cell.value += n
            cost = call_cost(call)
            if cost is not None and cost.total_usd:
                if slot.cost is None:
                    slot.cost = self.cost.cell(slot.by_call)
                slot.cost.value += cost.total_usd

    def _tokens(self, slot: _Slot, kind: str) -> Cell:
        cell = self.tokens.cell((*slot.by_call, kind))
        if kind == "input":
            slot.input_tokens = cell
        elif kind == "output":
            slot.output_tokens = cell
        else:
            slot.cached_tokens = cell
        return cell

    def watch_routing(self, routing: RoutingReadings) -> None:
        """Route health and the routers' counters, read at scrape time."""
        a = self.aggregates
        stats = routing.stats
        health = routing.health
        a.gauge(
            "trustgate_proxy_routes_unhealthy",
            "Registries route health has taken out (ejected, cooling down or half-open).",
            lambda: len(health.unhealthy()),
        )
        a.counter(
            "trustgate_proxy_route_ejections_total",
            "Times this replica took a registry out (passive health or Retry-After).",
            lambda: health.ejections_total,
        )
        a.counter(
            "trustgate_proxy_upstream_retries_total",
            "Attempts repeated on the same route after a retryable failure.",
            lambda: stats.retries,
        )
        a.counter(
            "trustgate_proxy_upstream_fallbacks_total",
            "Attempts made on a consumer's fallback chain.",
            lambda: stats.fallbacks,
        )

    def render(self) -> tuple[bytes, str]:
        return render(self.registry)
