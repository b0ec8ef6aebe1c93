"""The limit runners through the policy engine, on in-process counters with a clock the
test moves: ``rate_limiter`` (window, headers, 429 body, group_by_header, scopes, modes),
``request_size_limiter`` (411, 413, headers) and the gateway's plan limits (burst and
monthly quota, reserved together)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest

from trustgate_core.counters import LocalCounters
from trustgate_core.errors import PolicyRejected
from trustgate_core.ids import uuid7
from trustgate_core.models import Consumer, Gateway, Policy
from trustgate_core.plugins import validate_policy
from trustgate_core.policy import Chain, PolicyDeps, PolicyEngine, PolicyExchange
from trustgate_core.policy.runners import LLM_RUNNERS, gateway_plan, limits

NOW = datetime(2026, 3, 31, 23, 58, 0, tzinfo=UTC)
GW = uuid7()
GATEWAY = Gateway(id=GW, gateway_id=GW, created_at=NOW, updated_at=NOW, slug="gw")


class Clock:
    def __init__(self) -> None:
        self.now = NOW.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(limits, "time", SimpleNamespace(time=clock))  # the plan's windows
    return clock


@pytest.fixture
def engine(clock: Clock) -> PolicyEngine:
    deps = PolicyDeps(counters=LocalCounters(clock=clock))
    return PolicyEngine(LLM_RUNNERS, deps, gateway_runner=gateway_plan)


def policy(plugin: str, settings: dict[str, Any], **fields: Any) -> Policy:
    checked = validate_policy(plugin, None, fields.pop("mode", None), settings)
    return Policy.model_validate(
        {
            "id": fields.pop("id", None) or uuid7(),
            "gateway_id": GW,
            "created_at": NOW,
            "updated_at": NOW,
            "name": fields.pop("name", plugin),
            "slug": plugin,
            "settings": checked.settings,
            "stages": list(checked.stages),
            "mode": checked.mode,
            **fields,
        }
    )


def consumer(*attached: Policy) -> Consumer:
    return Consumer(
        id=uuid7(),
        gateway_id=GW,
        created_at=NOW,
        updated_at=NOW,
        name="c",
        slug="c",
        policy_ids=[p.id for p in attached],
    )


def chain_of(
    engine: PolicyEngine,
    *attached: Policy,
    globals_: tuple[Policy, ...] = (),
    who: Consumer | None = None,
    gateway: Gateway = GATEWAY,
) -> tuple[Chain, Consumer]:
    who = who or consumer(*attached)
    table: dict[UUID, Policy] = {p.id: p for p in (*attached, *globals_)}
    return engine.compile(gateway, who, table), who


async def call(
    chain: Chain,
    who: Consumer,
    *,
    body: bytes = b'{"model":"m"}',
    headers: tuple[tuple[bytes, bytes], ...] = ((b"content-length", b"13"),),
    gateway: Gateway = GATEWAY,
) -> PolicyExchange:
    x = PolicyExchange(gateway, who, headers)
    x.body = body
    await chain.run("pre_request", x)
    return x


async def refused(chain: Chain, who: Consumer, **kwargs: Any) -> PolicyRejected:
    with pytest.raises(PolicyRejected) as caught:
        await call(chain, who, **kwargs)
    return caught.value


# -- rate_limiter ------------------------------------------------------------------------
async def test_a_rate_limit_admits_its_limit_then_429_with_the_time_until_a_slot_frees(
    engine: PolicyEngine, clock: Clock
) -> None:
    rl = policy("rate_limiter", {"limit": 2, "window": "1m"})
    chain, who = chain_of(engine, rl)
    first = await call(chain, who)
    reset = int(clock.now) + 60
    assert dict(first.response_headers) == {
        b"x-ratelimit-consumer-limit": b"2",
        b"x-ratelimit-consumer-remaining": b"1",
        b"x-ratelimit-consumer-reset": str(reset).encode(),
    }
    clock.now += 20.5
    second = await call(chain, who)
    assert dict(second.response_headers)[b"x-ratelimit-consumer-remaining"] == b"0"
    clock.now += 10
    refusal = await refused(chain, who)
    assert refusal.status == 429 and refusal.code == "rate_limited"
    assert refusal.body() == {
        "error": "rate limit exceeded",
        "message": "Request blocked: consumer rate limit exceeded. Retry after 30s.",
        "reason": "rate_limit_exceeded",
        "scope": "consumer",
        "limit": 2,
        "window": "1m",
        "retry_after_seconds": 30,  # the first hit leaves the window in 29.5 s
    }
    assert dict(refusal.headers)[b"retry-after"] == b"30"
    clock.now += 30
    await call(chain, who)  # a slot freed


async def test_an_explicit_retry_after_is_announced_as_set(engine: PolicyEngine) -> None:
    rl = policy("rate_limiter", {"limit": 1, "window": "1h", "retry_after": 7})
    chain, who = chain_of(engine, rl)
    await call(chain, who)
    refusal = await refused(chain, who)
    assert dict(refusal.headers)[b"retry-after"] == b"7"
    assert refusal.body()["retry_after_seconds"] == 7


async def test_group_by_header_counts_each_value_apart_and_requests_without_it_together(
    engine: PolicyEngine,
) -> None:
    rl = policy("rate_limiter", {"limit": 1, "window": "1m", "group_by_header": "X-User"})
    chain, who = chain_of(engine, rl)
    await call(chain, who, headers=((b"x-user", b"alice"),))
    await call(chain, who, headers=((b"x-user", b"bob"),))
    await refused(chain, who, headers=((b"x-user", b"alice"),))
    await call(chain, who, headers=())  # the shared bucket of requests without the header
    await refused(chain, who, headers=())


async def test_a_global_limit_is_shared_by_the_gateway_s_consumers_and_a_consumer_s_own_overrides_it(
    engine: PolicyEngine,
) -> None:
    shared = policy("rate_limiter", {"limit": 1, "window": "1m"}, **{"global": True})
    chain_a, a = chain_of(engine, globals_=(shared,))
    chain_b, b = chain_of(engine, globals_=(shared,))
    x = await call(chain_a, a)
    assert dict(x.response_headers)[b"x-ratelimit-global-limit"] == b"1"
    refusal = await refused(chain_b, b)
    assert refusal.body()["scope"] == "global"
    assert "global rate limit exceeded" in refusal.body()["message"]

    own = policy("rate_limiter", {"limit": 3, "window": "1m"})
    chain_c, c = chain_of(engine, own, globals_=(shared,))
    for _ in range(3):
        x = await call(chain_c, c)
    assert dict(x.response_headers)[b"x-ratelimit-consumer-limit"] == b"3"
    assert b"x-ratelimit-global-limit" not in dict(x.response_headers)


async def test_a_global_limit_attached_to_a_consumer_still_counts_for_the_gateway(
    engine: PolicyEngine,
) -> None:
    shared = policy("rate_limiter", {"limit": 1, "window": "1m"}, **{"global": True})
    chain_a, a = chain_of(engine, shared)  # attached as well as global
    chain_b, b = chain_of(engine, globals_=(shared,))
    x = await call(chain_a, a)
    assert dict(x.response_headers)[b"x-ratelimit-global-remaining"] == b"0"
    assert (await refused(chain_b, b)).body()["scope"] == "global"


async def test_two_limits_on_one_consumer_both_apply_and_the_headers_tell_the_tightest(
    engine: PolicyEngine,
) -> None:
    per_minute = policy("rate_limiter", {"limit": 3, "window": "1m"})
    per_day = policy("rate_limiter", {"limit": 2, "window": "1d"})
    chain, who = chain_of(engine, per_minute, per_day)
    x = await call(chain, who)
    headers = x.response_headers
    assert [n for n, _ in headers].count(b"x-ratelimit-consumer-remaining") == 1
    assert dict(headers)[b"x-ratelimit-consumer-limit"] == b"2"
    assert dict(headers)[b"x-ratelimit-consumer-remaining"] == b"1"
    await call(chain, who)
    refusal = await refused(chain, who)  # the per-day limit, though the minute has room
    assert refusal.body()["window"] == "1d"


async def test_a_changed_limit_keeps_what_was_counted(engine: PolicyEngine) -> None:
    before = policy("rate_limiter", {"limit": 3, "window": "1m"})
    chain, who = chain_of(engine, before)
    await call(chain, who)
    await call(chain, who)
    after = before.model_copy(update={"settings": {"limit": 2, "window": "1m"}})
    chain, _ = chain_of(engine, after, who=who)
    await refused(chain, who)


async def test_observe_counts_every_call_changes_no_response_and_records_what_it_would_do(
    engine: PolicyEngine,
) -> None:
    watched = policy("rate_limiter", {"limit": 1, "window": "1m"}, mode="observe")
    chain, who = chain_of(engine, watched)
    first = await call(chain, who)
    second = await call(chain, who)
    assert first.response_headers == second.response_headers == []
    assert [r.decision for r in (*first.records, *second.records)] == ["pass", "observe"]
    assert second.records[0].status_code == 429


async def test_throttle_refuses_at_once_a_call_that_could_not_be_admitted_within_the_cap(
    engine: PolicyEngine,
) -> None:
    throttled = policy("rate_limiter", {"limit": 1, "window": "1h"}, mode="throttle")
    chain, who = chain_of(engine, throttled)
    await call(chain, who)
    refusal = await refused(chain, who)  # a slot frees in an hour: no point waiting
    assert refusal.status == 429


async def test_throttle_waits_for_the_slot_then_passes(
    engine: PolicyEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    throttled = policy("rate_limiter", {"limit": 1, "window": "2s"}, mode="throttle")
    chain, who = chain_of(engine, throttled)
    await call(chain, who)
    clock.now += 1.5  # a slot frees in 0.5 s
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # the counters' clock moves instead
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr(limits, "asyncio", SimpleNamespace(sleep=sleep))
    x = await call(chain, who)
    assert slept == [pytest.approx(0.5, abs=0.002)]
    assert [r.decision for r in x.records] == ["throttle"]


# -- request_size_limiter -----------------------------------------------------------------
async def test_the_size_limiter_sets_its_headers_and_refuses_over_bytes_or_characters(
    engine: PolicyEngine,
) -> None:
    sized = policy(
        "request_size_limiter",
        {"allowed_payload_size": 40, "size_unit": "bytes", "max_chars_per_request": 20},
    )
    chain, who = chain_of(engine, sized)
    body = '{"m":"héllo"}'.encode()
    x = await call(chain, who, body=body)
    assert dict(x.response_headers) == {
        b"x-request-size-bytes": b"14",
        b"x-request-size-chars": b"13",
        b"x-size-limit-bytes": b"40",
        b"x-size-limit-chars": b"20",
    }
    chars = await refused(chain, who, body=('{"m":"' + "é" * 15 + '"}').encode())  # 38 B
    assert (chars.status, chars.code) == (413, "request_too_large")
    assert chars.body() == {
        "error": "request_too_large",
        "message": "Request body is 23 characters; the limit is 20 characters.",
        "size": 23,
        "limit": 20,
        "unit": "characters",
    }
    too_big = await refused(chain, who, body=b'{"m":"' + b"a" * 40 + b'"}')
    assert too_big.body()["message"] == "Request body is 48 bytes; the limit is 40 bytes."


async def test_the_size_limiter_requires_a_content_length_when_told(
    engine: PolicyEngine,
) -> None:
    sized = policy("request_size_limiter", {"require_content_length": True})
    chain, who = chain_of(engine, sized)
    await call(chain, who)
    refusal = await refused(chain, who, headers=((b"transfer-encoding", b"chunked"),))
    assert (refusal.status, refusal.code) == (411, "length_required")
    assert refusal.body()["error"] == "length_required"
    assert "Content-Length" in refusal.body()["message"]


# -- the gateway's plan --------------------------------------------------------------------
def planned(**entitlements: Any) -> Gateway:
    return GATEWAY.model_copy(update={"entitlements": entitlements})


def test_a_gateway_without_plan_limits_has_no_plan_runner() -> None:
    deps = PolicyDeps(counters=LocalCounters())
    assert gateway_plan(GATEWAY, deps) is None
    assert gateway_plan(planned(tier="free"), deps) is None
    assert gateway_plan(planned(burst_per_min=True, quota_per_month="9"), deps) is None


async def test_the_plan_burst_is_a_fixed_minute_then_429_burst(
    engine: PolicyEngine, clock: Clock
) -> None:
    gw = planned(burst_per_min=2, quota_per_month=100)
    chain, who = chain_of(engine, gateway=gw)
    clock.now += 30  # 23:59:30
    await call(chain, who, gateway=gw)
    await call(chain, who, gateway=gw)
    refusal = await refused(chain, who, gateway=gw)
    assert refusal.status == 429
    assert dict(refusal.headers) == {
        b"retry-after": b"30",
        b"x-ratelimit-limit": b"2",
        b"x-ratelimit-remaining": b"0",
        b"x-ratelimit-reason": b"burst",
    }
    body = refusal.body()
    assert {k: body[k] for k in ("error", "reason", "limit", "retry_after_seconds")} == {
        "error": "rate limit exceeded",
        "reason": "burst",
        "limit": 2,
        "retry_after_seconds": 30,
    }
    clock.now += 30  # the next minute (and month): the burst counter starts over
    await call(chain, who, gateway=gw)


async def test_the_plan_quota_is_a_utc_calendar_month_and_a_refused_call_consumes_neither(
    engine: PolicyEngine, clock: Clock
) -> None:
    gw = planned(burst_per_min=2, quota_per_month=3)
    chain, who = chain_of(engine, gateway=gw)
    await call(chain, who, gateway=gw)  # 23:58, March 31st
    await call(chain, who, gateway=gw)
    for _ in range(3):
        assert (await refused(chain, who, gateway=gw)).body()["reason"] == "burst"
    clock.now += 60  # 23:59: the burst refusals took none of the quota
    await call(chain, who, gateway=gw)
    refusal = await refused(chain, who, gateway=gw)
    assert refusal.body()["reason"] == "quota"
    assert dict(refusal.headers)[b"x-ratelimit-reason"] == b"quota"
    assert refusal.body()["retry_after_seconds"] == 60  # until April 1st, 00:00 UTC
    clock.now += 60
    await call(chain, who, gateway=gw)  # April's quota


async def test_a_plan_runs_before_the_consumer_s_policies(engine: PolicyEngine) -> None:
    gw = planned(quota_per_month=1)
    rl = policy("rate_limiter", {"limit": 5, "window": "1m"})
    chain, who = chain_of(engine, rl, gateway=gw)
    x = await call(chain, who, gateway=gw)
    assert [r.name for r in x.records] == ["gateway plan", "rate_limiter"]
    refusal = await refused(chain, who, gateway=gw)
    assert refusal.body()["reason"] == "quota"
