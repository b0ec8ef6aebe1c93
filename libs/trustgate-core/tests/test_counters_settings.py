"""Where the counters live, from the environment (the Go TrustGate's names), and the
in-process store's memory staying bounded."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from trustgate_core.counters import LocalCounters, RedisCounters, RedisSettings, counters_from
from trustgate_testkit.fixtures import Infra

REDIS_ENV = (
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_DB",
    "REDIS_TLS_ENABLED",
    "REDIS_TIMEOUT",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in REDIS_ENV:
        monkeypatch.delenv(name, raising=False)


async def test_without_redis_the_counters_stay_in_this_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="trustgate_core.counters"):
        counters = counters_from(RedisSettings())

    assert isinstance(counters, LocalCounters)
    assert "in this process" in caplog.text


async def test_redis_host_builds_the_go_trustgate_url(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("REDIS_HOST", "cache.internal")
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/word")
    monkeypatch.setenv("REDIS_TIMEOUT", "80ms")
    settings = RedisSettings()

    with caplog.at_level(logging.INFO, logger="trustgate_core.counters"):
        counters = counters_from(settings)
    await counters.aclose()

    assert settings.redis_url == "redis://:p%40ss%2Fword@cache.internal:6379/3"
    assert settings.redis_timeout == pytest.approx(0.08)
    assert isinstance(counters, RedisCounters)
    assert "cache.internal:6379/3" in caplog.text and "80 ms" in caplog.text
    assert "p@ss" not in caplog.text and "p%40ss" not in caplog.text
    assert "p@ss" not in repr(settings)


def test_redis_url_wins_over_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://primary:6380/1")
    monkeypatch.setenv("REDIS_HOST", "ignored")

    assert RedisSettings().redis_url == "redis://primary:6380/1"


def test_tls_username_port_and_database(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "REDIS_HOST": "cache",
        "REDIS_PORT": "6390",
        "REDIS_USERNAME": "gateway",
        "REDIS_PASSWORD": "pw",
        "REDIS_DB": "0",
        "REDIS_TLS_ENABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)

    assert RedisSettings().redis_url == "rediss://gateway:pw@cache:6390/0"


@pytest.mark.parametrize(("value", "seconds"), [("50ms", 0.05), ("0.2", 0.2), ("1s", 1.0)])
def test_the_timeout_is_a_duration(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("REDIS_TIMEOUT", value)

    assert RedisSettings().redis_timeout == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["50", "0", "-1s", "soon"])
def test_a_timeout_that_would_stall_requests_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("REDIS_TIMEOUT", value)  # "50" is 50 seconds, not milliseconds

    with pytest.raises(ValidationError, match="REDIS_TIMEOUT"):
        RedisSettings()


async def test_counters_from_a_url_count_in_redis(
    monkeypatch: pytest.MonkeyPatch, infra: Infra
) -> None:
    monkeypatch.setenv("REDIS_URL", infra.redis_url)
    counters = counters_from(RedisSettings())
    try:
        hit = await counters.hit("test:counters:settings:rl", 1_000_000, 1_000)
    finally:
        await counters.aclose()

    assert hit.allowed and counters.unavailable_total == 0


async def test_expired_local_entries_are_swept() -> None:
    now = [1_000.0]
    counters = LocalCounters(clock=lambda: now[0], sweep_every_s=1.0)
    for i in range(100):
        await counters.hit(f"rl:{i}", 5, 2_000)
        await counters.reserve([f"budget:{i}"], [10], 1, [2_000])
    assert len(counters) == 200

    now[0] += 1.5
    await counters.hit("rl:0", 5, 2_000)
    assert len(counters) == 200  # still in their windows

    now[0] += 1.5
    await counters.reserve(["budget:new"], [10], 1, [2_000])
    assert len(counters) == 2  # rl:0 (hit at 1.5 s) and the new budget
