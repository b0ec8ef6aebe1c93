"""Runners: rate_limiter, request_size_limiter and the gateway's plan limits (entitlements).

- ``rate_limiter``: a sliding window per policy and subject (the consumer, or the gateway
  for a global policy), one atomic ``counters.hit`` per call, so a limit holds exactly
  across the proxy's replicas; its counters are keyed by the policy id, never by the
  limit, so changing a limit keeps what was counted.
- ``request_size_limiter``: the body's bytes and characters, no counters.
- ``gateway_plan``: the gateway's ``burst_per_min`` (a fixed minute) and
  ``quota_per_month`` (a UTC calendar month), reserved together in one
  ``counters.reserve``: a refused call consumes neither.

Everything a call does not change is computed once, when the policy is compiled.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Final, Literal
from uuid import UUID

from trustgate_core.counters.base import WindowHit
from trustgate_core.durations import parse_duration
from trustgate_core.errors import PolicyRejected
from trustgate_core.models import Gateway
from trustgate_core.plugins.ratelimit import RateLimiterSettings
from trustgate_core.plugins.size import RequestSizeLimiterSettings
from trustgate_core.policy.engine import Decision, PolicyDeps, PolicyInfo, Runner, RunnerType
from trustgate_core.policy.exchange import Header, PolicyExchange

#: The longest a ``throttle`` policy holds a call waiting for a slot; a call that would
#: wait longer is refused at once (waiting could not admit it).
THROTTLE_MAX_WAIT_S: Final = 10.0

Dim = Literal["global", "consumer"]
_Names = tuple[bytes, bytes, bytes]  # X-RateLimit-{dim}-Limit, -Remaining, -Reset
_NAMES: Final[dict[Dim, _Names]] = {
    dim: (
        f"x-ratelimit-{dim}-limit".encode(),
        f"x-ratelimit-{dim}-remaining".encode(),
        f"x-ratelimit-{dim}-reset".encode(),
    )
    for dim in ("global", "consumer")
}


def _ceil_s(ms: int) -> int:
    return -(-ms // 1000)


class RateLimiter(Runner):
    """``rate_limiter``: sliding window; 429 with ``Retry-After`` over the limit; in
    ``throttle`` mode waits (at most ``THROTTLE_MAX_WAIT_S``) for a slot and tries once
    more; in ``observe`` mode counts every call and changes no response."""

    def __init__(self, info: PolicyInfo, settings: RateLimiterSettings, deps: PolicyDeps) -> None:
        super().__init__(info, settings, deps)
        self.limit = settings.limit
        self.window = settings.window
        self.window_ms = max(int(parse_duration(settings.window, bare=None) * 1000), 1)
        self.retry_after = int(settings.retry_after) if settings.retry_after else None
        header = settings.group_by_header
        self.group_by: bytes | None = header.lower().encode("latin-1") if header else None
        self.observe = info.mode == "observe"
        self.throttle = info.mode == "throttle"
        self.dim: Dim = "global" if info.global_ else "consumer"
        self._names = _NAMES[self.dim]
        self._prefix = f"ratelimit:{info.id}:{self.dim}:"
        self._keys: dict[UUID, str] = {}  # by subject: the consumer, or the gateway

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        subject = x.gateway.id if self.info.global_ else x.consumer.id
        key = self._keys.get(subject)
        if key is None:
            key = self._keys[subject] = f"{self._prefix}{subject}"
        if self.group_by is not None:
            value = x.header(self.group_by)
            if value:
                key = f"{key}:hdr:{value}"
        counters = self.deps.counters
        hit: WindowHit = await counters.hit(key, self.limit, self.window_ms, force=self.observe)
        decision: Decision | None = None
        if not hit.allowed and self.throttle and hit.retry_after_ms <= THROTTLE_MAX_WAIT_S * 1000:
            await asyncio.sleep(hit.retry_after_ms / 1000)
            hit = await counters.hit(key, self.limit, self.window_ms)
            decision = "throttle"
        if not hit.allowed:
            raise self._refusal(hit)
        if not self.observe:
            _publish(x, self._names, hit)
        return decision

    def _refusal(self, hit: WindowHit) -> PolicyRejected:
        retry = self.retry_after or max(hit.retry_after_s, 1)
        dim, names = self.dim, self._names
        body = {
            "error": "rate limit exceeded",
            "message": f"Request blocked: {dim} rate limit exceeded. Retry after {retry}s.",
            "reason": "rate_limit_exceeded",
            "scope": dim,
            "limit": self.limit,
            "window": self.window,
            "retry_after_seconds": retry,
        }
        headers = (
            (b"retry-after", b"%d" % retry),
            (names[0], b"%d" % self.limit),
            (names[1], b"0"),
            (names[2], b"%d" % _ceil_s(hit.reset_ms)),
        )
        return PolicyRejected(429, body, headers, kind="rate_limited")


def _publish(x: PolicyExchange, names: _Names, hit: WindowHit) -> None:
    """Set the dim's three headers; when several policies of one dim pass (a per-minute
    and a per-day limit), the headers tell the tightest (the fewest remaining)."""
    remaining = hit.remaining
    values = (b"%d" % hit.limit, b"%d" % remaining, b"%d" % _ceil_s(hit.reset_ms))
    headers = x.response_headers
    held: tuple[int, int] | None = x.scratch.get(names)
    if held is None:
        x.scratch[names] = (remaining, len(headers))
        headers.extend(zip(names, values, strict=True))
    elif remaining < held[0]:
        at = held[1]
        headers[at : at + 3] = zip(names, values, strict=True)
        x.scratch[names] = (remaining, at)


class RequestSizeLimiter(Runner):
    """``request_size_limiter``: 411 without Content-Length when required, 413 over the
    byte or character limit; the size headers on a passing call."""

    def __init__(
        self, info: PolicyInfo, settings: RequestSizeLimiterSettings, deps: PolicyDeps
    ) -> None:
        super().__init__(info, settings, deps)
        self.max_bytes = settings.limit_bytes()
        self.max_chars = settings.max_chars_per_request
        self.require_length = settings.require_content_length
        self.observe = info.mode == "observe"
        self._limits: tuple[Header, Header] = (
            (b"x-size-limit-bytes", b"%d" % self.max_bytes),
            (b"x-size-limit-chars", b"%d" % self.max_chars),
        )

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        if self.require_length and x.header(b"content-length") is None:
            raise PolicyRejected(
                411,
                {
                    "error": "length_required",
                    "message": "This gateway requires a Content-Length header "
                    "(the request was sent without one, e.g. chunked).",
                },
                kind="length_required",
            )
        body = x.body
        size = len(body)
        if size > self.max_bytes:
            raise self._too_large(size, self.max_bytes, "bytes")
        chars = size if body.isascii() else len(body.decode("utf-8", "replace"))
        if chars > self.max_chars:
            raise self._too_large(chars, self.max_chars, "characters")
        if not self.observe:
            x.response_headers.extend(
                (
                    (b"x-request-size-bytes", b"%d" % size),
                    (b"x-request-size-chars", b"%d" % chars),
                    *self._limits,
                )
            )
        return None

    def _too_large(self, size: int, limit: int, unit: str) -> PolicyRejected:
        body = {
            "error": "request_too_large",
            "message": f"Request body is {size} {unit}; the limit is {limit} {unit}.",
            "size": size,
            "limit": limit,
            "unit": unit,
        }
        return PolicyRejected(413, body, self._limits, kind="request_too_large")


RUNNERS: dict[str, RunnerType] = {
    "rate_limiter": RateLimiter,
    "request_size_limiter": RequestSizeLimiter,
}


# -- the gateway's plan limits -------------------------------------------------------------
PLAN_INFO: Final = PolicyInfo(
    id=None, name="gateway plan", plugin="entitlements", stages=frozenset({"pre_request"})
)
_MINUTE_MS: Final = 60_000
#: How long a window's key outlives its window (a replica's clock a little behind).
_KEY_SLACK_MS: Final = 60_000


def _limit(value: Any) -> int | None:
    """A plan limit as stored: an integer > 0, else none (the admin refuses others)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _next_month(now: datetime) -> datetime:
    if now.month == 12:
        return datetime(now.year + 1, 1, 1, tzinfo=UTC)
    return datetime(now.year, now.month + 1, 1, tzinfo=UTC)


