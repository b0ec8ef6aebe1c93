"""The dollar cost of a call's usage, each token priced once.

Usage is the request event's ``usage`` (``trustgate_core.events.RequestUsage``), as the
proxy normalises every provider: ``prompt_tokens`` counts every prompt token, cache reads
(``cached_input_tokens``) and cache writes (``cache_write_tokens``) included, whatever the
provider reported apart (Anthropic and Bedrock do). Reasoning tokens are in
``completion_tokens``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trustgate_core.pricing.prices import ModelPrice

#: Costs are rounded to a billionth of a dollar: exact to the cent-fraction, no float noise.
DIGITS = 9


@dataclass(frozen=True, slots=True)
class Cost:
    """USD. ``prompt_usd`` prices the prompt tokens not read from a cache (cache writes
    included), ``cached_usd`` the cache reads when the model prices them apart (else they
    are in ``prompt_usd``); ``total_usd`` is the sum of the three parts."""

    prompt_usd: float
    completion_usd: float
    cached_usd: float
    total_usd: float
    currency: str = "USD"

    def as_event(self) -> dict[str, Any]:
        """The request event's ``cost`` (``trustgate_core.events.RequestCost``)."""
        return {
            "prompt_usd": self.prompt_usd,
            "completion_usd": self.completion_usd,
            "cached_usd": self.cached_usd,
            "total_usd": self.total_usd,
            "currency": self.currency,
        }


def _count(usage: Mapping[str, Any], key: str) -> int:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def cost_of(usage: Mapping[str, Any], price: ModelPrice) -> Cost:
    prompt = _count(usage, "prompt_tokens")
    read = min(_count(usage, "cached_input_tokens"), prompt)
    written = min(_count(usage, "cache_write_tokens"), prompt - read)
    fresh = prompt - read - written
    write_price = price.input if price.cache_write is None else price.cache_write
    prompt_usd = fresh * price.input + written * write_price
    if price.cached_input is None:
        prompt_usd += read * price.input
        cached_usd = 0.0
    else:
        cached_usd = read * price.cached_input
    prompt_usd = round(prompt_usd, DIGITS)
    cached_usd = round(cached_usd, DIGITS)
    completion_usd = round(_count(usage, "completion_tokens") * price.output, DIGITS)
    return Cost(
        prompt_usd=prompt_usd,
        completion_usd=completion_usd,
        cached_usd=cached_usd,
        total_usd=round(prompt_usd + completion_usd + cached_usd, DIGITS),
    )
