"""Prometheus metrics: rendering a registry, bucket presets, and cheap aggregates.

Each service builds its own ``prometheus_client.CollectorRegistry`` in its composition root
(nothing global, nothing at import) and serves `render(registry)` on ``/metrics``.

For counts kept on a busy path, `CappedCounter` and `CappedHistogram` are plain-Python
aggregates (a dict hit and a few additions per update, no locks) that the registry reads
only when scraped, through an `Aggregates` collector. They bound their label sets: once
``max_series`` distinct label sets exist, new ones are counted under one more (every
label ``"other"``), so a client sending ever-new model names cannot grow the process.
They are not thread-safe: update and scrape them from one thread (an event loop).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"

# Seconds. Whole requests and upstream calls: from 1 ms to two minutes.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0,
)  # fmt: skip
# Seconds. What a gateway adds on top of its upstream: from 50 µs to a second.
OVERHEAD_BUCKETS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    1.0,
)  # fmt: skip


def label_value(text: str, limit: int = 128) -> str:
    """``text`` fit for a label value a client chose: its printable characters only (no
    NUL, line breaks or terminal escapes), at most ``limit`` of them."""
    if not text.isprintable():
        text = "".join(c for c in text if c.isprintable())
    return text[:limit]


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The registry in the Prometheus text format, and its content type."""
    return generate_latest(registry), CONTENT_TYPE


def _label_count_checked(labelnames: Sequence[str], values: tuple[str, ...]) -> None:
    if len(values) != len(labelnames):
        raise ValueError(f"expected {len(labelnames)} label values, got {len(values)}")


class Cell:
    """One counter value; hold on to it to count without a lookup."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class CappedCounter:
    """A counter per label set (values as a tuple in ``labelnames`` order)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], max_series: int = 2000
    ) -> None:
        if name.endswith("_total"):
            name = name[: -len("_total")]  # the family's name; the sample gets ``_total``
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.max_series = max_series
        self.overflow = (OTHER,) * len(self.labelnames)
        self._cells: dict[tuple[str, ...], Cell] = {}

    def cell(self, labels: tuple[str, ...]) -> Cell:
        """The value counted under ``labels`` (the overflow one beyond the cap)."""
        cells = self._cells
        cell = cells.get(labels)
        if cell is None:
            _label_count_checked(self.labelnames, labels)
            if len(cells) >= self.max_series:
                labels = self.overflow
                cell = cells.get(labels)
            if cell is None:
                cell = cells[labels] = Cell()
        return cell

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        cell = self._cells.get(labels) or self.cell(labels)
        cell.value += amount

    @property
    def values(self) -> dict[tuple[str, ...], float]:
        return {labels: cell.value for labels, cell in self._cells.items()}

    def get(self, labels: tuple[str, ...]) -> float:
        cell = self._cells.get(labels)
        return 0.0 if cell is None else cell.value

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, cell in self._cells.items():
            family.add_metric(labels, cell.value)
        return family


class Series:
    """One histogram's counts; hold on to it to observe without a lookup."""

    __slots__ = ("bounds", "buckets", "count", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.buckets = [0] * (len(bounds) + 1)  # non-cumulative; the last is +Inf
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.buckets[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.sum += value


class CappedHistogram:
    """A histogram per label set, with fixed upper bounds (``+Inf`` is implied)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = LATENCY_BUCKETS,
        max_series: int = 500,
    ) -> None:
        bounds = sorted(float(b) for b in buckets if b != float("inf"))
        if not bounds:
            raise ValueError("a histogram needs at least one finite bucket")
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(bounds)
        self.max_series = max_series
        self.overflow = (OTHER,) * len(self.labelnames)
        self.series: dict[tuple[str, ...], Series] = {}

    def series_for(self, labels: tuple[str, ...]) -> Series:
        """The series observed under ``labels`` (the overflow one beyond the cap)."""
        series = self.series.get(labels)
        if series is None:
            _label_count_checked(self.labelnames, labels)
            if len(self.series) >= self.max_series:
                labels = self.overflow
                series = self.series.get(labels)
            if series is None:
                series = self.series[labels] = Series(self.bounds)
        return series

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        (self.series.get(labels) or self.series_for(labels)).observe(value)

    def count(self, labels: tuple[str, ...] | None = None) -> int:
        """Observations under ``labels``, or under every label set."""
        if labels is not None:
            series = self.series.get(labels)
            return 0 if series is None else series.count
        return sum(s.count for s in self.series.values())

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        names = [*(repr(b) for b in self.bounds), "+Inf"]
        for labels, series in self.series.items():
            running = 0
            cumulative: list[tuple[str, float]] = []
            for le, n in zip(names, series.buckets, strict=True):
                running += n
                cumulative.append((le, float(running)))
            family.add_metric(labels, cumulative, series.sum)
        return family


_M = TypeVar("_M", CappedCounter, CappedHistogram)


class Aggregates(Collector):
    """A registry collector over `CappedCounter`/`CappedHistogram` aggregates and values
    read at scrape time (``gauge``/``counter`` from callables)."""

    def __init__(self, before_collect: Callable[[], None] | None = None) -> None:
        self._metrics: list[CappedCounter | CappedHistogram] = []
        self._read: list[Callable[[], Metric]] = []
        self._before = before_collect

    def add(self, metric: _M) -> _M:
        self._metrics.append(metric)
        return metric

    def counter(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A counter whose value is ``read()`` at scrape time (``name`` ends in ``_total``)."""
        family = name[: -len("_total")] if name.endswith("_total") else name
        self._read.append(lambda: CounterMetricFamily(family, documentation, value=read()))

    def gauge(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value is ``read()`` at scrape time."""
        self._read.append(lambda: GaugeMetricFamily(name, documentation, value=read()))

    def collect(self) -> Iterable[Metric]:
        if self._before is not None:
            self._before()
        return list(self._iter())

    def _iter(self) -> Iterator[Metric]:
        for metric in self._metrics:
            yield metric.collect()
        for read in self._read:
            yield read()
