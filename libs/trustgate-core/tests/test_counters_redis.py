"""RedisCounters against real servers: exact across OS processes, and when Redis is
closed, stopped mid-run, frozen or erroring, every call fails fast with
CountersUnavailable and the counters come back by themselves with the server."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvloop

from trustgate_core.counters import CountersUnavailable, RedisCounters, WindowHit
from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import Infra, wait_for
from trustgate_testkit.redis_server import RedisServer, redis_server_binary

TIMEOUT = 0.05
COOLDOWN = 0.2
# What "within about the timeout" allows on a loaded test machine.
FAIL_WITHIN = 0.5


@pytest.fixture
def prefix() -> str:
    return f"test:counters:{uuid.uuid4().hex}:"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    redis = RedisServer()
    redis.start()
    try:
        yield redis
    finally:
        redis.kill()


async def failure_time(call: object) -> float:
    started = time.monotonic()
    with pytest.raises(CountersUnavailable):
        await call  # type: ignore[misc]
    return time.monotonic() - started


async def succeeds(counters: RedisCounters, key: str) -> bool:
    try:
        await counters.hit(key, 1_000_000, 60_000)
    except CountersUnavailable:
        return False
    return True


# --- exact across processes ----------------------------------------------------------------

REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    from trustgate_core.counters import RedisCounters

    async def main(url, key, limit, calls):
        counters = RedisCounters(url, timeout=2.0)
        await counters.hit(key + ":warm", 1, 1000)  # connected before the start
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        hits = await asyncio.gather(*(counters.hit(key, limit, 60_000) for _ in range(calls)))
        print(sum(h.allowed for h in hits), flush=True)
        await counters.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    """
)


@pytest.mark.slow
def test_two_processes_admit_exactly_the_limit_between_them(infra: Infra, prefix: str) -> None:
    limit = 100
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, infra.redis_url, prefix + "rl", str(limit), "150"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for replica in replicas:
            assert replica.stdout is not None and replica.stdout.readline().strip() == "ready"
        for replica in replicas:
            assert replica.stdin is not None
            replica.stdin.write("go\n")
            replica.stdin.flush()
        admitted = [int(replica.communicate(timeout=30)[0].strip()) for replica in replicas]
    finally:
        for replica in replicas:
            replica.kill()

    assert sum(admitted) == limit
    assert all(replica.returncode == 0 for replica in replicas)


# --- outages -------------------------------------------------------------------------------


