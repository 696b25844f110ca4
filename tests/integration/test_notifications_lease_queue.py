"""The shared lease queue (`iioe.runtime.lease_queue`) on a real PostgreSQL, on a table of its own.

Its two users (notifications' e-mail and webhook queues) are exercised end to end in
`test_notifications.py` and `test_notifications_crash.py`; here the queue's own promises are pinned.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from iioe.runtime.db import Conn
from iioe.runtime.lease_queue import Claim, LeaseQueue, QueueTable

pytestmark = pytest.mark.integration

JOBS = QueueTable(
    table="jobs",
    key="job_id",
    columns=("payload",),
    done="done",
    dead="dead",
    done_at="finished_at",
    eligible="q.payload <> 'hidden'",
    writable=frozenset({"last_error"}),
)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    assert pool is not None
    await pool.execute(
        "CREATE TABLE jobs (job_id text PRIMARY KEY, payload text NOT NULL, status text NOT NULL DEFAULT 'pending',"
        " attempts integer NOT NULL DEFAULT 0, next_attempt_at timestamptz NOT NULL DEFAULT now(),"
        " claim_token uuid, lease_until timestamptz, last_error text, finished_at timestamptz)"
    )
    try:
        yield pool
    finally:
        await pool.close()


async def uptime(conn: Conn) -> float:
    """Seconds since the PostgreSQL server started (an expired lease is taken over only after a lease of that)."""
    seconds = await conn.fetchval("SELECT extract(epoch FROM now() - pg_postmaster_start_time())::float8")
    assert isinstance(seconds, float)
    return seconds


async def add(pool: asyncpg.Pool, *jobs: str) -> None:
    await pool.executemany("INSERT INTO jobs (job_id, payload) VALUES ($1, $2)", [(j, f"data-{j}") for j in jobs])


async def row(pool: asyncpg.Pool, job_id: str) -> asyncpg.Record:
    found = await pool.fetchrow("SELECT * FROM jobs WHERE job_id = $1", job_id)
    assert found is not None
    return found


async def test_a_claim_takes_due_rows_once_with_a_token_and_a_lease(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, "a", "b")
    async with pool.acquire() as conn:
        claims = await queue.claim(conn, 10, 60)
        assert sorted(c.key for c in claims) == ["a", "b"]
        assert all(c.attempts == 1 and c.row["payload"] == f"data-{c.key}" for c in claims)
        assert len({c.token for c in claims}) == 1  # one claim, one token
        assert await queue.claim(conn, 10, 60) == []  # leased: nobody else gets them
    stored = await row(pool, "a")
    assert stored["status"] == "sending" and stored["claim_token"] == claims[0].token
    assert stored["lease_until"] is not None


async def test_concurrent_claimers_never_share_a_row(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, *(f"j{i:02}" for i in range(40)))

    async def claimer() -> list[str]:
        taken: list[str] = []
        async with pool.acquire() as conn:
            while claims := await queue.claim(conn, 3, 60):
                taken += [c.key for c in claims]
        return taken

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    everything = [key for taken in results for key in taken]
    assert sorted(everything) == [f"j{i:02}" for i in range(40)]  # each exactly once


async def test_an_expired_lease_is_reclaimed_and_the_old_holder_cannot_finish(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, "c")
    async with pool.acquire() as conn:
        [crashed] = await queue.claim(conn, 1, -1)  # a lease already over: its worker died
        [second] = await queue.claim(conn, 1, await uptime(conn) / 2)  # a lease shorter than the server's uptime
        assert second.key == "c" and second.attempts == 2 and second.token != crashed.token
        assert not await queue.done(conn, crashed)
        assert not await queue.dead(conn, crashed, last_error="late")
        assert await queue.done(conn, second, last_error=None)
        assert not await queue.done(conn, second)  # finished once
    stored = await row(pool, "c")
    assert (stored["status"], stored["attempts"], stored["claim_token"]) == ("done", 2, None)
    assert stored["finished_at"] is not None and stored["last_error"] is None


async def test_a_lease_is_extended_only_by_the_holder_of_its_token(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, "k", "l")
    async with pool.acquire() as conn:
        claims = await queue.claim(conn, 10, 1)
        before = {r["job_id"]: r["lease_until"] for r in await conn.fetch("SELECT job_id, lease_until FROM jobs")}
        assert await queue.extend(conn, claims, 3600) == 2
        after = {r["job_id"]: r["lease_until"] for r in await conn.fetch("SELECT job_id, lease_until FROM jobs")}
        assert all(after[k] > before[k] for k in ("k", "l"))
        done, held = sorted(claims, key=lambda c: c.key)
        assert await queue.done(conn, done)
        stranger = Claim(key=held.key, token=uuid.uuid4(), attempts=1, row={})
        assert await queue.extend(conn, [done, stranger], 3600) == 0  # finished, or not ours
        assert await queue.extend(conn, [], 3600) == 0
    assert (await row(pool, "k"))["lease_until"] is None


async def test_no_expired_lease_is_taken_within_a_lease_of_the_server_start(pool: asyncpg.Pool) -> None:
    """A lease that ran out while PostgreSQL was down says nothing about its holder: it gets a full lease
    after the (re)start to come back and record its outcome."""
    queue = LeaseQueue(JOBS)
    await add(pool, "m")
    async with pool.acquire() as conn:
        up = await uptime(conn)
        [expired] = await queue.claim(conn, 1, -1)
        assert await queue.claim(conn, 1, up + 60) == []  # the server started less than that lease ago
        [taken] = await queue.claim(conn, 1, up / 2)  # it started more than this lease ago
    assert taken.key == "m" and taken.token != expired.token


async def test_retry_waits_for_its_time_and_dead_is_final(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, "d", "e")
    async with pool.acquire() as conn:
        claims = {c.key: c for c in await queue.claim(conn, 10, 60)}
        assert await queue.retry(conn, claims["d"], 3600, last_error="busy")
        assert await queue.dead(conn, claims["e"], last_error="gone")
        assert await queue.claim(conn, 10, 60) == []  # d is not due for an hour, e never again
        await conn.execute("UPDATE jobs SET next_attempt_at = now() WHERE job_id = 'd'")  # the hour has passed
        [again] = await queue.claim(conn, 10, 60)
    assert again.key == "d" and again.attempts == 2
    assert (await row(pool, "d"))["last_error"] == "busy"
    assert [(r["status"], r["last_error"]) for r in [await row(pool, "e")]] == [("dead", "gone")]


async def test_rows_that_are_not_eligible_are_left_alone(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await pool.execute("INSERT INTO jobs (job_id, payload) VALUES ('h', 'hidden'), ('v', 'visible')")
    async with pool.acquire() as conn:
        assert [c.key for c in await queue.claim(conn, 10, 60)] == ["v"]


async def test_only_declared_columns_and_plain_identifiers_reach_the_sql(pool: asyncpg.Pool) -> None:
    queue = LeaseQueue(JOBS)
    await add(pool, "f")
    async with pool.acquire() as conn:
        [claim] = await queue.claim(conn, 1, 60)
        with pytest.raises(ValueError, match="not writable"):
            await queue.done(conn, claim, status="sent")
    with pytest.raises(ValueError, match="identifier"):
        QueueTable(table="jobs; DROP TABLE jobs", key="job_id")
    with pytest.raises(ValueError, match="identifier"):
        QueueTable(table="jobs", key="job_id", writable=frozenset({"x = 1, y"}))
