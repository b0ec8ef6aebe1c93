"""A plane in an OS process of its own (``trustgate <plane>``), for tests that need
separate processes: several replicas, attacks on a real server, its memory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from trustgate_core.embedded import free_port
from trustgate_testkit.fixtures import wait_for

_PORTS = {
    "proxy": "SERVER_PROXY_PORT",
    "admin": "SERVER_ADMIN_PORT",
    "mcp": "SERVER_MCP_PORT",
    "policy-cache": "SERVER_POLICY_CACHE_PORT",
}


@dataclass
class PlaneProcess:
    name: str
    url: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]

    def rss(self, field: str = "VmRSS") -> int:
        """The process's resident memory (``VmHWM``: its peak) in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {field} for pid {self.proc.pid}")

    def connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _spawn(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "trustgate.cli", name], env=env, stdout=out, stderr=out
        )


@contextlib.asynccontextmanager
async def plane_process(
    name: str, env: Mapping[str, str], log: Path
) -> AsyncIterator[PlaneProcess]:
    """``trustgate <name>`` (``proxy`` or ``admin``) with the process environment and
    ``env``, on free traffic and operations ports, until its ``/healthz`` answers; stopped
    (SIGTERM, then SIGKILL) on exit. Its output goes to ``log``, shown if it dies."""
    port = free_port()
    full = {
        **os.environ,
        "LOG_LEVEL": "warning",
        **env,
        _PORTS[name]: str(port),
        f"SERVER_{name.upper()}_METRICS_PORT": str(free_port()),
    }
    proc = _spawn(name, full, log)
    plane = PlaneProcess(name, f"http://127.0.0.1:{port}", "127.0.0.1", port, proc)
    try:
        async with httpx.AsyncClient(timeout=2) as client:

            async def up() -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"the {name} exited:\n{await asyncio.to_thread(log.read_text)}")
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(f"{plane.url}/healthz")).status_code == 200
                return False

            await wait_for(up, timeout=60, message=f"the {name} never answered /healthz")
        yield plane
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def until_readyz(plane: PlaneProcess, status: int = 200, within: float = 30) -> None:
    """Until ``plane``'s ``/readyz`` answers ``status``: 200 once its dependencies are
    connected and its replica caught up, as a load balancer would wait before sending it
    traffic; 503 once it lost one."""
    async with httpx.AsyncClient(timeout=5) as client:

        async def answered() -> bool:
            with contextlib.suppress(httpx.TransportError):
                return (await client.get(f"{plane.url}/readyz")).status_code == status
            return False

        message = f"the {plane.name}'s /readyz never answered {status}"
        await wait_for(answered, timeout=within, message=message)
