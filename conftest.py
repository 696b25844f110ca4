"""Session fixtures: a real nats-server and a real PostgreSQL for every integration test.

Started here on free ports in temporary directories (embedded wheels), or with
testcontainers when a Docker engine answers; `NATS_URL` / `DATABASE_URL` point the
suite at running servers instead.
"""

from __future__ import annotations

import asyncio
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


def _nats(tmp: Path) -> Iterator[str]:
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    if docker_available():
        from testcontainers.nats import NatsContainer

        with NatsContainer(image="nats:2.12-alpine").with_command("-js") as container:
            yield container.nats_uri()
        return
    server = EmbeddedNats(tmp / "nats", free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


def _postgres(tmp: Path) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    if docker_available():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:17-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    server = EmbeddedPostgres(tmp / "pg", free_port()).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    tmp = tmp_path_factory.mktemp("infra")
    nats_gen = _nats(tmp)
    pg_gen = _postgres(tmp)
    nats_url = next(nats_gen)
    database_url = next(pg_gen)

    async def prepare() -> None:
        nc = await connect(nats_url, "pytest-provision")
        await provision_streams(nc.jetstream())
        await nc.close()

    asyncio.run(prepare())
    try:
        yield Infra(nats_url, database_url, "external" if os.environ.get("NATS_URL") else "embedded")
    finally:
        for gen in (pg_gen, nats_gen):
            next(gen, None)


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
