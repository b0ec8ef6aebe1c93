"""`RedisCounters`: the counters the proxy's replicas share, one Lua script per operation.

Speed decides the shape. redis-py's asyncio client spends 65-100 µs of CPU on each
command (its pool, per-read timeouts and parser layers), and a request with two limit
plugins makes about three. Here the operations issued in one event-loop iteration go to
Redis as one write on one connection (auto-pipelining), hiredis parses the replies as
they arrive, and each reply resolves its caller's future directly: no task, timer or
lock per operation.

Never a hang: every operation carries a deadline (`timeout`, 50 ms by default); one
timer watches the oldest reply still awaited (replies come in order), and when it is
late the connection is dropped and everything in flight fails with
`CountersUnavailable`. After a failure, calls fail at once for `cooldown` seconds rather
than each trying to connect; the next call after that reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

from trustgate_core.counters.base import CountersUnavailable, Reservation, WindowHit
from trustgate_core.counters.scripts import ADJUST, ALL, HIT, RESERVE, Script

log = logging.getLogger(__name__)

_Arg = bytes | str | int
#: The marker of a plain command (``execute``): sent as is, never as EVALSHA.
_PLAIN: Final = Script(b"", b"")
#: How long a settlement (``adjust_soon``) waits for a check to share its write.
SETTLE_DELAY = 0.002
#: A deadline check this late ran after the loop was stalled: it looks once more.
_STALL = 0.005


def _pack(args: Sequence[_Arg]) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def parse_redis_url(url: str) -> dict[str, Any]:
    """``redis://[user:password@]host[:port][/db]``, ``rediss://`` (TLS) or
    ``unix://path[?db=N]``; query options (``ssl_cert_reqs``, ``db``) kept as given.
    (redis-py's parser would do, but importing redis costs ~0.1 s and loads OpenTelemetry
    into every plane.)"""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    options: dict[str, Any] = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    if scheme == "unix":
        options["path"] = unquote(parts.path)
    else:
        options["host"] = parts.hostname or "localhost"
        options["port"] = parts.port or 6379
        db = parts.path.lstrip("/")
        if db:
            if not db.isdigit():
                raise ValueError("a Redis URL's path is its database number")
            options["db"] = int(db)
    return options


def redis_location(url: str) -> str:
    """``host:port/db`` (or the socket path) of a Redis URL, without its credentials."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 6379}{parts.path or '/0'}"


class _Call:
    """An operation sent (or about to be): the script and arguments to send it again as
    EVAL after a NOSCRIPT, and the future its caller awaits (None for `adjust_soon`)."""

    __slots__ = ("args", "deadline", "future", "script")

    def __init__(
        self,
        future: asyncio.Future[Any] | None,
        script: Script | None,
        args: tuple[_Arg, ...],
        deadline: float,
    ) -> None:
        self.future = future
        self.script = script
        self.args = args
        self.deadline = deadline


class _Link(asyncio.Protocol):
    """One connection: replies are matched to calls in the order they were written."""

    def __init__(self, store: RedisCounters) -> None:
        self.store = store
        self.reader = hiredis.Reader()
        self.waiting: deque[_Call] = deque()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        try:
            reader.feed(data)
            while (reply := reader.gets()) is not False:
                call = waiting.popleft()
                if isinstance(reply, hiredis.ReplyError):
                    self.store._error_reply(call, reply)
                elif call.future is not None and not call.future.done():
                    call.future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:
            self.store._fail(self, f"unreadable reply ({exc})")

    def connection_lost(self, exc: Exception | None) -> None:
        self.store._fail(self, f"connection lost ({exc})" if exc else "connection closed")


