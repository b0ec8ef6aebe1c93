"""No client holds a plane hostage: the proxy and the admin, each its own OS process, under
the attacks of issue 10 (a header that never ends, a header flood, hundreds of idle
connections, a body that never ends, more connections than the cap). While each runs, a
legitimate request is answered within 100 ms; the attacker gets 431, 408, 503 or a close
within the configured time; the server's memory stays bounded.

Short limits come from the environment so each attack ends in a second or two.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from trustgate_testkit.fixtures import DatabaseFactory, Infra, wait_for
from trustgate_testkit.processes import PlaneProcess, plane_process

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEADER_BYTES = 16 * 1024
MAX_CONNECTIONS = 200
LIMITS = {
    "SERVER_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
    "SERVER_BODY_TIMEOUT": str(BODY_TIMEOUT),
    "SERVER_IDLE_TIMEOUT": "2s",
    "SERVER_MAX_HEADER_BYTES": str(MAX_HEADER_BYTES),
    "SERVER_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
}
#: How late a timeout may fire: the sweep's granularity plus a loaded CI machine's slack.
SLACK = 1.5
MIB = b"a" * (1 << 20)
SLOW_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: "


@pytest.fixture(params=["proxy", "admin"])
async def plane(
    request: pytest.FixtureRequest, infra: Infra, database_factory: DatabaseFactory, tmp_path: Path
) -> AsyncIterator[PlaneProcess]:
    env = {"NATS_URL": infra.nats_url}
    if request.param == "admin":
        env["DATABASE_URL"] = await database_factory("tg_limits")
    log = tmp_path / f"{request.param}.log"
    async with plane_process(request.param, LIMITS | env, log) as started:
        yield started


async def answered_fast(
    plane: PlaneProcess, during: Callable[[], bool], budget: float = 0.1
) -> int:
    """Legitimate ``GET /healthz`` on one keep-alive connection while ``during()`` holds;
    each must be answered within ``budget`` seconds. How many were. (The first request,
    which opens the connection, is not timed: it warms up the client too.)"""
    served = 0
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(f"{plane.url}/healthz")).status_code == 200
        while during() or served == 0:
            started = time.perf_counter()
            response = await client.get(f"{plane.url}/healthz")
            took = time.perf_counter() - started
            assert response.status_code == 200
            assert took < budget, f"a legitimate request took {took * 1000:.0f} ms"
            served += 1
            await asyncio.sleep(0.01)  # a request every 10 ms, not a busy loop
    return served


@contextlib.contextmanager
def attacking(attack: Callable[[], None], times: int = 1) -> Iterator[Callable[[], bool]]:
    """``attack`` in ``times`` threads; yields "still running?"; re-raises their errors."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            attack()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, daemon=True) for _ in range(times)]
    for thread in threads:
        thread.start()
    try:
        yield lambda: any(t.is_alive() for t in threads)
    finally:
        for thread in threads:
            thread.join(30)
    assert not errors, errors[0]


def read_answer(sock: socket.socket, within: float) -> tuple[int | None, bytes, float]:
    """What the server answers before it closes: (status or None, body, seconds taken)."""
    started = time.monotonic()
    sock.settimeout(within)
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    took = time.monotonic() - started
    if not data:
        return None, b"", took
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body, took


def header_that_never_ends(plane: PlaneProcess) -> None:
    """The issue's reproduction: a header value of 1 MiB after 1 MiB, up to 200 times;
    the server must answer 431 long before."""
    with plane.connect() as sock:
        sock.sendall(SLOW_HEAD)
        sent = 0
        answer = b""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for _ in range(200):
                sock.sendall(MIB)
                sent += 1
                with contextlib.suppress(BlockingIOError):
                    answer += sock.recv(65536, socket.MSG_DONTWAIT)
                if answer:
                    break
        status, _, _ = read_answer(sock, 10)
        assert answer or status is not None, f"no answer after {sent} MiB"
        first = answer or b"HTTP/1.1 %d" % (status or 0)
        assert first.startswith(b"HTTP/1.1 431"), first[:100]
        assert sent < 200


async def test_a_header_that_never_ends_gets_431_and_never_slows_legitimate_requests(
    plane: PlaneProcess,
) -> None:
    before = plane.rss()
    with attacking(lambda: header_that_never_ends(plane)) as running:
        assert await answered_fast(plane, running) > 0
    assert plane.rss("VmHWM") - before < 50 << 20


async def test_a_header_flood_from_20_connections_leaves_memory_bounded_and_requests_fast(
    plane: PlaneProcess,
) -> None:
    before = plane.rss()
    with attacking(lambda: header_that_never_ends(plane), times=20) as running:
        assert await answered_fast(plane, running) > 0
    assert plane.rss("VmHWM") - before < 50 << 20


async def test_a_slow_header_gets_408_within_the_header_timeout(plane: PlaneProcess) -> None:
    def slow_header() -> None:
        with plane.connect() as sock:
            sock.sendall(SLOW_HEAD + b"a few bytes, then nothing")
            status, body, took = read_answer(sock, HEADER_TIMEOUT + SLACK + 5)
            assert status == 408, (status, body)
            assert orjson.loads(body)["error"] == "request_timeout"
            assert took < HEADER_TIMEOUT + SLACK

    with attacking(slow_header, times=5) as running:
        assert await answered_fast(plane, running) > 0


async def test_a_body_that_never_ends_is_closed_within_the_body_timeout(
    plane: PlaneProcess,
) -> None:
    path = b"/v1/gateways" if plane.name == "admin" else b"/app/v1/chat/completions"

    def unfinished_body() -> None:
        with plane.connect() as sock:
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"model": '
            )
            status, _, took = read_answer(sock, BODY_TIMEOUT + SLACK + 5)
            assert took < BODY_TIMEOUT + SLACK
            if plane.name == "admin":  # it waits for the body before anything else
                assert status == 408

    with attacking(unfinished_body, times=5) as running:
        assert await answered_fast(plane, running) > 0


async def test_hundreds_of_idle_connections_are_closed_and_never_slow_requests(
    plane: PlaneProcess,
) -> None:
    idle = [plane.connect() for _ in range(150)]
    try:
        started = time.monotonic()
        assert await answered_fast(plane, lambda: time.monotonic() - started < 0.5) > 0

        def all_closed() -> bool:
            for sock in idle:
                status, _, _ = read_answer(sock, HEADER_TIMEOUT + SLACK + 5)
                assert status is None  # closed without a word: it never asked anything
                assert time.monotonic() - started < HEADER_TIMEOUT + SLACK
            return True

        assert await asyncio.to_thread(all_closed)
    finally:
        for sock in idle:
            sock.close()


async def test_beyond_the_connection_cap_a_new_connection_gets_503_until_attackers_leave(
    plane: PlaneProcess,
) -> None:
    held = [plane.connect() for _ in range(MAX_CONNECTIONS)]
    try:

        async def refused() -> bool:
            with plane.connect() as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                status, body, _ = await asyncio.to_thread(read_answer, sock, 5)
            assert status == 503, status
            assert orjson.loads(body)["error"] == "too_many_connections"
            return True

        await wait_for(refused, timeout=5)
    finally:
        for sock in held:
            sock.close()
    async with httpx.AsyncClient(timeout=5) as client:

        async def served() -> bool:
            return (await client.get(f"{plane.url}/healthz")).status_code == 200

        await wait_for(served, timeout=5, message="not served once the attackers left")
