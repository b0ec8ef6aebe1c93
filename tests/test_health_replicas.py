"""Route health is shared across processes: two OS processes, each with its own
RouteHealth on one Redis and routing as the proxy does (skip a route that is out, claim
the half-open trial once its cooldown is over, report the trial's success). A route
ejected by one is out on the other within 1 s, and back on both after its cooldown."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from trustgate_testkit.fixtures import Infra

COOLDOWN = 1.0

REPLICA = textwrap.dedent(
    """
    import asyncio, sys, time
    from trustgate_core.counters import RedisCounters
    from trustgate_core.health import RouteHealth
    from trustgate_core.models import HealthChecks

    async def route(health, key):
        was = True
        while True:
            now = health.available(key)
            if now != was:
                print("up" if now else "down", time.time(), flush=True)
                was = now
            if not now and await health.claim_trial(key):
                health.report(key, True)  # the trial request went through
            await asyncio.sleep(0.002)

    async def main(url, prefix, key, cooldown):
        redis = RedisCounters(url, timeout=1.0)
        health = RouteHealth(redis, prefix=prefix, cooldown=cooldown)
        await health.start()
        await redis.execute("PING")
        routing = asyncio.create_task(route(health, key))
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        while (line := await loop.run_in_executor(None, sys.stdin.readline)).strip():
            print("ejecting", time.time(), flush=True)
            health.report(key, False, checks=HealthChecks(passive=True, threshold=1))
        routing.cancel()
        await health.stop()
        await redis.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))
    """
)


class Replica:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def expect(self, word: str, within: float = 10.0) -> float:
        """The time the replica printed ``word`` (its next line must be it)."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), within)
        said, _, at = line.decode().strip().partition(" ")
        assert said == word, f"expected {word!r}, the replica said {line!r}"
        return float(at) if at else 0.0

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")


@asynccontextmanager
async def replica(url: str, prefix: str, key: str) -> AsyncIterator[Replica]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-c", REPLICA, url, prefix, key, str(COOLDOWN)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield Replica(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@pytest.mark.slow
async def test_a_route_ejected_by_one_process_is_out_on_the_other_within_a_second(
    infra: Infra,
) -> None:
    prefix, key = f"test:health:{uuid.uuid4().hex}:", "registry-a"
    async with (
        replica(infra.redis_url, prefix, key) as first,
        replica(infra.redis_url, prefix, key) as second,
    ):
        await first.expect("ready")
        await second.expect("ready")

        first.send("eject")
        ejected = await first.expect("ejecting")
        assert await first.expect("down") - ejected < 1.0
        assert await second.expect("down") - ejected < 1.0

        back_first, back_second = await first.expect("up"), await second.expect("up")
        for back in (back_first, back_second):
            assert COOLDOWN <= back - ejected < COOLDOWN + 1.0
        assert abs(back_first - back_second) < 1.0
