"""What an alert measures, without a database: windows, crossed thresholds, what a
token_rate_limiter budget counts and which budgets the hourly ledger cannot measure."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from trustgate_admin.governance.alert_windows import (
    Usage,
    anomaly_limit,
    budget_measure,
    calendar_window,
    crossed,
    fixed_window,
    is_anomalous,
    last_full_hour,
)

AT = datetime(2026, 12, 31, 22, 15, 7, tzinfo=UTC)


def test_calendar_windows_are_the_utc_day_and_month() -> None:
    day = calendar_window("day", AT)
    assert (day.start, day.end) == (
        datetime(2026, 12, 31, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    month = calendar_window("month", datetime(2026, 2, 10, tzinfo=UTC))
    assert (month.start, month.end) == (
        datetime(2026, 2, 1, tzinfo=UTC),
        datetime(2026, 3, 1, tzinfo=UTC),
    )


def test_a_fixed_window_is_epoch_aligned_like_the_limiters_counter() -> None:
    seconds = 6 * 3600
    window = fixed_window(seconds, AT)
    start = int(AT.timestamp()) // seconds * seconds  # budget.py's key start
    assert window.start.timestamp() == start and window.end.timestamp() == start + seconds
    assert window.start == datetime(2026, 12, 31, 18, tzinfo=UTC)


def test_the_last_full_hour_is_the_one_that_ended() -> None:
    hour = last_full_hour(AT)
    assert (hour.start, hour.end) == (
        datetime(2026, 12, 31, 21, tzinfo=UTC),
        datetime(2026, 12, 31, 22, tzinfo=UTC),
    )


def test_thresholds_crossed_are_those_reached() -> None:
    assert crossed([50, 80, 100], Decimal("79.99"), Decimal(100)) == [50]
    assert crossed([50, 80, 100], Decimal(80), Decimal(100)) == [50, 80]
    assert crossed([50, 80, 100, 200], Decimal("10.5"), Decimal(10)) == [50, 80, 100]
    assert crossed([50], Decimal(5), Decimal(0)) == []


def test_a_token_budget_counts_as_the_limiter_does() -> None:
    usage = Usage(Decimal("1.5"), input_tokens=1000, output_tokens=300, cached_tokens=400)
    window = {"max": 10_000, "time_window": "24h"}
    total = budget_measure({"aggregate": window})
    assert total.used(usage) == 900 and total.unit == "tokens"  # cache reads do not count
    cached = budget_measure({"aggregate": window, "count_cache_reads": True})
    assert cached.used(usage) == 1300
    assert budget_measure({"aggregate": window, "counting": "input"}).used(usage) == 600
    assert budget_measure({"aggregate": window, "counting": "output"}).used(usage) == 300
    dollars = budget_measure({"unit": "dollars", "aggregate": {"max": 5, "time_window": "2h"}})
    assert dollars.used(usage) == Decimal("1.5") and dollars.seconds == 7200
    assert dollars.unit == "usd" and dollars.maximum == 5


@pytest.mark.parametrize(
    ("settings", "why"),
    [
        ({"aggregate": {"max": 10, "time_window": "30m"}}, "whole number of hours"),
        ({"aggregate": {"max": 10, "time_window": "90m"}}, "whole number of hours"),
        ({"aggregate": {"max": 10, "time_window": "1h"}, "group_by_header": "x"}, "header"),
        ({"rules": [{"model": "*", "max": 10, "time_window": "1h"}]}, "aggregate"),
        (
            {"unit": "dollars", "counting": "output", "aggregate": {"max": 1, "time_window": "1h"}},
            "total cost",
        ),
        ({"aggregate": {"max": -1, "time_window": "1h"}}, "not valid"),
    ],
)
def test_a_budget_the_hourly_ledger_cannot_measure_is_refused(
    settings: dict[str, object], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        budget_measure(settings)


def test_an_anomaly_is_above_the_factor_and_at_least_the_minimum() -> None:
    limit = anomaly_limit(Decimal(24), 24, 3.0)
    assert limit == 3
    assert is_anomalous(Decimal("3.01"), limit, Decimal(1))
    assert not is_anomalous(Decimal(3), limit, Decimal(1))
    quiet = anomaly_limit(Decimal(0), 24, 3.0)
    assert not is_anomalous(Decimal("0.5"), quiet, Decimal(1))
    assert is_anomalous(Decimal(1), quiet, Decimal(1))
