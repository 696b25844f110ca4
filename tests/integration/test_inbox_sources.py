"""The inbox is keyed on (source, id), as CloudEvents defines uniqueness; rows from before stay valid."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.db import RUNTIME_MIGRATIONS, create_pool, load_migrations, migrate
from iioe.runtime.inbox import claim, claim_event, claim_many
from iioe.runtime.service import ServiceRuntime
from iioe.runtime.settings import ServiceSettings
from iioe.subjects import EVENTS_STREAM
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def completion(event_id: str, source: str, educator: str, institution: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": "org.iioe.learning.course_completed.v1",
            "time": "2025-04-01T10:00:00+08:00",
            "subject": educator,
            "datacontenttype": "application/json",
            "data": {
                "educator_id": educator,
                "institution": institution,
                "course_id": "genai-fundamentals",
                "score": 90,
                "completed_at": "2025-04-01T10:00:00+08:00",
            },
        }
    ).encode()


async def test_same_id_from_two_sources_is_claimed_twice_and_legacy_rows_still_match(database_url: str) -> None:
    pool = await create_pool(database_url, "inbox_keys", max_size=1)
    try:
        runtime_migrations = load_migrations(runtime=RUNTIME_MIGRATIONS)
        first = [m for m in runtime_migrations if m.version == "runtime/001_outbox_inbox"]
        await migrate(pool, "inbox_keys", first)
        async with pool.acquire() as conn:  # a row written by the previous release: no source
            await conn.execute("INSERT INTO inbox (consumer, event_id) VALUES ('c', 'evt-old')")
        applied = await migrate(pool, "inbox_keys", runtime_migrations)
        assert "runtime/002_inbox_source" in applied
        async with pool.acquire() as conn:
            assert await claim(conn, "c", "evt-1", source="urn:iioe:partner:a")
            assert await claim(conn, "c", "evt-1", source="urn:iioe:partner:b")
            assert not await claim(conn, "c", "evt-1", source="urn:iioe:partner:a")
            assert await claim(conn, "other", "evt-1", source="urn:iioe:partner:a")
            assert not await claim(conn, "c", "evt-old", source="urn:iioe:partner:a"), "legacy row must still match"
            assert not await claim(conn, "c", "evt-old")
            fresh = await claim_many(
                conn, "c", [("urn:a", "evt-2"), ("urn:b", "evt-2"), ("urn:a", "evt-2"), ("urn:a", "evt-old")]
            )
            assert fresh == {("urn:a", "evt-2"), ("urn:b", "evt-2")}
            assert await claim_many(conn, "c", [("urn:a", "evt-2")]) == set()
    finally:
        await pool.close()


def effects_runtime(infra: Any, database_url: str, ref: str, tmp_path: Path, name: str, table: str) -> ServiceRuntime:
    """A bare runtime whose handlers record their effects in one table (`table`: its column list)."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_effects.sql").write_text(f"CREATE TABLE effects ({table});")
    settings = ServiceSettings(
        service_name=name,
        nats_url=infra.nats_url,
        database_url=database_url,
        db_schema=f"{name}_e2e",
        consumer_prefix=f"{ref}-",
        outbox_relay_enabled=False,
    )
    return ServiceRuntime(settings, migrations, pool_size=4)


async def test_two_partners_sending_the_same_id_are_both_applied(infra, nc, database_url, ref, tmp_path: Path) -> None:
    runtime = effects_runtime(infra, database_url, ref, tmp_path, "inbox", "source text, event_id text")
    inst = f"x{ref}"
    subject = f"iioe.events.{inst}.course_completed.v1"

    async def on_event(received: ReceivedEvent) -> None:
        async with runtime.transaction() as conn:
            if await claim_event(conn, "effects", received):
                await conn.execute("INSERT INTO effects VALUES ($1, $2)", received.source, received.id)

    runtime.add_consumer("effects", EVENTS_STREAM, [subject], on_event)
    await runtime.start()
    try:
        js = nc.jetstream()
        for source in ("urn:iioe:partner:lms-a", "urn:iioe:partner:lms-b", "urn:iioe:partner:lms-a"):
            # Nats-Msg-Id is per stream: partners that share ids must not share it (see docs/reliability.md)
            await js.publish(subject, completion("evt-1", source, "edu-1", inst))

        async def rows() -> list[asyncpg.Record]:
            async with runtime.pool.acquire() as conn:
                return list(await conn.fetch("SELECT source, event_id FROM effects ORDER BY source"))

        async def processed_all() -> bool:
            return sum(c.processed for c in runtime.consumers) == 3

        await eventually(processed_all, timeout=15, what="three deliveries handled")
        assert [(r["source"], r["event_id"]) for r in await rows()] == [
            ("urn:iioe:partner:lms-a", "evt-1"),
            ("urn:iioe:partner:lms-b", "evt-1"),
        ]
    finally:
        await runtime.stop()


async def test_two_workers_on_one_durable_share_the_events_and_health_adds_them_up(
    infra, nc, database_url, ref, tmp_path: Path
) -> None:
    """`ConsumerSpec.workers`: two fetch-and-handle loops in one process on the same durable — every event
    handled once, both loops busy, `/healthz` counts per durable."""
    runtime = effects_runtime(infra, database_url, ref, tmp_path, "workers", "event_id text PRIMARY KEY")
    inst = f"w{ref}"
    subject = f"iioe.events.{inst}.course_completed.v1"

    async def on_event(received: ReceivedEvent) -> None:
        async with runtime.transaction() as conn:
            if await claim_event(conn, "effects", received):
                await conn.execute("INSERT INTO effects VALUES ($1)", received.id)
                await asyncio.sleep(0.005)  # a handler that waits, as one on the database does

    runtime.add_consumer("effects", EVENTS_STREAM, [subject], on_event, batch_size=10, workers=2)
    await runtime.start()
    try:
        assert len(runtime.consumers) == 2
        js = nc.jetstream()
        for n in range(300):
            await js.publish(subject, completion(f"evt-{n}", "urn:iioe:partner:lms", f"edu-{n}", inst))

        async def processed_all() -> bool:
            return sum(c.processed for c in runtime.consumers) >= 300

        await eventually(processed_all, timeout=30, what="300 events handled")
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM effects") == 300
        assert sum(c.processed for c in runtime.consumers) == 300
        assert all(c.processed > 0 for c in runtime.consumers), "both workers took batches"
        health = await runtime.health()
        assert health["consumers"][runtime.consumers[0].spec.durable]["processed"] == 300
    finally:
        await runtime.stop()
