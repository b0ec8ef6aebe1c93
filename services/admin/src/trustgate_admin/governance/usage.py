"""Reading the usage ledger: a gateway's figures over a range, grouped as asked, as JSON
rows or a chargeback CSV, and the current month's spend forecast.

The rollups are hourly, so a range is read at hour granularity: ``from`` is taken down to
the start of its hour and ``to`` (exclusive) up to the end of its hour, and the answer
names the range it actually covers. Money is exact: ``cost_usd`` is summed as NUMERIC
and rendered as a decimal string.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, func, literal_column, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from trustgate_admin.adapters.db.usage_tables import NO_CONSUMER, UsageHourlyRow
from trustgate_core.errors import TrustGateError

GROUPS = ("consumer", "model", "provider", "hour", "day", "month")
FORMATS = ("json", "csv")
FIGURES = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
    "cache_hits",
    "fallbacks",
)
MAX_RANGE = timedelta(days=400)
#: The name a row without a consumer carries (events refused before one was known).
NO_CONSUMER_NAME = "(none)"
#: Forecast figures (a rate, a projection) are rounded to a millionth of a dollar.
MICRO = Decimal("0.000001")
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# cells a spreadsheet would read as a formula (OWASP's CSV injection list)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# -- the query ---------------------------------------------------------------------------------
class InvalidUsageQuery(TrustGateError):
    """A query parameter the usage routes cannot read: 422 with the code FastAPI's own
    query checks answer with (``invalid_query``), the message naming the parameter."""

    code, status = "invalid_query", 422


@dataclass(frozen=True)
class UsageQuery:
    """What to read: ``start`` (inclusive) and ``end`` (exclusive) on hour boundaries."""

    gateway_id: UUID
    start: datetime
    end: datetime
    group_by: tuple[str, ...]
    consumer_id: UUID | None = None


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment else floored + HOUR


def month_start(moment: datetime) -> datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(moment: datetime) -> datetime:
    start = month_start(moment)
    return (start + timedelta(days=32)).replace(day=1)


def parse_moment(name: str, raw: str) -> datetime:
    """An ISO 8601 date or date-time, UTC when it has no offset (a ``+`` that a query string
    turned into a space is put back)."""
    value = raw.strip()
    if "T" in value and " " in value:
        value = value.replace(" ", "+")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidUsageQuery(
            f"{name}: not an ISO 8601 date or date-time (e.g. 2026-12-01 or 2026-12-01T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_range(
    raw_from: str | None, raw_to: str | None, now: datetime
) -> tuple[datetime, datetime]:
    """The hour-aligned range: ``from`` down to its hour, ``to`` up to the end of its hour;
    by default from the start of the current UTC month to now (with only ``to`` before
    this month: from the start of ``to``'s month)."""
    end = parse_moment("to", raw_to) if raw_to else now
    if raw_from:
        start = parse_moment("from", raw_from)
    else:
        start = month_start(min(now, end - timedelta(microseconds=1)))
    if start >= end:
        raise InvalidUsageQuery("from: must be before to")
    if end - start > MAX_RANGE:
        raise InvalidUsageQuery(f"to: a range is at most {MAX_RANGE.days} days")
    return floor_hour(start), ceil_hour(end)


def parse_group_by(raw: str | None) -> tuple[str, ...]:
    """Comma-separated groups, in the order given (repeats once); ``day`` by default."""
    if raw is None or not raw.strip():
        return ("day",)
    names = [part.strip() for part in raw.split(",") if part.strip()]
    unknown = [n for n in names if n not in GROUPS]
    if unknown:
        raise InvalidUsageQuery(
            f"group_by: unknown {', '.join(repr(n) for n in unknown)}; allowed: {', '.join(GROUPS)}"
        )
    return tuple(dict.fromkeys(names))


def parse_format(raw: str | None) -> str:
    value = (raw or "json").strip().lower()
    if value not in FORMATS:
        raise InvalidUsageQuery(f"format: must be one of {', '.join(FORMATS)}")
    return value


# -- reading -----------------------------------------------------------------------------------
@dataclass
class UsageRow:
    """One group's keys (as rendered) and figures."""

    keys: dict[str, Any]
    figures: dict[str, Any]
    consumer_id: UUID | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def _group_column(name: str) -> ColumnElement[Any]:
    t = UsageHourlyRow.__table__.c  # type: ignore[attr-defined]
    if name == "consumer":
        return t.consumer_id  # type: ignore[no-any-return]
    if name in ("model", "provider", "hour"):
        return t[name]  # type: ignore[no-any-return]
    # day / month: truncated in UTC whatever the session's time zone
    return func.date_trunc(name, func.timezone("UTC", t.hour))


def _sums() -> list[ColumnElement[Any]]:
    t = UsageHourlyRow.__table__.c  # type: ignore[attr-defined]
    return [func.coalesce(func.sum(t[f]), 0).label(f) for f in FIGURES]


def _render_key(name: str, value: Any) -> Any:
    if name == "hour":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")
    if name == "day":
        return value.strftime("%Y-%m-%d")
    if name == "month":
        return value.strftime("%Y-%m")
    return value


def money(value: Decimal) -> str:
    """A decimal string without exponent or trailing zeros (``"0.0125"``, ``"0"``)."""
    text_ = format(value, "f")
    if "." in text_:
        text_ = text_.rstrip("0").rstrip(".")
    return text_ or "0"


def _figures(row: Mapping[str, Any]) -> dict[str, Any]:
    return {f: (Decimal(row[f]) if f == "cost_usd" else int(row[f])) for f in FIGURES}


async def read_usage(session: AsyncSession, q: UsageQuery) -> list[UsageRow]:
    """The figures per group (at least one group), in group order."""
    t = UsageHourlyRow.__table__.c  # type: ignore[attr-defined]
    groups = [_group_column(g).label(f"g_{g}") for g in q.group_by]
    stmt = select(*groups, *_sums()).where(
        t.gateway_id == q.gateway_id, t.hour >= q.start, t.hour < q.end
    )
    if q.consumer_id is not None:
        stmt = stmt.where(t.consumer_id == q.consumer_id)
    order: list[ColumnElement[Any]] = [literal_column(f"g_{g}") for g in q.group_by]
    stmt = stmt.group_by(*order).order_by(*order)
    conn = await session.connection()
    rows: list[UsageRow] = []
    for r in (await conn.execute(stmt)).mappings():
        keys = {g: _render_key(g, r[f"g_{g}"]) for g in q.group_by}
        consumer = keys.pop("consumer", None)
        rows.append(UsageRow(keys, _figures(dict(r)), consumer_id=consumer))
    if "consumer" in q.group_by:
        await _name_consumers(session, q.gateway_id, rows)
    return rows


async def _name_consumers(session: AsyncSession, gateway_id: UUID, rows: list[UsageRow]) -> None:
    """Fill each row's consumer name and metadata from the consumers table (a consumer
    deleted since: no name, no metadata)."""
    ids = sorted({r.consumer_id for r in rows if r.consumer_id not in (None, NO_CONSUMER)}, key=str)
    known: dict[UUID, tuple[str, dict[str, Any]]] = {}
    if ids:
        conn = await session.connection()
        found = await conn.execute(
            text(
                "SELECT id, name, metadata FROM consumers "
                "WHERE gateway_id = :gw AND id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"gw": gateway_id, "ids": ids},
        )
        for cid, name, metadata in found:
            known[cid] = (name, metadata if isinstance(metadata, dict) else {})
    for row in rows:
        if row.consumer_id == NO_CONSUMER:
            row.keys = {"consumer_id": None, "consumer_name": NO_CONSUMER_NAME, **row.keys}
            continue
        name, metadata = known.get(row.consumer_id, (None, {}))  # type: ignore[arg-type]
        row.keys = {"consumer_id": row.consumer_id, "consumer_name": name, **row.keys}
        row.metadata = metadata


def totals(rows: Iterable[UsageRow]) -> dict[str, Any]:
    sums: dict[str, Any] = {f: (Decimal(0) if f == "cost_usd" else 0) for f in FIGURES}
    for row in rows:
        for f in FIGURES:
            sums[f] += row.figures[f]
    return sums


def render_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
    return {f: (money(figures[f]) if f == "cost_usd" else figures[f]) for f in FIGURES}


def render_json_rows(rows: Sequence[UsageRow], group_by: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        item: dict[str, Any] = {
            k: (str(v) if isinstance(v, UUID) else v) for k, v in row.keys.items()
        }
        if "consumer" in group_by:
            item["metadata"] = row.metadata
        out.append(item | render_figures(row.figures))
    return out


# -- CSV -----------------------------------------------------------------------------------------
def safe_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a ``'``."""
    if value is None:
        return ""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (dict, list)):
        cell = json.dumps(value, sort_keys=True, ensure_ascii=False)
    elif isinstance(value, bool):
        cell = "true" if value else "false"
    else:
        cell = str(value)
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def render_csv(rows: Sequence[UsageRow], group_by: Sequence[str]) -> str:
    """One header row, one row per group: the group keys, the consumers' metadata keys
    (the union, sorted; a key named like any column the export can have gets
    ``metadata_`` in front), then the
    figures (``cost_usd`` exact)."""
    key_columns = list(rows[0].keys) if rows else _key_columns(group_by)
    metadata_keys = sorted({k for r in rows for k in r.metadata})
    taken = {*GROUPS, "consumer_id", "consumer_name", *FIGURES}  # whatever is grouped by
    metadata_columns = [f"metadata_{k}" if k in taken else k for k in metadata_keys]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([*key_columns, *metadata_columns, *FIGURES])
    for row in rows:
        writer.writerow(
            [
                *(safe_cell(row.keys.get(k)) for k in key_columns),
                *(safe_cell(row.metadata.get(k)) for k in metadata_keys),
                *(safe_cell(v) for v in render_figures(row.figures).values()),
            ]
        )
    return out.getvalue()


def _key_columns(group_by: Sequence[str]) -> list[str]:
    columns: list[str] = []
    for g in group_by:
        columns.extend(["consumer_id", "consumer_name"] if g == "consumer" else [g])
    return columns


def csv_filename(gateway_id: UUID, start: datetime, end: datetime) -> str:
    return f"usage-{gateway_id}-{start:%Y%m%dT%H}-{end:%Y%m%dT%H}.csv"


# -- forecast ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Forecast:
    """The current UTC month: spent so far, the burn rate and the month-end projection."""

    month: str
    spent_usd: Decimal
    burn_rate_usd_per_day: Decimal
    burn_window_from: datetime
    burn_window_to: datetime
    projected_usd: Decimal
    days_elapsed: Decimal
    days_remaining: Decimal
    days_in_month: int

    def render(self) -> dict[str, Any]:
        return {
            "month": self.month,
            "spent_usd": money(self.spent_usd),
            "burn_rate_usd_per_day": money(self.burn_rate_usd_per_day),
            "burn_window": {
                "from": iso(self.burn_window_from),
                "to": iso(self.burn_window_to),
            },
            "projected_usd": money(self.projected_usd),
            "days_elapsed": float(self.days_elapsed),
            "days_remaining": float(self.days_remaining),
            "days_in_month": self.days_in_month,
        }


def burn_window(now: datetime) -> tuple[datetime, datetime]:
    """The last 7 days up to now (from a whole hour: the rollups are hourly), or the month
    so far when it began less than 7 days ago: the current burn rate, today's spend in it
    (a window of full days only said "0 a day" to a gateway that began spending today)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    return max(hour - 7 * DAY, month_start(now)), now


def _days(span: timedelta) -> Decimal:
    return (Decimal(span.total_seconds()) / Decimal(86400)).quantize(MICRO)


def project(now: datetime, spent: Decimal, window_cost: Decimal) -> Forecast:
    """Spent so far plus the burn rate times the days left (rounded to a millionth)."""
    start, end = month_start(now), next_month(now)
    window_from, window_to = burn_window(now)
    window_days = _days(window_to - window_from)
    rate = (
        (window_cost / window_days).quantize(MICRO, ROUND_HALF_EVEN) if window_days else Decimal(0)
    )
    remaining = _days(end - now)
    return Forecast(
        month=f"{now:%Y-%m}",
        spent_usd=spent,
        burn_rate_usd_per_day=rate,
        burn_window_from=window_from,
        burn_window_to=window_to,
        projected_usd=(spent + rate * remaining).quantize(MICRO, ROUND_HALF_EVEN),
        days_elapsed=_days(now - start),
        days_remaining=remaining,
        days_in_month=(end - start).days,
    )


async def _cost(
    session: AsyncSession,
    gateway_id: UUID,
    start: datetime,
    end: datetime,
    consumer_id: UUID | None,
) -> Decimal:
    t = UsageHourlyRow.__table__.c  # type: ignore[attr-defined]
    stmt = select(func.coalesce(func.sum(t.cost_usd), 0)).where(
        t.gateway_id == gateway_id, t.hour >= start, t.hour < end
    )
    if consumer_id is not None:
        stmt = stmt.where(t.consumer_id == consumer_id)
    conn = await session.connection()
    return Decimal((await conn.execute(stmt)).scalar_one())


async def forecast(
    session: AsyncSession, gateway_id: UUID, now: datetime, consumer_id: UUID | None = None
) -> Forecast:
    """The month's forecast as of ``now``: the month so far and the burn window both
    include the hour in progress."""
    spent = await _cost(session, gateway_id, month_start(now), next_month(now), consumer_id)
    window_from, window_to = burn_window(now)
    window_cost = await _cost(session, gateway_id, window_from, ceil_hour(window_to), consumer_id)
    return project(now, spent, window_cost)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
