"""The certification consumer's batch path on real PostgreSQL: one transaction per fetched batch must decide
what one transaction per event decides (on the in-memory fake), refusals included; and the up-front locks
are real advisory locks, taken once per educator."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from iioe.runtime.db import setup_database
from services.certification.handlers import batch_handler, event_handler
from services.certification.key_vault import KeyVault
from services.certification.main import MIGRATIONS
from services.certification.reference import builtin_catalogue
from services.certification.settings import SOURCE
from services.certification.store import PostgresUnitOfWork
from services.certification.store_batch_writes import BatchConflict
from services.certification.store_progress import PostgresProgress
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.tests.test_batch import COURSES, history
from services.certification.tests.test_handlers import completed, registered
from services.certification.usecases import Certification
from tests.integration.test_certification_store import snapshot

pytestmark = pytest.mark.integration
VAULT = KeyVault(os.urandom(32))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, "certification", MIGRATIONS, max_size=3)
    yield pool
    await pool.close()


def with_refusals(seed: int) -> list[ReceivedEvent]:
    """A generated history plus events the rules refuse (another institution, an unknown course)."""
    events = history(seed)
    rng = random.Random(seed)
    for n in range(3):
        educator = f"edu-{seed}-{n}"
        events.insert(rng.randrange(len(events)), completed(educator, "genai-fundamentals", 90, "num", 900 + n))
        events.insert(rng.randrange(len(events)), completed(educator, "no-such-course", 90, seq=950 + n))
    return events


async def consume_in_batches(certification: Certification, events: list[ReceivedEvent], seed: int) -> int:
    """As the consumer runs it: a batch at a time; a failed batch is retried one event at a time, refusals
    dead-lettered (here: counted)."""
    on_batch = batch_handler(certification, "t-progress")
    one = event_handler(certification, "t-progress")
    rng, start, refused = random.Random(seed), 0, 0
    while start < len(events):
        chunk = events[start : start + rng.randint(2, 40)]
        start += len(chunk)
        try:
            await on_batch(chunk)
        except Unprocessable:
            for received in chunk:
                try:
                    await one(received)
                except Unprocessable:
                    refused += 1
    return refused


async def test_batches_on_postgres_decide_what_single_events_decide_on_the_fake(pool: asyncpg.Pool) -> None:
    for seed in range(8):
        events = with_refusals(seed)
        educators = {f"edu-{seed}-{n}" for n in range(8)}
        fake = FakeUnitOfWork()
        one = event_handler(Certification(fake, builtin_catalogue(), {"must": {}, "num": {}}), "t-progress")
        refused_one_by_one = 0
        for received in events:
            try:
                await one(received)
            except Unprocessable:
                refused_one_by_one += 1
        real = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=VAULT)
        certification = Certification(real, builtin_catalogue(), {"must": {}, "num": {}})

        refused = await consume_in_batches(certification, events, seed)

        assert refused == refused_one_by_one > 0, f"seed {seed}"
        assert await snapshot(real, educators) == await snapshot(fake, educators), f"seed {seed}"


async def test_lock_all_takes_one_advisory_lock_per_educator_and_later_locks_are_free(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        progress = PostgresProgress(conn)
        await progress.lock_all(["edu-b", "edu-a", "edu-b", "edu-c"])
        await progress.lock("edu-a")  # already held: no second lock
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted"
        )
        assert held == 3
        async with pool.acquire() as other:  # another transaction cannot take any of them meanwhile
            taken = await other.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtextextended('certification:educator:edu-c', 0))"
            )
            assert taken is False


async def test_an_index_another_writer_took_fails_the_batch_and_one_by_one_issues_anyway(pool: asyncpg.Pool) -> None:
    """Batches draw status indexes from what the process knows is taken (`TakenIndexes`). If another writer (a
    replica) took a drawn index meanwhile, the insert at flush clashes: the batch rolls back, its events are
    decided one at a time against the database, and the next batch learns the taken indexes again."""
    taken_by_replica = 131_003
    forced: list[int] = []  # the next draws, then unique ones
    counter = iter(range(120_000, 131_000))
    real = PostgresUnitOfWork(lambda: pool, source=SOURCE, vault=VAULT)
    certification = Certification(
        real, builtin_catalogue(), {"must": {}}, draw_index=lambda _size: forced.pop(0) if forced else next(counter)
    )
    on_batch, one = batch_handler(certification, "t-progress"), event_handler(certification, "t-progress")
    run = uuid.uuid4().hex[:8]

    def certifying(educator: str) -> list[ReceivedEvent]:
        return [registered(educator)] + [completed(educator, c, 95.0, seq=n) for n, c in enumerate(COURSES, 2)]

    await on_batch(certifying(f"a-{run}"))
    async with pool.acquire() as conn:  # a replica takes the index in both newest lists
        await conn.execute(
            "INSERT INTO status_entries (list_id, status_index, certificate_id, purpose)"
            " SELECT list_id, $1, 'cert-of-a-replica', purpose FROM status_lists"
            " WHERE (purpose, seq) IN (SELECT purpose, max(seq) FROM status_lists GROUP BY purpose)"
            " ON CONFLICT DO NOTHING",
            taken_by_replica,
        )
    forced[:] = [taken_by_replica]
    with pytest.raises(BatchConflict):
        await on_batch(certifying(f"b-{run}"))
    forced[:] = [taken_by_replica]
    for received in certifying(f"b-{run}"):
        await one(received)
    assert not forced, "the one-by-one path drew the taken index (and was refused by the database)"
    forced[:] = [taken_by_replica]
    await on_batch(certifying(f"c-{run}"))  # learnt again: the index is skipped, no clash
    assert not forced

    async with pool.acquire() as conn:
        for educator in (f"a-{run}", f"b-{run}", f"c-{run}"):
            certificates = await conn.fetchval("SELECT count(*) FROM certificates WHERE educator_id = $1", educator)
            indexes = await conn.fetch(
                "SELECT e.status_index FROM status_entries e JOIN certificates c USING (certificate_id)"
                " WHERE c.educator_id = $1",
                educator,
            )
            issued = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE event_id LIKE 'certificate-issued:%'"
                " AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'educator_id' = $1",
                educator,
            )
            assert certificates > 0 and issued == certificates, educator
            assert len(indexes) == 2 * certificates and taken_by_replica not in {r["status_index"] for r in indexes}
