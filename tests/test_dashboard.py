"""The compose stack's Grafana dashboard is valid and shows only metrics the planes export.

The exported names are read from the code: every metric a plane defines (prometheus_client
``Counter``/``Gauge``/``Histogram``, core ``CappedCounter``/``CappedHistogram``, and the
``Aggregates.counter``/``gauge`` readings registered in the bootstraps), with the sample
names Prometheus scrapes (``_total`` for counters, ``_bucket``/``_sum``/``_count`` for
histograms). The metrics classes that are cheap to build are also rendered in process, to
check that reading agrees with what ``/metrics`` really serves.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
DASHBOARD = REPO / "deploy" / "compose" / "grafana" / "dashboards" / "trustgate.json"
DATASOURCES = REPO / "deploy" / "compose" / "grafana" / "provisioning" / "datasources"
SOURCES = [
    REPO / "libs" / "trustgate-core" / "src",
    *sorted((REPO / "services").glob("*/src")),
]

COUNTERS = {"Counter", "CappedCounter", "counter"}
GAUGES = {"Gauge", "gauge"}
HISTOGRAMS = {"Histogram", "CappedHistogram"}
# Series Prometheus itself adds for every scrape target, not exported by a plane.
SCRAPE_SERIES = {"up"}

# PromQL's functions, aggregations and keywords (whatever is not a metric name).
PROMQL_FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil",
    "changes", "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values",
    "delta", "deriv", "exp", "floor", "group", "histogram_quantile", "idelta", "increase",
    "irate", "label_join", "label_replace", "last_over_time", "ln", "max", "max_over_time",
    "min", "min_over_time", "predict_linear", "quantile", "quantile_over_time", "rate",
    "resets", "round", "scalar", "sort", "sort_desc", "stddev", "stdvar", "sum",
    "sum_over_time", "time", "timestamp", "topk", "vector",
}  # fmt: skip
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                   "and", "or", "unless", "offset"}  # fmt: skip
GRAFANA_PANEL_TYPES = {"timeseries", "stat", "gauge", "bargauge", "table", "text", "row"}


def _callee(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _samples(kind: str, name: str) -> set[str]:
    """The sample names Prometheus scrapes for a metric defined as ``name``."""
    if kind in COUNTERS:
        family = name.removesuffix("_total")
        return {f"{family}_total"}
    if kind in HISTOGRAMS:
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def exported_metrics() -> set[str]:
    """Every ``trustgate_*`` sample name the planes' code defines."""
    names: set[str] = set()
    for root in SOURCES:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                kind = _callee(node)
                first = node.args[0]
                if (
                    kind in COUNTERS | GAUGES | HISTOGRAMS
                    and isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and first.value.startswith("trustgate_")
                ):
                    names |= _samples(kind, first.value)
    return names


