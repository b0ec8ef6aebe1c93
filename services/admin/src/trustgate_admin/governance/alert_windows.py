"""What an alert rule measures, without I/O: its window, the share of its limit used, the
thresholds that share has crossed, and whether a ``token_rate_limiter`` budget can be
measured from hourly rollups at all."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from pydantic import ValidationError

from trustgate_core.durations import parse_duration
from trustgate_core.plugins.tokens import TokenRateLimiterSettings

HOUR: Final = 3600
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    """``[start, end)``, in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Usage:
    """What the ledger counted in a window (summed over its hourly rows)."""

    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


def calendar_window(period: str, now: datetime) -> Window:
    """The UTC calendar day or month holding ``now``."""
    now = now.astimezone(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(start, start + timedelta(days=1))
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return Window(start, end)


def fixed_window(seconds: int, now: datetime) -> Window:
    """The limiter's fixed window holding ``now``: aligned to the epoch, as
    ``trustgate_core.policy.runners.budget`` computes it (``start = now // seconds *
    seconds``), so an alert and the proxy's counter cover the same span."""
    epoch_seconds = int(now.timestamp())
    start = epoch_seconds // seconds * seconds
    return Window(EPOCH + timedelta(seconds=start), EPOCH + timedelta(seconds=start + seconds))


def last_full_hour(now: datetime) -> Window:
    """The hour that ended last (at 10:20, 09:00-10:00)."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return Window(end - timedelta(hours=1), end)


def crossed(thresholds: list[int], observed: Decimal, limit: Decimal) -> list[int]:
    """The thresholds (percent of ``limit``) that ``observed`` has reached."""
    if limit <= 0:
        return []
    percent = observed * 100 / limit
    return [t for t in thresholds if percent >= t]


@dataclass(frozen=True)
class BudgetMeasure:
    """How to measure one ``token_rate_limiter`` aggregate budget from the rollups."""

    seconds: int
    maximum: Decimal
    dollars: bool
    counting: str
    count_cache_reads: bool

    @property
    def unit(self) -> str:
        return "usd" if self.dollars else "tokens"

    def used(self, usage: Usage) -> Decimal:
        """What the limiter would have charged: dollars are the cost; tokens are the
        prompt (less provider-cache reads unless they count) and/or the answer."""
        if self.dollars:
            return usage.cost_usd
        prompt = usage.input_tokens
        if not self.count_cache_reads:
            prompt -= min(usage.cached_tokens, prompt)
        if self.counting == "input":
            return Decimal(prompt)
        if self.counting == "output":
            return Decimal(usage.output_tokens)
        return Decimal(prompt + usage.output_tokens)


def budget_measure(settings: dict[str, Any]) -> BudgetMeasure:
    """The policy's aggregate budget as the ledger can measure it; ``ValueError`` saying
    why not when it cannot (no aggregate, a window the hourly rollups cannot cover, a
    budget split by a header or a dollar budget counting one side only)."""
    try:
        parsed = TokenRateLimiterSettings.model_validate(settings)
    except ValidationError as exc:
        raise ValueError("the policy's settings are not valid token_rate_limiter settings") from exc
    aggregate = parsed.aggregate
    if aggregate is None:
        raise ValueError("the policy has no aggregate budget (alerts measure aggregate.max)")
    seconds = math.ceil(parse_duration(aggregate.time_window, bare=None))
    if seconds % HOUR:
        raise ValueError(
            f"the policy's window ({aggregate.time_window}) is not a whole number of hours:"
            " the usage ledger counts per hour, so it cannot measure it"
        )
    if parsed.group_by_header is not None:
        raise ValueError(
            "the policy keeps a budget per header value (group_by_header): the usage ledger"
            " does not count per header, so it cannot measure it"
        )
    if parsed.unit == "dollars" and parsed.counting != "total":
        raise ValueError(
            "the policy counts one side of a dollar cost: the usage ledger keeps the total"
            " cost only, so it cannot measure it"
        )
    return BudgetMeasure(
        seconds=seconds,
        maximum=Decimal(str(aggregate.max)),
        dollars=parsed.unit == "dollars",
        counting=parsed.counting,
        count_cache_reads=parsed.count_cache_reads,
    )


def anomaly_limit(baseline_spend: Decimal, baseline_hours: int, factor: float) -> Decimal:
    """The spend an hour may reach before it is anomalous: ``factor`` times the average
    hour of the baseline."""
    return baseline_spend / baseline_hours * Decimal(str(factor))


def is_anomalous(last_hour: Decimal, limit: Decimal, min_spend: Decimal) -> bool:
    """Above the limit and at least ``min_spend`` (a quiet baseline's first dollar is
    anomalous by ratio, but not worth a message under ``min_spend``)."""
    return last_hour > limit and last_hour >= min_spend