class GatewayPlan(Runner):
    """A gateway's ``burst_per_min`` and ``quota_per_month``: 429 with ``Retry-After``,
    ``X-RateLimit-Limit``, ``-Remaining`` and ``-Reason`` (burst|quota) when either is
    spent; counters unreachable → the call passes (``fail_open``, as the reference)."""

    def __init__(
        self, gateway_id: UUID, burst: int | None, quota: int | None, deps: PolicyDeps
    ) -> None:
        super().__init__(PLAN_INFO, None, deps)
        self.gateway_id = gateway_id
        self.burst = burst
        self.quota = quota
        self._minute = -1
        self._keys: tuple[str, ...] = ()
        self._maxima: tuple[int, ...] = ()
        self._ttls: tuple[int, ...] = ()
        self._reasons: tuple[str, ...] = ()
        self._month_ends_ms = 0

    def _roll(self, now_ms: int) -> None:
        """The keys of the minute and month ``now_ms`` falls in."""
        minute = now_ms // _MINUTE_MS
        self._minute = minute
        keys, maxima, ttls, reasons = [], [], [], []
        if self.burst is not None:
            keys.append(f"gt:rl:burst:{self.gateway_id}:{minute}")
            maxima.append(self.burst)
            ttls.append(_MINUTE_MS + _KEY_SLACK_MS)
            reasons.append("burst")
        if self.quota is not None:
            now = datetime.fromtimestamp(now_ms / 1000, UTC)
            self._month_ends_ms = int(_next_month(now).timestamp() * 1000)
            keys.append(f"gt:rl:quota:{self.gateway_id}:{now:%Y-%m}")
            maxima.append(self.quota)
            ttls.append(self._month_ends_ms - now_ms + _KEY_SLACK_MS)
            reasons.append("quota")
        self._keys, self._maxima = tuple(keys), tuple(maxima)
        self._ttls, self._reasons = tuple(ttls), tuple(reasons)

    async def pre_request(self, x: PolicyExchange) -> Decision | None:
        now_ms = int(time.time() * 1000)
        if now_ms // _MINUTE_MS != self._minute:
            self._roll(now_ms)
        reservation = await self.deps.counters.reserve(self._keys, self._maxima, 1, self._ttls)
        if reservation.allowed:
            return None
        blocked = reservation.blocked
        reason = self._reasons[blocked]
        limit = self._maxima[blocked]
        if reason == "burst":
            ends_ms = (self._minute + 1) * _MINUTE_MS
            per = "minute"
        else:
            ends_ms = self._month_ends_ms
            per = "month"
        retry = max(_ceil_s(ends_ms - now_ms), 1)
        remaining = max(limit - reservation.used[blocked], 0)
        body = {
            "error": "rate limit exceeded",
            "message": f"Request blocked: the gateway's plan allows {limit} requests per "
            f"{per} ({reason}). Retry after {retry}s.",
            "reason": reason,
            "limit": limit,
            "retry_after_seconds": retry,
        }
        headers = (
            (b"retry-after", b"%d" % retry),
            (b"x-ratelimit-limit", b"%d" % limit),
            (b"x-ratelimit-remaining", b"%d" % remaining),
            (b"x-ratelimit-reason", reason.encode()),
        )
        raise PolicyRejected(429, body, headers, kind="rate_limited")


def gateway_plan(gateway: Gateway, deps: PolicyDeps) -> Runner | None:
    """The runner of the gateway's plan limits, or ``None`` when it has none."""
    entitlements = gateway.entitlements or {}
    burst = _limit(entitlements.get("burst_per_min"))
    quota = _limit(entitlements.get("quota_per_month"))
    if burst is None and quota is None:
        return None
    return GatewayPlan(gateway.id, burst, quota, deps)
