"""The platform under test, started the way `iioe up` starts it: an authenticated embedded
nats-server, an embedded PostgreSQL with one role per service, the streams provisioned, and each
of the four services as its own OS process (`python -m services.<name>`), at LOG_LEVEL=WARNING."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client as NATS

from iioe.runtime.nats import connect
from iioe_tools.cli.provision import provision
from iioe_tools.cli.up import SERVICES, Platform
from iioe_tools.embedded import free_port


@dataclass
class ServiceMemory:
    pid: int
    rss_mb: float
    peak_rss_mb: float


def memory_of(pid: int) -> ServiceMemory:
    """Current (VmRSS) and peak (VmHWM) resident set size of a process, from /proc."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return ServiceMemory(pid, round(fields.get("VmRSS", 0.0), 1), round(fields.get("VmHWM", 0.0), 1))


class BenchPlatform:
    """Start/stop the whole platform in a data directory; `say` lines of `iioe up` go to a log file."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "platform.log"
        self.ports = {svc.name: free_port() for svc in SERVICES}
        self._env_before = dict(os.environ)
        os.environ.update(
            IIOE_DATA_DIR=str(data_dir),
            IIOE_NATS_PORT=str(free_port()),
            LOG_LEVEL="WARNING",
            LOG_JSON="true",
            **{svc.port_env: str(self.ports[svc.name]) for svc in SERVICES},
        )
        os.environ.pop("NATS_URL", None)
        os.environ.pop("DATABASE_URL", None)
        self.platform = Platform(data_dir, health_timeout=180.0)

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            yield
        with self.log_path.open("a") as log:
            log.write(buffer.getvalue())

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._quiet():
            p = self.platform
            p.token = p.operator_token()
            p.start_nats()
            p.start_postgres()
            asyncio.run(provision(p.nats_url, 30.0, auth=p.operator_auth(), operator_token=p.token))
            p.start_services(list(SERVICES))
            p.wait_healthy()

    def stop(self, names: list[str] | None = None) -> None:
        with self._quiet():
            if names is None:
                self.platform.stop()
                os.environ.clear()
                os.environ.update(self._env_before)
                return
            for child in self.platform.children:
                if child.service.name in names:
                    child.stop()

    async def operator(self, name: str = "bench") -> NATS:
        return await connect(self.platform.nats_url, name, auth=self.platform.operator_auth())

    @property
    def admin_database_url(self) -> str:
        return self.platform.database_url

    @property
    def token(self) -> str:
        return self.platform.token

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def pids(self) -> dict[str, int]:
        return {c.service.name: c.process.pid for c in self.platform.children if c.process is not None}

    def memory(self, names: list[str] | None = None) -> dict[str, ServiceMemory]:
        return {
            name: memory_of(pid)
            for name, pid in self.pids().items()
            if (names is None or name in names) and Path(f"/proc/{pid}").exists()
        }

    def alive(self) -> dict[str, bool]:
        return {c.service.name: c.process is not None and c.process.poll() is None for c in self.platform.children}
