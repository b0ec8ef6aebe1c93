"""``GET /v1/gateways/{gw}/usage``: spend and tokens from the usage ledger, as JSON or a
chargeback CSV, with the month's forecast; ``GET .../usage/forecast``: the forecast alone.
A tenant's token reads its own gateways only (another tenant's is a 404)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from trustgate_admin.api.deps import UowDep
from trustgate_admin.api.errors import GATEWAY_ERRORS
from trustgate_admin.api.routing import AdminRoute
from trustgate_admin.governance import usage
from trustgate_admin.services.common import get_gateway

router = APIRouter(tags=["usage"], route_class=AdminRoute, responses=GATEWAY_ERRORS)


class Figures(BaseModel):
    """A group's (or the range's) figures; ``cost_usd`` is an exact decimal string."""

    requests: int
    errors: int
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    cost_usd: str
    cache_hits: int
    fallbacks: int


class UsageGroup(Figures):
    """One group: its keys (``consumer_id``, ``consumer_name``, ``metadata``, ``model``,
    ``provider``, ``hour``, ``day``, ``month``: those grouped by) and its figures."""

    model_config = ConfigDict(extra="allow")


class ForecastAnswer(BaseModel):
    """The current UTC month: spent so far, the USD/day burn rate over the window, the
    month-end projection (money as decimal strings)."""

    model_config = ConfigDict(extra="allow")

    month: str
    spent_usd: str
    burn_rate_usd_per_day: str
    projected_usd: str
    days_elapsed: float
    days_remaining: float
    days_in_month: int


class UsageReport(BaseModel):
    """The range read (hour-aligned), the groups, the range's totals and the forecast."""

    model_config = ConfigDict(extra="allow")

    gateway_id: UUID
    group_by: list[str]
    rows: list[UsageGroup]
    totals: Figures
    forecast: ForecastAnswer


_USAGE_ANSWER: dict[str, Any] = {
    "status_code": 200,
    "response_model": None,
    "responses": {
        200: {
            "model": UsageReport,
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or with format=csv a CSV attachment (one row per group)",
        }
    },
}
_FORECAST_ANSWER: dict[str, Any] = {
    "status_code": 200,
    "response_model": None,
    "responses": {200: {"model": ForecastAnswer}},
}

FromQ = Annotated[
    str | None,
    Query(
        alias="from",
        description="ISO 8601 date or date-time, UTC without an offset; taken down to its "
        "hour (default: the start of the current UTC month)",
    ),
]
ToQ = Annotated[
    str | None,
    Query(description="Exclusive; taken up to the end of its hour (default: now)"),
]
GroupQ = Annotated[
    str | None,
    Query(description=f"Comma-separated, any of {', '.join(usage.GROUPS)} (default: day)"),
]
FormatQ = Annotated[str | None, Query(alias="format", description="json (default) or csv")]
ConsumerQ = Annotated[UUID | None, Query(description="Only this consumer's usage")]


@router.get("/v1/gateways/{gateway_id}/usage", **_USAGE_ANSWER)
async def read_usage(
    gateway_id: UUID,
    uow: UowDep,
    from_: FromQ = None,
    to: ToQ = None,
    group_by: GroupQ = None,
    format_: FormatQ = None,
    consumer_id: ConsumerQ = None,
) -> Any:
    now = datetime.now(UTC)
    start, end = usage.parse_range(from_, to, now)
    q = usage.UsageQuery(gateway_id, start, end, usage.parse_group_by(group_by), consumer_id)
    kind = usage.parse_format(format_)
    async with uow:
        await get_gateway(uow.session, gateway_id)
        rows = await usage.read_usage(uow.session, q)
        if kind == "csv":
            name = usage.csv_filename(gateway_id, start, end)
            return Response(
                usage.render_csv(rows, q.group_by),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        forecast = await usage.forecast(uow.session, gateway_id, now, consumer_id)
    answer: dict[str, Any] = {
        "gateway_id": str(gateway_id),
        "from": usage.iso(start),
        "to": usage.iso(end),
        "group_by": list(q.group_by),
        "rows": usage.render_json_rows(rows, q.group_by),
        "totals": usage.render_figures(usage.totals(rows)),
        "forecast": forecast.render(),
    }
    if consumer_id is not None:
        answer["consumer_id"] = str(consumer_id)
    return answer


@router.get("/v1/gateways/{gateway_id}/usage/forecast", **_FORECAST_ANSWER)
async def read_forecast(
    gateway_id: UUID, uow: UowDep, consumer_id: ConsumerQ = None
) -> dict[str, Any]:
    async with uow:
        await get_gateway(uow.session, gateway_id)
        forecast = await usage.forecast(uow.session, gateway_id, datetime.now(UTC), consumer_id)
    answer = forecast.render()
    if consumer_id is not None:
        answer["consumer_id"] = str(consumer_id)
    return answer