@pytest.fixture(scope="module")
def exported() -> set[str]:
    return exported_metrics()


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _scraped(text: bytes) -> set[str]:
    return {
        sample.name
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


class _Health:
    ejections_total = 2

    def unhealthy(self) -> list[str]:
        return ["r1"]


class _Stats:
    retries = 1
    fallbacks = 1


class _Routing:
    stats = _Stats()
    health = _Health()


def test_reading_the_code_finds_what_the_metrics_classes_serve(exported: set[str]) -> None:
    """The planes' metrics, built and observed in process, serve only names the code
    reading found, so the dashboard check below cannot pass on a misread suffix."""
    from prometheus_client import CollectorRegistry, generate_latest

    from trustgate_admin.api.metrics import AdminMetrics
    from trustgate_mcp.observability.metrics import McpMetrics
    from trustgate_policy_cache.services.metrics import CacheMetrics
    from trustgate_proxy.observability.metrics import ProxyMetrics
    from trustgate_telemetry.metrics import TelemetryMetrics

    admin = AdminMetrics()
    admin.observe("GET", "/v1/gateways", 200, 0.01)
    mcp = McpMetrics()
    mcp.observe("g", "tools/call", "ok", 0.02, 0.01)
    proxy = ProxyMetrics()
    proxy.watch_routing(_Routing())
    proxy.requests.inc(("g", "c", "m", "200"))
    proxy.tokens.inc(("g", "c", "m", "input"), 10)
    for histogram in (proxy.duration, proxy.upstream, proxy.overhead):
        histogram.observe(("g", "m"), 0.01)
    proxy.attempts.observe(("g",), 2)
    telemetry = TelemetryMetrics()
    telemetry.consumed.inc()
    cache_registry = CollectorRegistry(auto_describe=False)
    cache = CacheMetrics(cache_registry, lambda: 3)
    cache.lookups.labels("hit_semantic").inc()
    served = set()
    for rendered in (admin.render()[0], mcp.render()[0], proxy.render()[0]):
        served |= _scraped(rendered)
    served |= _scraped(generate_latest(telemetry.registry))
    served |= _scraped(generate_latest(cache_registry))
    assert served, "no metric rendered"
    assert served <= exported, sorted(served - exported)
    # and the readings only the bootstraps register were found too
    assert {
        "trustgate_proxy_config_ready",
        "trustgate_mcp_config_ready",
        "trustgate_proxy_policy_failed_open_total",
    } <= exported


def _strip(expr: str) -> str:
    """``expr`` without what cannot be a metric name: strings, label matchers, ranges,
    grouping label lists and numbers."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    return re.sub(r"(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?", " ", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects; raises on an unknown function."""
    stripped = _strip(expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", stripped):
        word = match.group()
        calls = stripped[match.end() :].lstrip().startswith("(")
        if word in PROMQL_KEYWORDS:
            continue
        if calls:
            assert word in PROMQL_FUNCTIONS, f"unknown PromQL function {word!r} in {expr!r}"
            continue
        names.add(word)
    return names


def test_the_promql_reader_finds_metric_names_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, model) (rate(trustgate_proxy_x_bucket{type="a b"}'
        "[$__rate_interval]))) / on (model) sum(trustgate_y_total) > 1e3"
    )
    assert metric_names(expr) == {"trustgate_proxy_x_bucket", "trustgate_y_total"}
    with pytest.raises(AssertionError):
        metric_names("nonsense(trustgate_y_total)")


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # a collapsed row holds its own
    return panels


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = [
        (panel["title"], target["expr"])
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
    ]
    found += [
        (
            f"variable {v['name']}",
            v["query"] if isinstance(v["query"], str) else v["query"]["query"],
        )
        for v in dashboard["templating"]["list"]
        if v.get("type") == "query"
    ]
    return found


def test_every_panel_queries_only_metrics_the_planes_export(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    queries = _queries(dashboard)
    assert queries
    unknown = {
        f"{title}: {name}"
        for title, expr in queries
        for name in metric_names(expr)
        if name not in exported | SCRAPE_SERIES
    }
    assert not unknown, f"the dashboard queries metrics no plane exports: {sorted(unknown)}"


def test_the_dashboard_is_grafana_json(dashboard: dict[str, Any]) -> None:
    for key in ("uid", "title", "schemaVersion", "panels", "time", "templating"):
        assert key in dashboard, f"no {key}"
    assert isinstance(dashboard["schemaVersion"], int)
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        assert panel["type"] in GRAFANA_PANEL_TYPES, panel["type"]
        pos = panel["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and 0 <= pos["x"] and pos["x"] + pos["w"] <= 24
        mine = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "text":
            assert panel["options"]["content"]
            continue
        if panel["type"] == "row":
            continue
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert ref_ids and len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"])


def test_the_dashboard_uses_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    provisioned = {
        source["uid"]: source
        for path in DATASOURCES.glob("*.yaml")
        for source in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    }
    for panel in _panels(dashboard):
        for ref in [
            panel.get("datasource"),
            *(t.get("datasource") for t in panel.get("targets", [])),
        ]:
            if ref is not None:
                assert ref["uid"] in provisioned, panel["title"]
                assert provisioned[ref["uid"]]["type"] == ref["type"]


@pytest.mark.parametrize(
    "topic",
    [
        "requests by status",
        "added latency",
        "upstream latency",
        "tokens by consumer and model",
        "cost by consumer and model",
        "cache hit rate",
        "limit rejections",
        "route health and fallbacks",
        "telemetry lag",
    ],
)
def test_the_dashboard_has_a_panel_for(dashboard: dict[str, Any], topic: str) -> None:
    titles = [panel["title"].lower() for panel in _panels(dashboard)]
    assert any(topic in title for title in titles), titles


def test_cache_hit_rate_and_cost_are_queries_of_what_the_planes_count(
    dashboard: dict[str, Any],
) -> None:
    """The hit rate is the policy cache's lookups split by result (every result it counts
    has a series: hit_exact, hit_semantic, miss, error), as a share of all lookups; cost
    is a query of the proxy's cost counter."""
    from trustgate_policy_cache.services.metrics import RESULTS

    by_title = {panel["title"].lower(): panel for panel in _panels(dashboard)}
    hits = by_title["cache hit rate"]
    assert hits["type"] == "timeseries"
    (target,) = hits["targets"]
    assert metric_names(target["expr"]) == {"trustgate_policy_cache_lookups_total"}
    assert "by (result)" in target["expr"] and "{{result}}" in target["legendFormat"]
    assert hits["fieldConfig"]["defaults"]["unit"] == "percentunit"
    assert set(RESULTS) == {"hit_exact", "hit_semantic", "miss", "error"}
    cost = by_title["cost by consumer and model"]
    assert "trustgate_proxy_cost_usd_total" in cost["targets"][0]["expr"]


def test_the_429_series_says_it_holds_upstream_429s_too(
    dashboard: dict[str, Any], exported: set[str]
) -> None:
    """The proxy counts the status it answered with: an upstream's 429, passed through once
    retries and fallbacks are spent, is in the same series as its own limit rejections.
    While it exports no counter of the rejections alone, a panel of its 429s says so."""
    rejections = {
        name
        for name in exported
        if name.startswith("trustgate_proxy_") and re.search(r"reject|limited|denied", name)
    }
    assert not rejections, f"use {sorted(rejections)} for the limit rejections panel"
    status_429 = [
        (panel, target)
        for panel in _panels(dashboard)
        for target in panel.get("targets", [])
        if "trustgate_proxy_requests_total" in target["expr"] and '"429"' in target["expr"]
    ]
    assert status_429
    for panel, target in status_429:
        assert "upstream" in panel["title"].lower(), panel["title"]
        assert "upstream" in target["legendFormat"], target["legendFormat"]
        assert "upstream" in panel["description"], panel["title"]
