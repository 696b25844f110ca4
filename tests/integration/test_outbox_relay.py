"""The pipelined outbox relay: many publishes in flight, nothing lost, woken by NOTIFY, duplicates alarm."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from iioe.envelope import make_event
from iioe.events import COURSE_COMPLETED, CourseCompleted
from iioe.runtime.db import setup_database
from iioe.runtime.outbox import (
    OutboxMessage,
    OutboxRelay,
    duplicate_publish_alarms,
    enqueue,
    pending_count,
    stage_many,
)
from iioe.subjects import EVENTS_STREAM, event_subject
from tests.support.helpers import eventually, stream_messages

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str, ref: str, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    pool = await setup_database(database_url, f"outbox_{ref}", tmp_path)  # runtime tables only
    yield pool
    await pool.close()


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[OutboxRelay]:
    task = asyncio.create_task(relay.run())
    try:
        yield relay
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def stage(pool: asyncpg.Pool, institution: str, ids: list[str]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        for event_id in ids:
            data = CourseCompleted(
                educator_id=event_id, institution=institution, course_id="genai-fundamentals", score=90.0,
                completed_at="2025-04-01T10:00:00+08:00",
            )  # fmt: skip
            event = make_event(data, event_type=COURSE_COMPLETED.type, source="urn:iioe:test", event_id=event_id)
            await enqueue(conn, event, event_subject(institution, "course_completed"))


async def drained(pool: asyncpg.Pool) -> bool:
    return await pending_count(pool) == 0


async def test_pipelined_relay_publishes_every_row_exactly_once(pool: asyncpg.Pool, nc: NATS, ref: str) -> None:
    ids = [f"{ref}-{i}" for i in range(3000)]
    await stage(pool, ref, ids)
    relay = OutboxRelay(pool, nc.jetstream(), batch_size=200, max_in_flight=1000, poll_seconds=0.2)
    async with running(relay):
        await eventually(lambda: drained(pool), timeout=60, what="all 3000 rows published")
    stored = await stream_messages(nc, EVENTS_STREAM, event_subject(ref, "course_completed"))
    assert sorted(m.json()["id"] for m in stored) == sorted(ids)
    assert all(m.headers["Nats-Msg-Id"] == m.json()["id"] for m in stored)
    assert relay.published == 3000 and relay.duplicate_alarms == 0
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE attempts <> 1") == 0


async def test_two_relays_share_the_outbox_without_publishing_a_row_twice(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    ids = [f"{ref}-{i}" for i in range(2000)]
    await stage(pool, ref, ids)
    first = OutboxRelay(pool, nc.jetstream(), batch_size=100, poll_seconds=0.2)
    second = OutboxRelay(pool, nc.jetstream(), batch_size=100, poll_seconds=0.2)
    async with running(first), running(second):
        await eventually(lambda: drained(pool), timeout=60, what="all rows published")
    assert first.published + second.published == 2000
    assert first.duplicate_alarms == second.duplicate_alarms == 0
    assert len(await stream_messages(nc, EVENTS_STREAM, event_subject(ref, "course_completed"))) == 2000


async def test_relay_wakes_on_notify_from_another_process_long_before_its_poll(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=60)
    async with running(relay):
        await eventually(lambda: asyncio.sleep(0, relay.listening), what="the relay to LISTEN")
        await asyncio.sleep(0.3)  # its first (empty) pass is over: now it only waits
        await stage(pool, ref, [f"{ref}-late"])  # committed on another connection; nobody calls wake()
        await eventually(lambda: drained(pool), timeout=5, what="the NOTIFY to wake the relay")


async def test_duplicate_puback_on_first_publish_is_an_alarm_and_a_resend_is_not(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    subject = event_subject(ref, "course_completed")
    await nc.jetstream().publish(subject, b"{}", headers={"Nats-Msg-Id": f"{ref}-taken"})  # someone else
    await stage(pool, ref, [f"{ref}-taken", f"{ref}-fresh"])
    before = duplicate_publish_alarms()
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=0.2)
    async with running(relay):
        await eventually(lambda: drained(pool), what="both rows marked")
        assert relay.duplicate_alarms == 1
        assert duplicate_publish_alarms() == before + 1

        # a crash after publish but before marking: the re-send is a duplicate, and expected
        await pool.execute("UPDATE outbox SET published_at = NULL WHERE event_id = $1", f"{ref}-fresh")
        relay.wake()
        await eventually(lambda: drained(pool), what="the re-sent row marked")
        assert relay.duplicate_alarms == 1
    assert len(await stream_messages(nc, EVENTS_STREAM, subject)) == 2


async def test_failed_publish_is_retried_with_backoff_until_it_succeeds(pool: asyncpg.Pool, nc: NATS, ref: str) -> None:
    subject = f"perf.{ref}.orphan"  # no stream captures it yet: JetStream has no responder
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4)",
            f"{ref}-orphan", subject, b"{}", {"Nats-Msg-Id": f"{ref}-orphan"},
        )  # fmt: skip
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=0.2, publish_timeout=1.0)
    async with running(relay):

        async def failed_twice() -> bool:
            row = await pool.fetchrow("SELECT attempts, last_error, published_at FROM outbox")
            assert row is not None
            return bool(row["attempts"] >= 2 and row["last_error"] and row["published_at"] is None)

        await eventually(failed_twice, timeout=20, what="two failed attempts")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=f"PERF_{ref}", subjects=[subject]))
        try:
            await eventually(lambda: drained(pool), timeout=20, what="the retry after backoff")
            assert (await js.stream_info(f"PERF_{ref}")).state.messages == 1
        finally:
            await js.delete_stream(f"PERF_{ref}")


async def test_relay_listens_again_after_its_connection_is_killed(pool: asyncpg.Pool, nc: NATS, ref: str) -> None:
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=60)
    async with running(relay):
        await eventually(lambda: asyncio.sleep(0, relay.listening), what="the relay to LISTEN")
        channel = f"iioe_outbox_outbox_{ref}"
        killed = await pool.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND query ILIKE $1",
            f"%LISTEN%{channel}%",
        )
        assert killed == 1
        await eventually(lambda: asyncio.sleep(0, not relay.listening), what="the relay to notice")
        await eventually(lambda: asyncio.sleep(0, relay.listening), what="the relay to LISTEN again")
        await asyncio.sleep(0.3)
        await stage(pool, ref, [f"{ref}-after"])
        await eventually(lambda: drained(pool), timeout=5, what="the NOTIFY on the new connection")


class StalledJetStream:
    """A JetStream whose PubAcks never come (a broker that went quiet mid-batch)."""

    def __init__(self) -> None:
        self.published = 0

    async def publish_async(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[Any]:
        self.published += 1
        return asyncio.get_running_loop().create_future()


async def test_stopping_the_relay_hands_in_flight_rows_back_at_once(pool: asyncpg.Pool, ref: str) -> None:
    await stage(pool, ref, [f"{ref}-{i}" for i in range(10)])
    js = StalledJetStream()
    relay = OutboxRelay(pool, js, publish_timeout=30, listen=False)  # type: ignore[arg-type]
    async with running(relay):
        await eventually(lambda: asyncio.sleep(0, js.published == 10), what="the batch in flight")
        leased = await pool.fetchval("SELECT count(*) FROM outbox WHERE next_attempt_at > now()")
        assert leased == 10
    due = await pool.fetchval("SELECT count(*) FROM outbox WHERE next_attempt_at <= now() AND attempts = 1")
    assert due == 10 and await pending_count(pool) == 10


async def test_a_row_marked_unsent_again_is_due_at_once_not_after_a_lease(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    await stage(pool, ref, [f"{ref}-again"])
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=0.1, lease_seconds=600)
    async with running(relay):
        await eventually(lambda: drained(pool), what="the first publish")
        await pool.execute("UPDATE outbox SET published_at = NULL")  # as after a crash before marking
        await eventually(lambda: drained(pool), timeout=5, what="the re-send, long before the 600 s lease")
        assert relay.duplicate_alarms == 0


async def test_relay_outlives_a_broken_connection_and_an_unexpected_error(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    """Seen after a PostgreSQL restart: asyncpg's "cannot switch to state" from a connection broken
    mid-operation killed the relay, and no event of that process was published until it restarted."""
    inst = f"x{ref}"
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=0.2)
    real_claim = relay._claim
    failures: list[BaseException] = [
        asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
        RuntimeError("something nobody foresaw"),
    ]

    async def claim_failing_first() -> Any:
        if failures:
            raise failures.pop(0)
        return await real_claim()

    relay._claim = claim_failing_first  # type: ignore[method-assign]
    ids = [f"{ref}-{i}" for i in range(50)]
    await stage(pool, inst, ids)
    async with running(relay):
        await eventually(lambda: drained(pool), timeout=15, what="the relay to publish after its failed claims")
    assert failures == []
    assert relay.published == len(ids)


async def test_stage_many_keeps_order_skips_staged_ids_and_wakes_the_relay_once(
    pool: asyncpg.Pool, nc: NATS, ref: str
) -> None:
    """The multi-row staging of batches (certification): rows in the given order, an id already staged
    skipped as one by one would, and the relay — only woken by the commit's NOTIFY here — publishes them."""
    await stage(pool, ref, [f"{ref}-1"])
    messages = [
        OutboxMessage(f"{ref}-{i}", event_subject(ref, "course_completed"), f'{{"n": {i}}}'.encode(), {"x": str(i)})
        for i in (3, 1, 2)
    ]
    async with pool.acquire() as conn, conn.transaction():
        assert await stage_many(conn, messages) == 2
        assert await stage_many(conn, []) == 0
    rows = await pool.fetch("SELECT event_id, headers FROM outbox ORDER BY seq")
    assert [r["event_id"] for r in rows] == [f"{ref}-1", f"{ref}-3", f"{ref}-2"]
    headers = rows[1]["headers"]
    assert (json.loads(headers) if isinstance(headers, str) else headers)["x"] == "3"
    relay = OutboxRelay(pool, nc.jetstream(), poll_seconds=60)
    async with running(relay):
        await eventually(lambda: drained(pool), timeout=10, what="the three rows published")
    async with running(OutboxRelay(pool, nc.jetstream(), poll_seconds=60)) as waiting:
        await eventually(lambda: asyncio.sleep(0, waiting.listening), what="the relay to LISTEN")
        await asyncio.sleep(0.3)
        async with pool.acquire() as conn, conn.transaction():
            await stage_many(conn, [OutboxMessage(f"{ref}-4", event_subject(ref, "course_completed"), b"{}", {})])
        await eventually(lambda: drained(pool), timeout=5, what="the NOTIFY of stage_many to wake the relay")
