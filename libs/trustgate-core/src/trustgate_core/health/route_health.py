"""`RouteHealth`: which routes the proxy may use, shared by all its replicas.

A route is *in*, *cooling down* (ejected by passive health or a failed probe, or told to
wait by a provider's ``Retry-After``) or *half-open* (its cooldown is over; one trial
request for the whole cluster decides). `available` answers from a local replica of the
shared state — one dict lookup, no I/O — so the request path never waits on Redis.

Sharing (Redis): every change is one atomic script (`scripts`) that also PUBLISHes an
invalidation; each replica subscribes and rereads the whole (small) set of routes that
are out when told, and every ``resync_every`` (0.5 s) regardless. Pub/sub makes a change
visible on the other replicas in about a round trip; the periodic reread covers what
pub/sub cannot (messages lost while the subscriber reconnects, keys that expired), so
the 1 s bound holds even when a message is lost. Reading the state again rather than
trusting the message keeps one path that writes the local copy, and reads on the
pipelined connection come back in order after this replica's own writes. Without Redis
(``trustgate run``), or while it is unreachable, the same rules run on local state; a
cooldown decided locally during an outage is written to Redis once it is back.

Why a 30 s default cooldown: long enough that a failing provider is not hammered by
every replica (the failures that ejected it already cost requests), short enough that a
blip (a deploy, a burst of 5xx) costs half a minute of one route; the half-open trial
makes a recovery cost one request. A later cooldown never shortens an earlier, longer
one (peers re-cooled to the shorter deadline, anchors-next §1).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

from trustgate_core.counters import CountersUnavailable, RedisCounters
from trustgate_core.health import scripts
from trustgate_core.models import HealthChecks

log = logging.getLogger(__name__)
DEFAULT_COOLDOWN: Final = 30.0
#: Passive health with ``threshold`` or ``interval`` unset.
DEFAULT_THRESHOLD: Final = 3
DEFAULT_INTERVAL: Final = 30.0
#: A half-open route nobody tries for this long comes back by itself (its key expires).
HALF_OPEN_FOR: Final = 300.0
#: A trial whose report never comes (its replica died) lets another trial in after this.
TRIAL_FOR: Final = 30.0
RESYNC_EVERY: Final = 0.5
PREFIX: Final = "trustgate:health:"

Probe = Callable[[], Awaitable[bool]]


class _Route:
    """A route that is out: cooling down until ``until``, half-open after (epoch s)."""

    __slots__ = ("failed", "trying_until", "until")

    def __init__(self, until: float, failed: float) -> None:
        self.until = until
        self.failed = failed
        self.trying_until = 0.0  # a trial claimed here runs until then


class RouteHealth:
    """Shared route health (see the module docstring); ``redis`` None keeps it in this
    process. `start` before use, `stop` at shutdown."""

    def __init__(
        self,
        redis: RedisCounters | None = None,
        *,
        cooldown: float = DEFAULT_COOLDOWN,
        half_open_for: float = HALF_OPEN_FOR,
        trial_for: float = TRIAL_FOR,
        resync_every: float = RESYNC_EVERY,
        prefix: str = PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._cooldown = cooldown
        self._half_open_for = half_open_for
        self._trial_for = trial_for
        self._resync_every = resync_every
        self._prefix = prefix
        self._channel = (prefix + "changed").encode()
        self._clock = clock
        self._me = os.urandom(8).hex()
        self._members = itertools.count()

        self._down: dict[str, _Route] = {}
        self._failed: dict[str, float] = {}  # last failure reported here, per route
        self._fails: dict[str, deque[float]] = {}  # failures counted here (no Redis)
        self._writing: dict[str, int] = {}  # writes in flight: a reread keeps these
        self._unshared: dict[str, float] = {}  # cooldowns Redis missed: route -> until
        self._probes: dict[str, tuple[Probe, float]] = {}
        self._watching: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writes: set[asyncio.Task[Any]] = set()
        self._stale = asyncio.Event()
        self._running = False

        #: Routes this replica's reports took out (ejections, re-ejected trials, cooldowns).
        self.ejections_total = 0
        #: Half-open trials this replica won.
        self.trials_total = 0
        #: Active probes run here.
        self.probes_total = 0

    # --- the request path --------------------------------------------------------------

    def available(self, key: str) -> bool:
        return key not in self._down

    def failed_at(self, key: str) -> float:
        route = self._down.get(key)
        return route.failed if route is not None else self._failed.get(key, 0.0)

    def unhealthy(self) -> list[str]:
        """The routes out now (cooling down or half-open), for metrics."""
        return list(self._down)

    async def claim_trial(self, key: str) -> bool:
        route = self._down.get(key)
        now = self._clock()
        if route is None or route.until > now or route.trying_until > now:
            return False
        route.trying_until = now + self._trial_for  # the callers here wait for this one
        won = True
        if self._redis is not None:
            keys = (self._key("s", key), self._key("t", key))
            with contextlib.suppress(CountersUnavailable):  # unreachable: decide here
                args = (_ms(now), _ms(self._trial_for))
                won = await self._redis.execute(b"EVAL", scripts.CLAIM, 2, *keys, *args) == 1
        if won:
            self.trials_total += 1
        return won

    def report(
        self,
        key: str,
        ok: bool,
        *,
        retry_after: float | None = None,
        checks: HealthChecks | None = None,
    ) -> None:
        if ok:
            if key in self._down:
                self._succeeded(key)
            return
        retry = retry_after if retry_after is not None and 0 < retry_after < math.inf else 0.0
        if checks is not None and checks.passive:
            threshold = checks.threshold or DEFAULT_THRESHOLD
            self._failure(key, retry, threshold, float(checks.interval or DEFAULT_INTERVAL))
        else:
            self._failure(key, retry, 0, 0.0)

    # --- active probes -----------------------------------------------------------------

    def watch(self, key: str, probe: Probe, interval: float) -> None:
        if not interval > 0:
            raise ValueError("a probe's interval must be a positive number of seconds")
        self.unwatch(key)
        self._probes[key] = (probe, interval)
        if self._running:
            self._start_watching(key)

    def unwatch(self, key: str) -> None:
        self._probes.pop(key, None)
        task = self._watching.pop(key, None)
        if task is not None:
            task.cancel()
            self._spawn(self._release(key))

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._spawn(self._keep_in_sync())
        if self._redis is not None:
            self._spawn(self._follow())
        for key in self._probes:
            self._start_watching(key)

    async def settled(self) -> None:
        """Wait until the changes reported so far have reached Redis (or failed to)."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def stop(self) -> None:
        await self.settled()
        self._running = False
        watched = list(self._watching)
        for task in [*self._watching.values(), *self._tasks]:
            task.cancel()
        self._watching.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self._release(key) for key in watched))

    # --- changes -----------------------------------------------------------------------

    def _succeeded(self, key: str) -> None:
        """A route that is out answered: back in once its cooldown is over."""
        now = self._clock()
        if self._down[key].until > now:
            return  # a cooldown is never cut short
        del self._down[key]
        self._fails.pop(key, None)
        if self._redis is not None:
            self._write(key, self._share_success(key, now))

    def _failure(self, key: str, retry: float, threshold: int, interval: float) -> None:
        """Count a failure (when ``threshold``); cool down for ``retry`` s when given; a
        half-open route that fails cools down again."""
        now = self._clock()
        self._failed[key] = now
        route = self._down.get(key)
        if not threshold and not retry and (route is None or route.until > now):
            if route is not None:
                route.failed = now
            return
        if self._redis is None:
            self._fail_here(key, now, retry, threshold, interval)
            return
        if retry and (route is None or route.until < now + retry):
            self._take_out(key, now + retry, now, now)  # here at once, shared just after
        if not self._write(key, self._share_failure(key, now, retry, threshold, interval)):
            self._fail_here(key, now, retry, threshold, interval)

    def _fail_here(
        self, key: str, now: float, retry: float, threshold: int, interval: float
    ) -> None:
        """`scripts.FAIL` on this process's state."""
        route = self._down.get(key)
        until = route.until if route is not None else 0.0
        new = now + self._cooldown if route is not None and until <= now else until
        if threshold:
            log = self._fails.setdefault(key, deque())
            log.append(now)
            while log[0] <= now - interval:
                log.popleft()
            if len(log) >= threshold:
                log.clear()
                new = max(new, now + self._cooldown)
        if retry:
            new = max(new, now + retry)
        if new > until:
            self._take_out(key, new, now, now)
        elif route is not None:
            route.failed = now

    def _take_out(self, key: str, until: float, failed: float, now: float) -> None:
        route = self._down.get(key)
        if route is None or route.until <= now:
            self.ejections_total += 1
        self._down[key] = _Route(until, failed)

    def _set(self, key: str, until: float, failed: float) -> None:
        """Take on the shared state of one route."""
        route = self._down.get(key)
        if route is not None and route.until == until:
            route.failed = failed
        else:
            self._down[key] = _Route(until, failed)

    # --- Redis -------------------------------------------------------------------------

    def _key(self, kind: str, route: str) -> str:
        return f"{self._prefix}{kind}:{route}"

    def _route_keys(self, key: str) -> tuple[str, str, str, str]:
        return (
            self._key("s", key),
            self._key("f", key),
            self._prefix + "index",
            self._key("t", key),
        )

    def _write(self, key: str, write: Coroutine[Any, Any, None]) -> bool:
        """Send a change in the background (False: no event loop to send it from); a
        reread meanwhile leaves ``key`` alone."""
        self._writing[key] = self._writing.get(key, 0) + 1
        task = self._spawn(self._tracked(key, write))
        if task is None:
            self._wrote(key)
            return False
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return True

    async def _tracked(self, key: str, write: Coroutine[Any, Any, None]) -> None:
        try:
            await write
        finally:
            self._wrote(key)

    def _wrote(self, key: str) -> None:
        left = self._writing.pop(key) - 1
        if left:
            self._writing[key] = left

    async def _share_failure(
        self, key: str, now: float, retry: float, threshold: int, interval: float
    ) -> None:
        try:
            until, failed, ejected = await self._send_failure(key, now, retry, threshold, interval)
        except CountersUnavailable:
            self._fail_here(key, now, retry, threshold, interval)
            route = self._down.get(key)
            if route is not None:
                self._unshared[key] = route.until
            return
        if until and ejected:
            self._take_out(key, until / 1000, failed / 1000, now)
        elif until:
            self._set(key, until / 1000, failed / 1000)

    async def _send_failure(
        self, key: str, now: float, retry: float, threshold: int, interval: float
    ) -> list[int]:
        assert self._redis is not None
        member = f"{_ms(now)}:{self._me}:{next(self._members)}"
        args = (
            key,
            _ms(now),
            1 if threshold else 0,
            threshold,
            _ms(interval),
            _ms(self._cooldown),
            _ms(retry),
            _ms(self._half_open_for),
            member,
            self._channel,
        )
        reply: list[int] = await self._redis.execute(
            b"EVAL", scripts.FAIL, 4, *self._route_keys(key), *args
        )
        return reply

    async def _share_success(self, key: str, now: float) -> None:
        assert self._redis is not None
        self._unshared.pop(key, None)
        try:
            until, failed = await self._redis.execute(
                b"EVAL", scripts.CLEAR, 4, *self._route_keys(key), key, _ms(now), self._channel
            )
        except CountersUnavailable:
            return  # in here; the next reread after the outage says what Redis holds
        if until:  # another replica cooled it down again meanwhile
            self._set(key, until / 1000, failed / 1000)

    async def _keep_in_sync(self) -> None:
        """Reread the shared state when told (pub/sub) and every ``resync_every``;
        without Redis, drop what would have expired there."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._resync_every):
                    await self._stale.wait()
            self._stale.clear()
            now = self._clock()
            try:
                if self._redis is None or not await self._resync(self._redis, now):
                    self._expire(now)
            except Exception:  # an unreadable entry must not end the syncing
                log.exception("route health: rereading the shared state failed")

    async def _resync(self, redis: RedisCounters, now: float) -> bool:
        """Write what Redis missed, then read every route out; False when unreachable."""
        try:
            for key, until in list(self._unshared.items()):
                if until > now:
                    await self._send_failure(key, now, until - now, 0, 0.0)
                self._unshared.pop(key, None)
            index = self._prefix + "index"
            reply = await redis.execute(
                b"EVAL", scripts.SNAPSHOT, 1, index, _ms(now), self._prefix + "s:"
            )
        except CountersUnavailable:
            return False
        fresh: dict[str, _Route] = {}
        for name, value in zip(reply[::2], reply[1::2], strict=True):
            key = name.decode()
            until, failed = (int(part) / 1000 for part in value.split())
            route = self._down.get(key)
            if route is not None and route.until == until:
                route.failed = failed
                fresh[key] = route
            else:
                fresh[key] = _Route(until, failed)
        for key in (*self._writing, *self._unshared):  # changes on their way to Redis
            route = self._down.get(key)
            if route is not None:
                fresh[key] = route
            else:
                fresh.pop(key, None)
        self._down = fresh
        return True

    def _expire(self, now: float) -> None:
        """What Redis would have let expire (half-open for ``half_open_for``)."""
        gone = [k for k, r in self._down.items() if r.until + self._half_open_for <= now]
        for key in gone:
            del self._down[key]

    async def _follow(self) -> None:
        """Stay subscribed to the invalidations; reread after every (re)subscription."""
        assert self._redis is not None
        while True:
            try:
                subscription = await self._redis.subscribe(self._channel, self._invalidate)
            except CountersUnavailable:
                await asyncio.sleep(max(self._resync_every, 1.0))
                continue
            self._stale.set()
            try:
                await subscription.lost
            finally:
                subscription.close()

    def _invalidate(self, _route: bytes) -> None:
        self._stale.set()

    # --- probes ------------------------------------------------------------------------

    def _start_watching(self, key: str) -> None:
        probe, interval = self._probes[key]
        task = asyncio.get_running_loop().create_task(
            self._probe_every(key, probe, interval), name=f"health-probe-{key}"
        )
        self._watching[key] = task

    async def _probe_every(self, key: str, probe: Probe, interval: float) -> None:
        """Probe ``key`` every ``interval`` while this replica holds its lease (a replica
        that dies stops renewing it, and another takes over within 2.5 intervals)."""
        loop = asyncio.get_running_loop()
        lease_ms = _ms(interval * 2.5)
        due = loop.time()
        while True:
            if await self._hold(key, lease_ms):
                self.probes_total += 1
                if await _passes(probe, interval):
                    self.report(key, True)
                else:
                    self._failure(key, 0.0, 1, interval)
            due += interval
            now = loop.time()
            if due < now:  # the probe overran: skip the ticks it missed
                due = now + interval - (now - due) % interval
            await asyncio.sleep(due - now)

    async def _hold(self, key: str, lease_ms: int) -> bool:
        """Take or renew the lease on probing ``key``; unreachable Redis: probe here."""
        if self._redis is None:
            return True
        try:
            held = await self._redis.execute(
                b"EVAL", scripts.LEASE, 1, self._key("l", key), self._me, lease_ms
            )
        except CountersUnavailable:
            return True
        return bool(held == 1)

    async def _release(self, key: str) -> None:
        if self._redis is not None:
            with contextlib.suppress(CountersUnavailable):
                await self._redis.execute(
                    b"EVAL", scripts.RELEASE, 1, self._key("l", key), self._me
                )

    # --- tasks -------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
        """Run ``work`` in the background, kept until done (cancelled by `stop`)."""
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no event loop: nothing to share from here
            work.close()
            return None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


async def _passes(probe: Probe, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            return bool(await probe())
    except Exception:  # a probe that raises or hangs is a failed probe
        return False


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def health_from(
    counters: object,
    *,
    cooldown: float = DEFAULT_COOLDOWN,
    half_open_for: float = HALF_OPEN_FOR,
    trial_for: float = TRIAL_FOR,
    resync_every: float = RESYNC_EVERY,
    prefix: str = PREFIX,
) -> RouteHealth:
    """Shared through Redis when ``counters`` is a `RedisCounters` (its connection, plus
    a subscriber), else kept in this process (``trustgate run``)."""
    return RouteHealth(
        counters if isinstance(counters, RedisCounters) else None,
        cooldown=cooldown,
        half_open_for=half_open_for,
        trial_for=trial_for,
        resync_every=resync_every,
        prefix=prefix,
    )
