"""The admin refuses to start a usage ledger that could count a redelivered event twice:
one that forgets counted trace ids (``LEDGER_DEDUPE_RETENTION``) before the requests stream
stops redelivering them (``REQUESTS_STREAM_MAX_AGE``), with a margin."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

from trustgate_admin.settings import LEDGER_DEDUPE_MARGIN, AdminSettings
from trustgate_testkit.fixtures import NatsServer

DAY = 86400.0


def settings(**values: object) -> AdminSettings:
    return AdminSettings(**values)  # type: ignore[arg-type]


def test_the_defaults_remember_longer_than_the_stream_keeps_with_a_margin() -> None:
    s = settings()
    assert s.dedupe_retention_problem() is None
    assert s.ledger_dedupe_retention >= s.requests_max_age_seconds + LEDGER_DEDUPE_MARGIN
    assert s.ledger_dedupe_retention == 2 * DAY  # twice the stream's 24 h: a day's margin


def test_a_retention_shorter_than_the_stream_age_plus_the_margin_is_refused() -> None:
    s = settings(REQUESTS_STREAM_MAX_AGE=3 * DAY, LEDGER_DEDUPE_RETENTION="72h")
    problem = s.dedupe_retention_problem()
    assert problem is not None
    assert "LEDGER_DEDUPE_RETENTION" in problem and "REQUESTS_STREAM_MAX_AGE" in problem
    assert "counted twice" in problem
    ok = settings(REQUESTS_STREAM_MAX_AGE=3 * DAY, LEDGER_DEDUPE_RETENTION="73h")
    assert ok.dedupe_retention_problem() is None


def test_an_unlimited_stream_age_is_refused_and_no_ledger_has_no_problem() -> None:
    problem = settings(REQUESTS_STREAM_MAX_AGE=0).dedupe_retention_problem()
    assert problem is not None and "unlimited" in problem
    off = settings(REQUESTS_STREAM_MAX_AGE=3 * DAY, LEDGER_ENABLED=False)
    assert off.dedupe_retention_problem() is None


async def test_trustgate_admin_serve_refuses_to_start_with_a_short_retention(
    database_factory: Any, bus: NatsServer
) -> None:
    dsn = await database_factory("tg_ledger_settings")
    secret = "ledger-settings-secret-key-0123456789abcdef"
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "NATS_URL": bus.url,
        "SERVER_SECRET_KEY": secret,
        "SERVER_ADMIN_PORT": "0",
        "SERVER_ADMIN_METRICS_PORT": "0",
        "REQUESTS_STREAM_MAX_AGE": str(int(3 * DAY)),
        "LEDGER_DEDUPE_RETENTION": "2d",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "trustgate.cli",
        "admin",
        "serve",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    assert proc.returncode not in (None, 0), text
    assert "LEDGER_DEDUPE_RETENTION (172800s) must be at least REQUESTS_STREAM_MAX_AGE" in text
    assert secret not in text
