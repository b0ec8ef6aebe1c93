"""What one request event adds to the usage rollups, how a usage query is read, how the
CSV keeps formulas out, and the month-end forecast's arithmetic (no I/O)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from trustgate_admin.adapters.db.usage_tables import NO_CONSUMER
from trustgate_admin.governance.ledger import Figures, roll_up, rollup_key
from trustgate_admin.governance.usage import (
    InvalidUsageQuery,
    UsageRow,
    burn_window,
    money,
    parse_group_by,
    parse_range,
    project,
    render_csv,
    safe_cell,
)
from trustgate_core.events.requests import RequestEvent

GW = uuid.uuid4()
NOW = datetime(2026, 12, 7, 14, 30, tzinfo=UTC)


def event(**fields: Any) -> RequestEvent:
    started = fields.pop("started_at", NOW)
    return RequestEvent.model_validate(
        {
            "trace_id": uuid.uuid4().hex,
            "gateway_id": GW,
            "method": "POST",
            "path": "/v1/chat/completions",
            "status": 200,
            "timings": {"total_ms": 1.0, "gateway_ms": 1.0},
            "started_at": started,
            "ended_at": started,
            **fields,
        }
    )


def test_an_events_figures_count_errors_tokens_exact_cost_hits_and_fallbacks() -> None:
    f = Figures()
    f.add(
        event(
            usage={"prompt_tokens": 10, "completion_tokens": 4, "cached_input_tokens": 3},
            cost={"prompt_usd": 0.1, "completion_usd": 0.2, "total_usd": 0.1 + 0.2},
            cache={"outcome": "hit"},
            attempts=[
                {
                    "registry_id": uuid.uuid4(),
                    "provider": "a",
                    "attempt": 1,
                    "outcome": "retryable",
                    "latency_ms": 1,
                },
                {
                    "registry_id": uuid.uuid4(),
                    "provider": "b",
                    "attempt": 2,
                    "fallback": True,
                    "outcome": "success",
                    "latency_ms": 1,
                },
            ],
        )
    )
    f.add(event(status=200, error_kind="client_disconnected", cache={"outcome": "miss"}))
    f.add(event(status=429, usage={"prompt_tokens": 5, "completion_tokens": 0}))
    assert (f.requests, f.errors, f.input_tokens, f.output_tokens, f.cached_tokens) == (
        3,
        2,
        15,
        4,
        3,
    )
    # the float as written in the event (0.30000000000000004), not a binary expansion
    assert f.cost_usd == Decimal("0.30000000000000004")
    assert (f.cache_hits, f.fallbacks) == (1, 1)


def test_an_event_lands_in_its_utc_hour_with_its_served_model() -> None:
    paris = timezone(timedelta(hours=1))
    e = event(started_at=datetime(2026, 12, 7, 0, 59, 59, tzinfo=paris), requested_model="x")
    assert rollup_key(e) == (GW, datetime(2026, 12, 6, 23, tzinfo=UTC), NO_CONSUMER, "x", "")
    served = event(model="gpt-4o", requested_model="auto", provider="openai")
    assert rollup_key(served)[3:] == ("gpt-4o", "openai")


def test_a_batch_rolls_up_per_key() -> None:
    consumer = uuid.uuid4()
    rows = roll_up([event(consumer_id=consumer), event(consumer_id=consumer), event(model="m")])
    assert sorted(f.requests for f in rows.values()) == [1, 2]


def test_a_range_is_read_by_whole_hours_and_defaults_to_the_month_so_far() -> None:
    assert parse_range(None, None, NOW) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 7, 15, tzinfo=UTC),
    )
    start, end = parse_range("2026-12-05T10:20:00+01:00", "2026-12-06", NOW)
    assert (start, end) == (
        datetime(2026, 12, 5, 9, tzinfo=UTC),
        datetime(2026, 12, 6, tzinfo=UTC),
    )
    # only an end in an earlier month: that month
    assert parse_range(None, "2026-11-01", NOW)[0] == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_range(None, "2026-11-20", NOW)[0] == datetime(2026, 11, 1, tzinfo=UTC)
    # a "+" that a query string turned into a space
    assert parse_range("2026-12-05T10:00:00 01:00", None, NOW)[0] == datetime(
        2026, 12, 5, 9, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("raw_from", "raw_to"),
    [("soon", None), ("2026-12-07", "2026-12-07"), ("2025-01-01", "2026-12-01")],
)
def test_bad_ranges_are_refused(raw_from: str, raw_to: str | None) -> None:
    with pytest.raises(InvalidUsageQuery):
        parse_range(raw_from, raw_to, NOW)


def test_groups_default_to_day_and_unknown_ones_name_the_allowed() -> None:
    assert parse_group_by(None) == ("day",)
    assert parse_group_by("model, consumer,model") == ("model", "consumer")
    with pytest.raises(InvalidUsageQuery, match="allowed: consumer, model, provider"):
        parse_group_by("team")


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_cells_starting_like_a_formula_are_quoted(cell: str) -> None:
    assert safe_cell(cell) == "'" + cell
    assert safe_cell("R&D") == "R&D"


def test_money_is_a_plain_exact_decimal() -> None:
    assert money(Decimal("0.001200000000")) == "0.0012"
    assert money(Decimal("12.000000000000")) == "12"
    assert money(Decimal("0E-12")) == "0"


def test_the_csv_puts_metadata_keys_in_sorted_columns() -> None:
    figures = {
        f: 0
        for f in (
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cached_tokens",
            "cache_hits",
            "fallbacks",
        )
    }
    rows = [
        UsageRow(
            {"consumer_id": uuid.uuid4(), "consumer_name": "a"},
            {**figures, "cost_usd": Decimal("1.5")},
            metadata={"team": "x", "model": "y"},
        ),
        UsageRow(
            {"consumer_id": None, "consumer_name": "(none)"}, {**figures, "cost_usd": Decimal(0)}
        ),
    ]
    table = list(csv.reader(io.StringIO(render_csv(rows, ["consumer"]))))
    assert table[0][:4] == ["consumer_id", "consumer_name", "metadata_model", "team"]
    assert table[1][2:4] == ["y", "x"] and table[1][-3] == "1.5"
    assert table[2][1:4] == ["(none)", "", ""]


def test_the_burn_window_is_the_last_seven_days_up_to_now_within_the_month() -> None:
    now = datetime(2026, 12, 20, 8, 30, tzinfo=UTC)
    assert burn_window(now) == (datetime(2026, 12, 13, 8, tzinfo=UTC), now)
    early = datetime(2026, 12, 3, 8, 30, tzinfo=UTC)
    assert burn_window(early) == (datetime(2026, 12, 1, tzinfo=UTC), early)
    first_day = datetime(2026, 12, 1, 6, tzinfo=UTC)
    assert burn_window(first_day) == (datetime(2026, 12, 1, tzinfo=UTC), first_day)


def test_the_projection_is_spent_plus_the_burn_rate_times_the_days_left() -> None:
    now = datetime(2026, 12, 20, tzinfo=UTC)  # 12 days of 31 left
    f = project(now, spent=Decimal("190"), window_cost=Decimal("70"))
    assert f.burn_rate_usd_per_day == Decimal("10")
    assert (f.days_elapsed, f.days_remaining, f.days_in_month) == (19, 12, 31)
    assert f.projected_usd == Decimal("310")
    assert f.render()["projected_usd"] == "310"
    early = project(datetime(2026, 12, 1, 6, tzinfo=UTC), Decimal("1"), Decimal("1"))
    assert early.burn_rate_usd_per_day == Decimal("4")  # one dollar in a quarter day
