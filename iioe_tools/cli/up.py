"""`iioe up`: the whole platform on one machine, no Docker.

Starts an embedded nats-server (JetStream) and an embedded PostgreSQL unless `NATS_URL` /
`DATABASE_URL` name running ones, provisions the streams, starts each service as its own
OS process, waits for every `/healthz`, prints where everything is, restarts a service that
dies, and stops everything cleanly on Ctrl-C. Data lives in `IIOE_DATA_DIR` (default `./.iioe`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from iioe.access import OPERATOR_USER, service_user
from iioe.runtime.settings import NatsAuthOptions
from iioe_tools.cli.provision import provision
from iioe_tools.database_roles import provision_roles
from iioe_tools.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedStartError,
    PortBusy,
    free_port,
    port_is_free,
)
from iioe_tools.nats_auth import NatsAuth

DEFAULT_NATS_PORT = 4222


@dataclass(frozen=True)
class ServiceDef:
    name: str
    default_port: int

    @property
    def port_env(self) -> str:
        return f"IIOE_{self.name.upper()}_HTTP_PORT"

    @property
    def module(self) -> str:
        return f"services.{self.name}"

    def port(self) -> int:
        return int(os.environ.get(self.port_env, self.default_port))


SERVICES = (
    ServiceDef("registration", 8001),
    ServiceDef("certification", 8002),
    ServiceDef("analytics", 8003),
    ServiceDef("notifications", 8004),
)


class UpError(RuntimeError):
    """Why the platform cannot start, phrased for the operator."""


def say(message: str) -> None:
    print(f"[iioe] {message}", flush=True)


@dataclass
class Child:
    service: ServiceDef
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    _log: object = field(default=None, repr=False)

    def start(self, env: dict[str, str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self._log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.service.module],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children in order
        )
        self.started_at = time.monotonic()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log yet)"


class Platform:
    """Owns the embedded servers and the service processes."""

    def __init__(self, data_dir: Path, *, health_timeout: float = 90.0) -> None:
        self.data_dir = data_dir.resolve()
        self.health_timeout = health_timeout
        self.nats: EmbeddedNats | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.nats_url = ""
        self.database_url = ""
        self.children: list[Child] = []
        self.token = ""
        self.auth: NatsAuth | None = None
        self.service_database_urls: dict[str, str] = {}

    # -- infrastructure -------------------------------------------------------------------
    def start_nats(self) -> None:
        """An authenticated embedded nats-server, unless `NATS_URL` names a server.

        A server already on the port is never borrowed: `iioe up` cannot vouch for its
        authorization, so it starts its own on another free port (unless the port was chosen
        explicitly with `IIOE_NATS_PORT`)."""
        if os.environ.get("NATS_URL"):
            self.nats_url = os.environ["NATS_URL"]
            say(f"using NATS at {self.nats_url} (NATS_URL; credentials from NATS_USER/NATS_PASSWORD/NATS_CREDS)")
            return
        explicit = "IIOE_NATS_PORT" in os.environ
        port = int(os.environ.get("IIOE_NATS_PORT", 0)) or self._remembered_port("nats.port") or DEFAULT_NATS_PORT
        if not port_is_free(port):
            if explicit:
                raise UpError(
                    f"NATS port {port} (IIOE_NATS_PORT) is already in use. Choose a free port, "
                    "or set NATS_URL=nats://host:port to use a running server."
                )
            taken, port = port, free_port()
            say(f"port {taken} is taken by another server; starting the platform's own nats-server on {port}")
        self.auth = NatsAuth(self.data_dir / "nats", host="127.0.0.1", port=port)
        self.auth.ensure_platform_users()
        self.auth.write_config()
        self.nats = EmbeddedNats(self.data_dir / "nats", port, config=self.auth.config_path).start()
        (self.data_dir / "nats.port").write_text(str(port))
        self.nats_url = self.nats.url
        say(f"started embedded nats-server {self.nats_url} with authentication (data {self.nats.data_dir})")

    def start_postgres(self) -> None:
        if os.environ.get("DATABASE_URL"):
            self.database_url = os.environ["DATABASE_URL"]
            say("using PostgreSQL from DATABASE_URL")
            return
        if "IIOE_POSTGRES_PORT" in os.environ:
            port = int(os.environ["IIOE_POSTGRES_PORT"])
        else:
            port = self._remembered_port("postgres.port") or free_port()
            if not port_is_free(port):
                port = free_port()
        pg = EmbeddedPostgres(self.data_dir / "postgres", port)
        self._stop_stale_postgres(pg)
        self.postgres = pg.start()
        (self.data_dir / "postgres.port").write_text(str(port))
        self.database_url = pg.url
        schemas = {svc.name: svc.name for svc in SERVICES}
        self.service_database_urls = asyncio.run(
            provision_roles(pg.url, schemas, self.data_dir / "postgres" / "roles.json")
        )
        say(f"started embedded PostgreSQL on 127.0.0.1:{port} (data {pg.pgdata}), one role per service")

    def _remembered_port(self, name: str) -> int | None:
        path = self.data_dir / name
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _stop_stale_postgres(pg: EmbeddedPostgres) -> None:
        """A previous run killed hard may have left its postmaster running: stop it first."""
        if (pg.pgdata / "postmaster.pid").exists():
            pg.started_here = True
            pg.stop()

    def operator_token(self) -> str:
        if os.environ.get("IIOE_OPERATOR_TOKEN"):
            return os.environ["IIOE_OPERATOR_TOKEN"]
        path = self.data_dir / "operator-token"
        if path.exists():
            return path.read_text().strip()
        token = secrets.token_urlsafe(24)
        path.write_text(token)
        path.chmod(0o600)
        return token

    def operator_auth(self) -> NatsAuthOptions | None:
        """How `iioe up` itself (and the CLI) connects: the operator user of the embedded server."""
        if self.auth is None:
            return None
        creds = self.auth.credentials(OPERATOR_USER)
        return NatsAuthOptions(user=creds.user, password=creds.password)

    # -- services -------------------------------------------------------------------------
    def service_env(self, service: str) -> dict[str, str]:
        """One service's environment: its own NATS user (embedded server) and the shared settings."""
        env = dict(os.environ)
        env.update(
            NATS_URL=self.nats_url,
            DATABASE_URL=self.database_url,
            IIOE_DATA_DIR=str(self.data_dir),
            LOG_JSON="true",
            PYTHONUNBUFFERED="1",
        )
        if self.auth is not None:
            env.update(self.auth.credentials(service_user(service)).env())
        if service in self.service_database_urls:
            env["DATABASE_URL"] = self.service_database_urls[service]
        for svc in SERVICES:
            env[f"IIOE_{svc.name.upper()}_URL"] = f"http://127.0.0.1:{svc.port()}"
            env.setdefault(f"IIOE_{svc.name.upper()}_API_TOKEN", self.token)
        return env

    def check_ports(self, services: list[ServiceDef]) -> None:
        for svc in services:
            if not port_is_free(svc.port()):
                raise UpError(
                    f"HTTP port {svc.port()} for the {svc.name} service is already in use. "
                    f"Set {svc.port_env}=<free port>, or stop what is listening there (another `iioe up`?)."
                )

    def start_services(self, services: list[ServiceDef]) -> None:
        for svc in services:
            child = Child(svc, self.data_dir / "logs" / f"{svc.name}.log")
            child.start(self.service_env(svc.name))
            self.children.append(child)
            say(f"starting {svc.name} (pid {child.process.pid if child.process else '?'}, port {svc.port()})")

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout
        pending = {c.service.name: c for c in self.children}
        with httpx.Client(timeout=2.0) as client:
            while pending:
                for name, child in list(pending.items()):
                    assert child.process is not None
                    if child.process.poll() is not None:
                        raise UpError(
                            f"the {name} service exited with code {child.process.returncode} while starting; "
                            f"last lines of {child.log_path}:\n{tail(child.log_path)}"
                        )
                    try:
                        ok = client.get(f"http://127.0.0.1:{child.service.port()}/healthz").status_code == 200
                    except httpx.HTTPError:
                        ok = False
                    if ok:
                        say(f"{name} is ready")
                        del pending[name]
                if pending and time.monotonic() > deadline:
                    names = ", ".join(pending)
                    raise UpError(f"not ready after {self.health_timeout:.0f}s: {names}; see {self.data_dir / 'logs'}")
                time.sleep(0.2)

    def supervise(self, stop: list[bool]) -> None:
        while not stop[0]:
            for child in self.children:
                assert child.process is not None
                code = child.process.poll()
                if code is not None and not stop[0]:
                    delay = min(30.0, 2.0 ** min(child.restarts, 5))
                    say(f"{child.service.name} exited with code {code}; restarting in {delay:.0f}s")
                    time.sleep(delay)
                    child.restarts += 1
                    child.start(self.service_env(child.service.name))
            time.sleep(0.5)

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.nats is not None:
            self.nats.stop()

    def banner(self, elapsed: float) -> None:
        lines = [
            f"IIOE platform is up ({elapsed:.1f}s). Press Ctrl-C to stop.",
            f"  NATS          {self.nats_url}",
            f"  PostgreSQL    {self.database_url}",
        ]
        for child in self.children:
            name = child.service.name
            extra = "  (dashboard: /)" if name == "analytics" else ""
            lines.append(f"  {name:<13} http://127.0.0.1:{child.service.port()}{extra}")
        lines += [
            f"  data          {self.data_dir}",
            f"  logs          {self.data_dir / 'logs'}",
            f"  operator token (Authorization: Bearer ...) in {self.data_dir / 'operator-token'}",
        ]
        print("\n".join(lines), flush=True)