async def test_a_closed_port_fails_every_call_fast(prefix: str) -> None:
    counters = RedisCounters(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    try:
        first = await failure_time(counters.hit(prefix + "rl", 5, 1000))
        during_cooldown = await asyncio.gather(
            *(failure_time(counters.reserve([prefix + "b"], [9], 1, [1000])) for _ in range(20)),
            failure_time(counters.adjust([prefix + "b"], -1)),
        )
        counters.adjust_soon([prefix + "b"], -1)  # never raises
    finally:
        await counters.aclose()

    assert first < FAIL_WITHIN
    assert max(during_cooldown) < 0.01  # no new connection attempt while cooling down
    assert counters.unavailable_total == 23
    assert counters.lost_adjustments_total == 1


async def test_a_server_stopped_mid_run_fails_calls_then_they_recover(
    server: RedisServer, prefix: str
) -> None:
    counters = RedisCounters(server.url, timeout=TIMEOUT, cooldown=COOLDOWN)
    try:
        assert (await counters.hit(prefix + "rl", 10, 60_000)).allowed
        pending = [asyncio.ensure_future(counters.hit(prefix + "rl", 10, 60_000)) for _ in range(5)]
        server.kill()
        results = await asyncio.wait_for(
            asyncio.gather(*pending, return_exceptions=True), FAIL_WITHIN
        )
        assert all(isinstance(r, CountersUnavailable | WindowHit) for r in results)
        assert await failure_time(counters.hit(prefix + "rl", 10, 60_000)) < FAIL_WITHIN

        server.start()
        await wait_for(lambda: succeeds(counters, prefix + "rl"), timeout=5.0)
    finally:
        await counters.aclose()
    assert counters.unavailable_total >= 1


async def test_a_frozen_server_fails_calls_within_the_timeout(
    server: RedisServer, prefix: str
) -> None:
    counters = RedisCounters(server.url, timeout=TIMEOUT, cooldown=COOLDOWN)
    try:
        assert await succeeds(counters, prefix + "rl")
        server.signal(signal.SIGSTOP)
        try:
            elapsed = await asyncio.gather(
                *(failure_time(counters.hit(prefix + "rl", 10, 60_000)) for _ in range(10))
            )
        finally:
            server.signal(signal.SIGCONT)
        assert max(elapsed) < FAIL_WITHIN
        await wait_for(lambda: succeeds(counters, prefix + "rl"), timeout=5.0)
    finally:
        await counters.aclose()


def test_a_stalled_event_loop_is_not_mistaken_for_redis_down(infra: Infra, prefix: str) -> None:
    """The proxy's own loop (uvloop, which runs due timers before reading sockets) blocked
    past the timeout while a reply waits in the socket: the call succeeds and the
    counters stay up."""

    async def stalled() -> None:
        counters = RedisCounters(infra.redis_url, timeout=0.05)
        try:
            loop = asyncio.get_running_loop()
            await counters.hit(prefix + "warm", 10, 60_000)  # connected
            pending = asyncio.ensure_future(counters.hit(prefix + "rl", 10, 60_000))
            await asyncio.sleep(0)  # the call is queued, its write scheduled
            loop.call_soon(time.sleep, 0.2)  # right after the write, the loop stalls
            assert (await pending).allowed
            counters.adjust_soon([prefix + "settle"], 1)  # written within 2 ms...
            loop.call_later(0.001, time.sleep, 0.2)  # ...but the loop stalls before
            await asyncio.sleep(0.25)
            assert (await counters.hit(prefix + "rl", 10, 60_000)).count == 2
            assert counters.unavailable_total == 0
        finally:
            await counters.aclose()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(stalled())


async def test_an_erroring_command_fails_alone(infra: Infra, prefix: str) -> None:
    counters = RedisCounters(infra.redis_url, timeout=1.0)
    try:
        await counters.reserve([prefix + "budget"], [10], 1, [60_000])
        # A budget key used as a sliding log: Redis answers WRONGTYPE.
        with pytest.raises(CountersUnavailable, match="WRONGTYPE"):
            await counters.hit(prefix + "budget", 10, 60_000)
        assert (await counters.hit(prefix + "rl", 10, 60_000)).allowed
    finally:
        await counters.aclose()


async def test_scripts_flushed_from_the_server_are_sent_again(
    server: RedisServer, prefix: str
) -> None:
    counters = RedisCounters(server.url, timeout=1.0)
    try:
        assert (await counters.hit(prefix + "rl", 2, 60_000)).count == 1
        flush = await asyncio.create_subprocess_exec(
            *_cli(server.port, "SCRIPT", "FLUSH"), stdout=asyncio.subprocess.DEVNULL
        )
        assert await flush.wait() == 0

        results = await asyncio.gather(*(counters.hit(prefix + "rl", 2, 60_000) for _ in range(3)))
    finally:
        await counters.aclose()
    assert sorted(r.allowed for r in results) == [False, False, True]
    assert counters.unavailable_total == 0


def _cli(port: int, *command: str) -> list[str]:
    cli = Path(redis_server_binary()).with_name("redis-cli")
    return [str(cli), "-p", str(port), *command]


async def test_a_password_and_database_from_the_url_are_used(prefix: str) -> None:
    redis = RedisServer("--requirepass", "s3cret-pw")
    redis.start()
    key = prefix + "rl"
    db5 = RedisCounters(f"redis://:s3cret-pw@127.0.0.1:{redis.port}/5", timeout=1.0)
    db0 = RedisCounters(f"redis://:s3cret-pw@127.0.0.1:{redis.port}/0", timeout=1.0)
    wrong = RedisCounters(f"redis://:wrong-pw@127.0.0.1:{redis.port}/5", timeout=1.0)
    try:
        assert (await db5.hit(key, 1, 60_000)).allowed
        assert not (await db5.hit(key, 1, 60_000)).allowed
        assert (await db0.hit(key, 1, 60_000)).allowed  # another database, another window
        with pytest.raises(CountersUnavailable) as refused:
            await wrong.hit(key, 1, 60_000)
    finally:
        for counters in (db5, db0, wrong):
            await counters.aclose()
        redis.kill()
    assert "WRONGPASS" in str(refused.value) and "wrong-pw" not in str(refused.value)


async def test_closed_counters_refuse_calls(infra: Infra, prefix: str) -> None:
    counters = RedisCounters(infra.redis_url, timeout=1.0)
    assert await succeeds(counters, prefix + "rl")
    counters.adjust_soon([prefix + "b"], 1)

    await counters.aclose()

    with pytest.raises(CountersUnavailable, match="closed"):
        await counters.hit(prefix + "rl", 1, 1000)
    assert counters.lost_adjustments_total == 0


async def test_plain_commands_share_the_connection(infra: Infra, prefix: str) -> None:
    counters = RedisCounters(infra.redis_url, timeout=1.0)
    try:
        assert await counters.execute("SET", prefix + "kv", "v", "PX", 60_000) == b"OK"
        assert await counters.execute("GET", prefix + "kv") == b"v"
        assert (await counters.hit(prefix + "rl", 10, 60_000)).allowed
        with pytest.raises(CountersUnavailable, match="ERR"):
            await counters.execute("NOSUCHCOMMAND")
        assert await counters.execute("GET", prefix + "kv") == b"v"  # still up
    finally:
        await counters.aclose()
