"""What a limit plugin relies on from its counters, on Redis and in one process alike:
sliding windows that admit exactly `limit`, budgets never reserved past their maximum,
settlements that release and never resurrect an expired window."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable

import pytest
import pytest_asyncio

from trustgate_core.counters import Counters, LocalCounters, RedisCounters, WindowHit
from trustgate_testkit.fixtures import Infra, wait_for

# Redis stamps hits with its own clock; this machine's may read a few ms apart.
CLOCK_SLACK_MS = 50


@pytest_asyncio.fixture(params=["local", "redis"])
async def counters(request: pytest.FixtureRequest, infra: Infra) -> AsyncIterator[Counters]:
    store: Counters
    if request.param == "local":
        store = LocalCounters()
    else:
        store = RedisCounters(infra.redis_url, timeout=1.0)
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
def prefix() -> str:
    return f"test:counters:{uuid.uuid4().hex}:"


def now_ms() -> int:
    return int(time.time() * 1000)


# --- sliding windows -----------------------------------------------------------------------


async def test_a_window_admits_its_limit_then_refuses(counters: Counters, prefix: str) -> None:
    hits = [await counters.hit(prefix + "rl", 3, 60_000) for _ in range(4)]

    assert [h.allowed for h in hits] == [True, True, True, False]
    assert [h.count for h in hits] == [1, 2, 3, 3]
    assert [h.remaining for h in hits] == [2, 1, 0, 0]
    assert [h.retry_after_ms for h in hits[:3]] == [0, 0, 0]


async def test_concurrent_hits_admit_exactly_the_limit(counters: Counters, prefix: str) -> None:
    hits = await asyncio.gather(*(counters.hit(prefix + "rl", 50, 60_000) for _ in range(150)))

    assert sum(h.allowed for h in hits) == 50
    assert max(h.count for h in hits) == 50


async def test_a_refused_hit_says_when_a_slot_frees(counters: Counters, prefix: str) -> None:
    before = now_ms()
    first = await counters.hit(prefix + "rl", 2, 10_000)
    await counters.hit(prefix + "rl", 2, 10_000)
    refused = await counters.hit(prefix + "rl", 2, 10_000)
    after = now_ms()

    assert first.reset_ms == pytest.approx(before + 10_000, abs=after - before + CLOCK_SLACK_MS)
    assert not refused.allowed
    assert refused.reset_ms == first.reset_ms  # the oldest hit still rules the window
    assert 10_000 - (after - before) - CLOCK_SLACK_MS <= refused.retry_after_ms <= 10_000
    assert refused.retry_after_s == math.ceil(refused.retry_after_ms / 1000) == 10


async def test_an_empty_window_resets_a_window_from_now(counters: Counters, prefix: str) -> None:
    before = now_ms()
    refused = await counters.hit(prefix + "rl", 0, 5_000)

    assert not refused.allowed and refused.count == 0
    assert refused.reset_ms == pytest.approx(before + 5_000, abs=CLOCK_SLACK_MS)
    assert refused.retry_after_ms == 5_000


async def test_a_slot_frees_when_the_oldest_hit_leaves_the_window(
    counters: Counters, prefix: str
) -> None:
    await counters.hit(prefix + "rl", 1, 150)
    refused = await counters.hit(prefix + "rl", 1, 150)
    assert not refused.allowed and 0 < refused.retry_after_ms <= 150

    admitted = await wait_for(
        lambda: _allowed(counters.hit(prefix + "rl", 1, 150)), timeout=2.0, interval=0.01
    )
    assert admitted is not None and admitted.count == 1


async def _allowed(hit: Awaitable[WindowHit]) -> WindowHit | None:
    result = await hit
    return result if result.allowed else None


async def test_observe_mode_counts_every_hit_and_reports_the_verdict(
    counters: Counters, prefix: str
) -> None:
    hits = [await counters.hit(prefix + "rl", 2, 10_000, force=True) for _ in range(4)]

    assert [h.allowed for h in hits] == [True, True, False, False]
    assert [h.count for h in hits] == [1, 2, 3, 4]
    # Two of the four must leave before one more fits: the third-oldest frees the slot.
    assert 9_000 < hits[-1].retry_after_ms <= 10_000


async def test_windows_of_different_keys_are_apart(counters: Counters, prefix: str) -> None:
    await counters.hit(prefix + "a", 1, 60_000)

    assert (await counters.hit(prefix + "b", 1, 60_000)).allowed
    assert not (await counters.hit(prefix + "a", 1, 60_000)).allowed


# --- budgets -------------------------------------------------------------------------------


async def test_concurrent_reservations_never_pass_the_maximum(
    counters: Counters, prefix: str
) -> None:
    keys, maxima, ttls = [prefix + "budget"], [1_000], [60_000]
    results = await asyncio.gather(*(counters.reserve(keys, maxima, 30, ttls) for _ in range(50)))

    granted = [r for r in results if r.allowed]
    assert len(granted) == 1_000 // 30
    assert max(r.used[0] for r in granted) == 990
    assert {r.blocked for r in results if not r.allowed} == {0}
    assert (await counters.reserve(keys, maxima, 0, ttls)).used == (990,)


async def test_a_reservation_takes_all_keys_or_none(counters: Counters, prefix: str) -> None:
    keys, ttls = [prefix + "minute", prefix + "month"], [60_000, 60_000]
    await counters.reserve(keys, [100, 1_000], 90, ttls)

    refused = await counters.reserve(keys, [100, 1_000], 20, ttls)
    assert (refused.allowed, refused.blocked, refused.used) == (False, 0, (90, 90))

    granted = await counters.reserve(keys, [200, 1_000], 20, ttls)
    assert (granted.allowed, granted.blocked, granted.used) == (True, -1, (110, 110))

    refused = await counters.reserve(keys, [200, 100], 20, ttls)
    assert (refused.allowed, refused.blocked) == (False, 1)


async def test_a_forced_reservation_counts_over_the_maximum(
    counters: Counters, prefix: str
) -> None:
    keys, ttls = [prefix + "budget"], [60_000]
    await counters.reserve(keys, [10], 8, ttls)

    forced = await counters.reserve(keys, [10], 8, ttls, force=True)

    assert (forced.allowed, forced.blocked, forced.used) == (False, 0, (16,))


async def test_a_read_creates_nothing(counters: Counters, prefix: str) -> None:
    keys, ttls = [prefix + "budget"], [60_000]
    assert (await counters.reserve(keys, [10], 0, ttls)).used == (0,)

    await counters.adjust(keys, 5)  # nothing to adjust: the key does not exist

    assert (await counters.reserve(keys, [10], 0, ttls)).used == (0,)


async def test_settling_releases_what_was_not_used(counters: Counters, prefix: str) -> None:
    keys, ttls = [prefix + "budget"], [60_000]
    assert (await counters.reserve(keys, [100], 80, ttls)).allowed
    assert not (await counters.reserve(keys, [100], 80, ttls)).allowed

    await counters.adjust(keys, -50)  # the call used 30 of its 80

    assert (await counters.reserve(keys, [100], 0, ttls)).used == (30,)
    assert (await counters.reserve(keys, [100], 70, ttls)).used == (100,)


async def test_a_release_never_goes_below_zero(counters: Counters, prefix: str) -> None:
    keys, ttls = [prefix + "budget"], [60_000]
    await counters.reserve(keys, [100], 10, ttls)

    await counters.adjust(keys, -40)

    assert (await counters.reserve(keys, [100], 0, ttls)).used == (0,)


async def test_a_settlement_after_the_window_does_not_recreate_it(
    counters: Counters, prefix: str
) -> None:
    keys = [prefix + "budget"]
    await counters.reserve(keys, [100], 40, [100])
    await wait_for(
        lambda: _used_is_zero(counters, keys), timeout=2.0, interval=0.01, message="expired"
    )

    await counters.adjust(keys, 25)

    assert (await counters.reserve(keys, [100], 0, [100])).used == (0,)


async def _used_is_zero(counters: Counters, keys: list[str]) -> bool:
    return (await counters.reserve(keys, [100], 0, [100])).used == (0,)


async def test_a_settlement_sent_soon_lands(counters: Counters, prefix: str) -> None:
    keys, ttls = [prefix + "budget"], [60_000]
    await counters.reserve(keys, [100], 60, ttls)

    counters.adjust_soon(keys, -45)

    await wait_for(lambda: _used(counters, keys, 15), timeout=2.0, message="the settlement landed")
    assert counters.unavailable_total == 0


async def _used(counters: Counters, keys: list[str], value: int) -> bool:
    return (await counters.reserve(keys, [100], 0, [60_000])).used == (value,)


async def test_a_negative_reservation_is_a_caller_bug(counters: Counters, prefix: str) -> None:
    with pytest.raises(ValueError, match="negative"):
        await counters.reserve([prefix + "budget"], [10], -5, [60_000])