def run_up(data_dir: Path, only: list[str] | None = None, health_timeout: float = 90.0) -> int:
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    platform = Platform(data_dir, health_timeout=health_timeout)
    services = [s for s in SERVICES if not only or s.name in only]
    stop = [False]

    def on_signal(signum: int, _frame: object) -> None:
        stop[0] = True
        raise KeyboardInterrupt

    # explicit for SIGINT too: a process started in the background inherits SIGINT as ignored
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        platform.check_ports(services)
        platform.token = platform.operator_token()
        platform.start_nats()
        platform.start_postgres()
        operator = platform.operator_auth()
        contacts_days = float(os.environ.get("IIOE_CONTACTS_MAX_AGE_DAYS", 30))
        streams = asyncio.run(provision(platform.nats_url, contacts_days, auth=operator, operator_token=platform.token))
        say(f"streams ready: {', '.join(streams)}")
        platform.start_services(services)
        platform.wait_healthy()
        platform.banner(time.monotonic() - started)
        platform.supervise(stop)
    except KeyboardInterrupt:
        say("stopping…")
    except (UpError, PortBusy, EmbeddedStartError) as exc:
        say(f"error: {exc}")
        stop[0] = True
        platform.stop()
        return 1
    stop[0] = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt a clean stop
    platform.stop()
    say("stopped")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg,unused-ignore]
    p = sub.add_parser("up", help="run the whole platform: embedded NATS + PostgreSQL + the services")
    p.add_argument("--data-dir", type=Path, default=Path(os.environ.get("IIOE_DATA_DIR", ".iioe")))
    p.add_argument("--only", nargs="*", help="start only these services")
    p.add_argument("--health-timeout", type=float, default=90.0)
    p.set_defaults(func=lambda a: run_up(a.data_dir, a.only, a.health_timeout))