class RedisCounters:
    """The `Counters` port on Redis: exact across every process sharing the server."""

    def __init__(self, url: str, *, timeout: float = 0.05, cooldown: float = 1.0) -> None:
        options = parse_redis_url(url)
        self._host: str = options.get("host", "localhost")
        self._port = int(options.get("port", 6379))
        self._path: str | None = options.get("path")
        self._tls = _tls_context(url, options)
        self._auth = _auth(options)
        self._handshake = _handshake(options)
        self.where = redis_location(url)
        self._timeout = timeout
        self._cooldown = cooldown
        self._member_prefix = os.urandom(6).hex() + ":"
        self._members = itertools.count()

        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: _Link | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._out: list[bytes] = []  # written at the next flush, with `_queued`
        self._queued: list[_Call] = []
        self._flush_scheduled = False
        self._later: asyncio.TimerHandle | None = None  # a settlement's delayed write
        self._timer: asyncio.TimerHandle | None = None
        self._down_until = 0.0
        self._down_reason = ""
        self._healthy = True
        self._closed = False
        self._error_logged_at = -1e9

        self.unavailable_total = 0
        #: `adjust_soon` settlements that never reached Redis.
        self.lost_adjustments_total = 0

    # --- the port ------------------------------------------------------------------------

    async def hit(self, key: str, limit: int, window_ms: int, *, force: bool = False) -> WindowHit:
        member = self._member_prefix + str(next(self._members))
        args = (key, limit, window_ms, b"1" if force else b"0", member)
        allowed, count, reset_ms, retry_ms = await self._call(HIT, 1, args)
        return WindowHit(allowed == 1, count, limit, reset_ms, retry_ms)

    async def reserve(
        self,
        keys: Sequence[str],
        maxima: Sequence[int],
        amount: int,
        ttls_ms: Sequence[int],
        *,
        force: bool = False,
    ) -> Reservation:
        if not len(keys) == len(maxima) == len(ttls_ms):
            raise ValueError("reserve: keys, maxima and ttls_ms differ in length")
        if amount < 0:
            raise ValueError("reserve: amount must not be negative (adjust releases)")
        if not keys:
            return Reservation(True, (), -1)
        args = (*keys, amount, b"1" if force else b"0", *maxima, *ttls_ms)
        blocked, *used = await self._call(RESERVE, len(keys), args)
        return Reservation(blocked == -1, tuple(used), blocked)

    async def adjust(self, keys: Sequence[str], delta: int) -> None:
        if keys and delta:
            await self._call(ADJUST, len(keys), (*keys, delta))

    def adjust_soon(self, keys: Sequence[str], delta: int) -> None:
        if not (keys and delta):
            return
        try:
            self._send(ADJUST, len(keys), (*keys, delta), None, urgent=False)
        except CountersUnavailable as exc:
            self._lost_adjustment(str(exc))

    async def execute(self, *command: _Arg) -> Any:
        """One plain Redis command (``GET``, ``SET … PX``, ``PUBLISH``) on the same
        connection, with the same deadline and failure mode as the scripts (for what
        replicas share besides counters: route health, conversations)."""
        return await self._call(_PLAIN, 0, command)

    async def subscribe(self, channel: bytes, on_message: Callable[[bytes], None]) -> Subscription:
        """A connection of its own, subscribed to ``channel``: each message's data goes to
        ``on_message`` (called in the event loop; it must not raise). Raises
        `CountersUnavailable` when Redis does not confirm within the timeout; the
        subscription's ``lost`` resolves when its connection ends (the caller
        resubscribes)."""
        loop = asyncio.get_running_loop()
        subscription = Subscription(on_message, loop)
        try:
            async with asyncio.timeout(self._timeout):
                if self._path is not None:
                    await loop.create_unix_connection(lambda: subscription, self._path)
                else:
                    await loop.create_connection(
                        lambda: subscription,
                        self._host,
                        self._port,
                        ssl=self._tls,
                        server_hostname=self._host if self._tls else None,
                    )
                await subscription.start([*self._auth, (b"SUBSCRIBE", channel)])
        except Exception as exc:
            subscription.close()
            reason = "subscribe timed out" if isinstance(exc, TimeoutError) else str(exc)
            raise CountersUnavailable(f"Redis at {self.where} unavailable: {reason}") from exc
        return subscription

    async def aclose(self) -> None:
        """Settle what is in flight (within the timeout), then close the connection."""
        if self._closed:
            return
        link, loop = self._link, self._loop
        if link is not None and loop is not None and (self._queued or link.waiting):
            deadline = loop.time() + self._timeout
            while (self._queued or link.waiting) and self._link is link:
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(0.001)
        self._closed = True
        self._down_reason = "the counters are closed"
        if self._connecting is not None:
            self._connecting.cancel()
        if self._link is not None:
            self._fail(self._link, "closed")

    # --- sending -------------------------------------------------------------------------

    async def _call(self, script: Script, numkeys: int, args: tuple[_Arg, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._send(script, numkeys, args, future, loop)
        return await future

    def _send(
        self,
        script: Script,
        numkeys: int,
        args: tuple[_Arg, ...],
        future: asyncio.Future[Any] | None,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        urgent: bool = True,
    ) -> None:
        """Queue one script call. An ``urgent`` one (a caller awaits it) is written at the
        end of this loop iteration, with every call queued meanwhile; a settlement waits
        up to ``SETTLE_DELAY`` for the next urgent write to ride along (one write and one
        read per request instead of two), or goes alone."""
        if loop is None:
            loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._adopt(loop)
        now = loop.time()
        if now < self._down_until or self._closed:
            self.unavailable_total += 1
            raise CountersUnavailable(self._down_reason)
        if script is _PLAIN:
            self._out.append(_pack(args))
        else:
            args = (numkeys, *args)
            self._out.append(_pack((b"EVALSHA", script.sha, *args)))
        self._queued.append(_Call(future, script, args, now + self._timeout))
        if self._link is not None:
            if self._flush_scheduled:
                pass
            elif urgent:
                self._flush_scheduled = True
                loop.call_soon(self._flush)
            elif self._later is None:
                self._later = loop.call_later(SETTLE_DELAY, self._flush)
        elif self._connecting is None:
            self._connecting = loop.create_task(self._connect(), name="counters-redis-connect")

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        link = self._link
        if link is None or link.transport is None or not self._queued:
            return
        link.transport.write(b"".join(self._out))
        deadline = self._loop.time() + self._timeout if self._loop is not None else 0.0
        for call in self._queued:  # Redis's time to answer, from the write
            call.deadline = deadline
        link.waiting.extend(self._queued)
        self._out.clear()
        self._queued.clear()
        self._watch()

    def _watch(self) -> None:
        """Keep one timer on the deadline of the oldest reply awaited."""
        link, loop = self._link, self._loop
        if self._timer is None and link is not None and link.waiting and loop is not None:
            self._timer = loop.call_at(link.waiting[0].deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._timer = None
        link, loop = self._link, self._loop
        if link is None or not link.waiting or loop is None:
            return
        oldest, now = link.waiting[0], loop.time()
        if oldest.deadline > now:
            self._watch()
        elif now - oldest.deadline > _STALL:
            # this check runs late: the loop was busy elsewhere (uvloop runs due timers
            # before reading sockets), so a reply may be waiting unread; look once more
            oldest.deadline = now + _STALL
            self._watch()
        else:
            self._fail(link, f"no reply within {self._timeout * 1000:.0f} ms")

    # --- connecting ----------------------------------------------------------------------

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start over on a new event loop (a connection belongs to one)."""
        if self._link is not None and self._link.transport is not None:
            with contextlib.suppress(RuntimeError):  # that loop may be closed
                self._link.transport.abort()
        self._link = self._connecting = self._timer = None
        self._out.clear()
        self._queued.clear()
        self._flush_scheduled = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        self._loop = loop

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        link: _Link | None = None
        try:
            async with asyncio.timeout(self._timeout):
                if self._path is not None:
                    _, link = await loop.create_unix_connection(lambda: _Link(self), self._path)
                else:
                    _, link = await loop.create_connection(
                        lambda: _Link(self),
                        self._host,
                        self._port,
                        ssl=self._tls,
                        server_hostname=self._host if self._tls else None,
                    )
                assert link.transport is not None
                deadline = loop.time() + self._timeout
                ready = [loop.create_future() for _ in self._handshake]
                link.transport.write(b"".join(_pack(command) for command in self._handshake))
                link.waiting.extend(_Call(f, None, (), deadline) for f in ready)
                self._link = link
                self._flush()  # what waited for the connection goes right after the handshake
                await asyncio.gather(*ready)
        except Exception as exc:  # every failure is the same outage to callers
            reason = "connect timed out" if isinstance(exc, TimeoutError) else str(exc)
            self._fail(link, reason or type(exc).__name__)
        else:
            if not self._healthy:
                log.info("counters: Redis at %s is back", self.where)
            self._healthy = True
        finally:
            self._connecting = None

    # --- failing -------------------------------------------------------------------------

    def _error_reply(self, call: _Call, reply: hiredis.ReplyError) -> None:
        message = str(reply)
        if message.startswith("NOSCRIPT") and call.script is not None and call.script is not _PLAIN:
            # The server lost its script cache (restart, SCRIPT FLUSH): send the source.
            self._out.append(_pack((b"EVAL", call.script.source, *call.args)))
            self._queued.append(call)
            if not self._flush_scheduled and self._loop is not None:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush)
            return
        error = CountersUnavailable(f"Redis error: {message}")
        if call.script is None:  # a handshake command: AUTH or SELECT refused
            if call.future is not None and not call.future.done():
                call.future.set_exception(error)
            self._fail(self._link, f"Redis refused the connection setup: {message}")
            return
        self.unavailable_total += 1
        if call.future is None:
            self._lost_adjustment(str(error))
        elif not call.future.done():
            call.future.set_exception(error)

    def _fail(self, link: _Link | None, reason: str) -> None:
        """Drop `link` and fail everything in flight or queued; fail fast for a while."""
        if link is not None and link is not self._link and not link.waiting:
            return  # an old connection's close, already handled
        loop = self._loop
        if loop is not None:
            self._down_until = loop.time() + self._cooldown
        if not self._closed:
            self._down_reason = f"Redis at {self.where} unavailable: {reason}"
        if self._healthy and not self._closed:
            log.warning("counters: %s; failing fast for %.1f s", self._down_reason, self._cooldown)
        self._healthy = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        calls: list[_Call] = []
        if link is not None:
            calls.extend(link.waiting)
            link.waiting.clear()
            if link.transport is not None:
                link.transport.abort()
        if link is None or link is self._link:
            self._link = None
            calls.extend(self._queued)
            self._out.clear()
            self._queued.clear()
        error = CountersUnavailable(self._down_reason)
        for call in calls:
            if call.script is not None:
                self.unavailable_total += 1
            if call.future is None:
                self.lost_adjustments_total += 1
            elif not call.future.done():
                call.future.set_exception(error)

    def _lost_adjustment(self, reason: str) -> None:
        """Count a settlement that failed (already counted as unavailable); log it unless
        the outage that caused it was logged."""
        self.lost_adjustments_total += 1
        loop = self._loop
        now = loop.time() if loop is not None else 0.0
        if self._healthy and now - self._error_logged_at >= 10.0:
            self._error_logged_at = now
            log.warning("counters: a settlement was lost (%s)", reason)


class Subscription(asyncio.Protocol):
    """A connection in subscribe mode (`RedisCounters.subscribe`): replies to the setup
    commands first, then messages, each handed to ``on_message``."""

    def __init__(
        self, on_message: Callable[[bytes], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._on_message = on_message
        self._reader = hiredis.Reader()
        self._setup: deque[asyncio.Future[Any]] = deque()
        self._transport: asyncio.Transport | None = None
        #: Resolves when the connection ends, for whatever reason.
        self.lost: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    async def start(self, commands: list[tuple[_Arg, ...]]) -> None:
        """Send the setup (AUTH, SUBSCRIBE) and wait for every reply."""
        assert self._transport is not None
        loop = asyncio.get_running_loop()
        ready = [loop.create_future() for _ in commands]
        self._setup.extend(ready)
        self._transport.write(b"".join(_pack(command) for command in commands))
        await asyncio.gather(*ready)

    def data_received(self, data: bytes) -> None:
        try:
            self._reader.feed(data)
            while (reply := self._reader.gets()) is not False:
                if self._setup:
                    ready = self._setup.popleft()
                    if isinstance(reply, hiredis.ReplyError):
                        ready.set_exception(CountersUnavailable(f"Redis error: {reply}"))
                    elif not ready.done():
                        ready.set_result(reply)
                elif isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    self._on_message(reply[2])
        except hiredis.ProtocolError:
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        error = CountersUnavailable(f"subscription lost ({exc or 'closed'})")
        while self._setup:
            ready = self._setup.popleft()
            if not ready.done():
                ready.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        elif not self.lost.done():
            self.lost.set_result(None)


def _tls_context(url: str, options: dict[str, Any]) -> ssl.SSLContext | None:
    if not url.lower().startswith("rediss://"):
        return None
    context = ssl.create_default_context()
    if str(options.get("ssl_cert_reqs", "required")).lower() == "none":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _auth(options: dict[str, Any]) -> list[tuple[_Arg, ...]]:
    """AUTH, when the URL carries a password."""
    password = options.get("password")
    if not password:
        return []
    username = options.get("username")
    return [(b"AUTH", username, password) if username else (b"AUTH", password)]


def _handshake(options: dict[str, Any]) -> list[tuple[_Arg, ...]]:
    """What a new connection sends first: AUTH, SELECT, and the scripts loaded."""
    commands = _auth(options)
    db = int(options.get("db") or 0)
    if db:
        commands.append((b"SELECT", db))
    commands.extend((b"SCRIPT", b"LOAD", script.source) for script in ALL)
    return commands
