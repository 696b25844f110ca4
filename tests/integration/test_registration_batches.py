"""Registrations in batches on a real PostgreSQL: one statement stores the new educators and the
outbox rows of exactly those, each row with the trace of its own command; a value PostgreSQL refuses
fails the batch, and then only its own command."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from iioe.commands import RegisterEducatorReply, RegisterEducatorRequest
from iioe.runtime.db import setup_database
from iioe.runtime.tracing import traced
from services.registration.domain import RegisterEducator
from services.registration.main import MIGRATIONS
from services.registration.store import PostgresUnitOfWork
from services.registration.usecases import Registrations

pytestmark = pytest.mark.integration
SOURCE = "urn:iioe:service:registration"


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, "registration", MIGRATIONS, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


def registrations_on(pool: asyncpg.Pool, **kw: Any) -> Registrations:
    @asynccontextmanager
    async def begin() -> AsyncIterator[Any]:
        async with pool.acquire() as conn, conn.transaction():
            yield conn

    @asynccontextmanager
    async def autocommit() -> AsyncIterator[Any]:  # as the service runs batches: one statement, no transaction
        async with pool.acquire() as conn:
            yield conn

    return Registrations(PostgresUnitOfWork(begin, autocommit), {"must", "num"}, source=SOURCE, **kw)


def command(email: str, full_name: str = "Батын Сарнай", institution: str = "must") -> RegisterEducator:
    body = {"full_name": full_name, "email": email, "language": "mn"}
    return RegisterEducator(institution, RegisterEducatorRequest.parse(body))


async def outbox(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT event_id, subject, payload, headers FROM outbox ORDER BY seq")
    return [{**dict(r), "event": json.loads(r["payload"])} for r in rows]


async def test_a_batch_stores_the_new_educators_and_stages_only_their_events(pool: asyncpg.Pool, ref: str) -> None:
    registrations = registrations_on(pool, batches_at_once=1)
    known = await registrations.register(command(f"known.{ref}@must.edu.mn"))
    emails = [f"a.{ref}@must.edu.mn", f"b.{ref}@num.edu.mn", f"A.{ref}@must.edu.mn", f"known.{ref}@MUST.edu.mn"]
    institutions = ["must", "num", "must", "must"]
    traces = [secrets.token_hex(16) for _ in emails]

    async def register(n: int) -> RegisterEducatorReply:
        with traced({"traceparent": f"00-{traces[n]}-{secrets.token_hex(8)}-01"}, "register_educator"):
            return await registrations.register(command(emails[n], institution=institutions[n]))

    a, b, a_again, known_again = await asyncio.gather(*(register(n) for n in range(len(emails))))
    assert registrations.batcher is not None
    assert (registrations.batcher.batches, registrations.batcher.failed) == (2, 0)  # the first, then the four
    assert (a.status, b.status) == ("registered", "registered")
    assert a_again.model_dump() == {"educator_id": a.educator_id, "status": "already_registered"}
    assert known_again.model_dump() == {"educator_id": known.educator_id, "status": "already_registered"}

    stored = await pool.fetch("SELECT educator_id, institution, email FROM educators ORDER BY email")
    assert sorted((r["educator_id"], r["institution"]) for r in stored) == sorted(
        [(known.educator_id, "must"), (a.educator_id, "must"), (b.educator_id, "num")]
    )
    rows = await outbox(pool)
    ids = [known.educator_id] * 2 + [a.educator_id] * 2 + [b.educator_id] * 2
    assert [r["event"]["subject"] for r in rows] == ids  # in the batch's order, nothing for the two repeats
    for n, (educator_id, institution) in enumerate(((a.educator_id, "must"), (b.educator_id, "num"))):
        mine = [r for r in rows if r["event"]["subject"] == educator_id]
        assert [r["subject"] for r in mine] == [
            f"iioe.events.{institution}.educator_registered.v1",
            f"iioe.contacts.{institution}.educator_contact.v1",
        ]
        for row in mine:
            headers = json.loads(row["headers"]) if isinstance(row["headers"], str) else row["headers"]
            assert headers["Nats-Msg-Id"] == row["event_id"] == row["event"]["id"]
            assert headers["traceparent"].split("-")[1] == traces[n]  # its own command's trace, not a neighbour's
        assert mine[1]["event"]["data"]["email"] == emails[n]


async def test_a_value_postgresql_refuses_fails_only_its_own_command(pool: asyncpg.Pool, ref: str) -> None:
    registrations = registrations_on(pool)
    commands = [command(f"e{n}.{ref}@must.edu.mn", "Nul\x00Name" if n == 3 else f"E {n}") for n in range(6)]
    outcomes = await asyncio.gather(*(registrations.register(c) for c in commands), return_exceptions=True)
    assert isinstance(outcomes[3], asyncpg.CharacterNotInRepertoireError)  # what HTTP answers as 422
    good = [o for n, o in enumerate(outcomes) if n != 3]
    assert all(isinstance(o, RegisterEducatorReply) and o.status == "registered" for o in good)
    assert registrations.batcher is not None
    assert (registrations.batcher.batches, registrations.batcher.failed) == (1, 1)
    assert await pool.fetchval("SELECT count(*) FROM educators") == 5
    rows = await outbox(pool)
    assert len(rows) == 10 and {r["event"]["subject"] for r in rows} == {o.educator_id for o in good}  # type: ignore[union-attr]
