"""A database outage is a failure of the world, not of the messages: consumers pause, nothing is
dead-lettered, and every effect happens once the database answers again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from iioe.runtime.consumer import ReceivedEvent, Unprocessable, is_infrastructure_error
from iioe.runtime.inbox import claim
from iioe.runtime.service import ServiceRuntime
from iioe.runtime.settings import ServiceSettings
from iioe.subjects import DLQ_STREAM, EVENTS_STREAM
from tests.support.helpers import completion, eventually, stream_messages

pytestmark = pytest.mark.integration


def test_world_errors_are_told_apart_from_message_errors() -> None:
    assert is_infrastructure_error(ConnectionRefusedError())
    assert is_infrastructure_error(asyncpg.exceptions.ConnectionDoesNotExistError("gone"))
    assert is_infrastructure_error(asyncpg.InterfaceError("pool is closing"))
    assert is_infrastructure_error(asyncpg.CannotConnectNowError("starting up"))
    assert is_infrastructure_error(asyncpg.TooManyConnectionsError("too many"))
    try:
        try:
            raise OSError("connection reset")
        except OSError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert is_infrastructure_error(wrapped)
    assert not is_infrastructure_error(RuntimeError("bug"))
    assert not is_infrastructure_error(ValueError("bad data"))
    assert not is_infrastructure_error(asyncpg.UniqueViolationError("dup"))
    assert not is_infrastructure_error(Unprocessable("invalid", "no"))


async def test_database_outage_longer_than_every_backoff_dead_letters_nothing(
    infra, nc, own_postgres, ref, tmp_path
) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "001_effects.sql").write_text("CREATE TABLE effects (event_id text PRIMARY KEY);")
    settings = ServiceSettings(
        service_name="outage",
        nats_url=infra.nats_url,
        database_url=own_postgres.url,
        db_schema="outage",
        consumer_prefix=f"{ref}-",
        max_deliver=2,
        ack_wait_seconds=5.0,
        retry_backoff_seconds=(0.05, 0.1),
        outage_backoff_initial_seconds=0.05,
        outage_backoff_max_seconds=0.4,
        outbox_relay_enabled=False,
    )
    runtime = ServiceRuntime(settings, migrations, pool_size=3)
    inst = f"x{ref}"
    subject = f"iioe.events.{inst}.course_completed.v1"

    async def on_completion(received: ReceivedEvent) -> None:
        async with runtime.transaction() as conn:
            if await claim(conn, "outage", received.id):
                await conn.execute("INSERT INTO effects (event_id) VALUES ($1)", received.id)

    runtime.add_consumer("effects", EVENTS_STREAM, [subject], on_completion, batch_size=10)
    await runtime.start()
    js = nc.jetstream()
    try:
        before = [f"{ref}-before-{i}" for i in range(5)]
        during = [f"{ref}-during-{i}" for i in range(20)]
        for event_id in before:
            await js.publish(subject, completion(event_id, inst), headers={"Nats-Msg-Id": event_id})

        async def effects() -> set[str]:
            try:
                async with runtime.pool.acquire() as conn:
                    return {r["event_id"] for r in await conn.fetch("SELECT event_id FROM effects")}
            except Exception:
                return set()

        await eventually(lambda: _has(effects, set(before)), timeout=15, what="effects before the outage")

        await asyncio.to_thread(own_postgres.stop)
        loop = asyncio.get_running_loop()
        outage_started = loop.time()
        for event_id in during:
            await js.publish(subject, completion(event_id, inst), headers={"Nats-Msg-Id": event_id})
        consumer = runtime.consumers[0]
        # longer than the whole retry schedule (max_deliver x backoff ≈ 0.15 s) many times over,
        # and than the outage backoff cap: the old rule would have dead-lettered all of them
        while loop.time() - outage_started < 4.0:
            assert consumer.dead_lettered == 0, "an outage consumed the retry budget"
            await asyncio.sleep(0.2)
        assert consumer.infra_failures > 0, "the consumer never met the outage"
        assert consumer.paused

        await asyncio.to_thread(own_postgres.start)
        await eventually(lambda: _has(effects, set(before) | set(during)), timeout=20, what="effects after recovery")
        assert consumer.dead_lettered == 0
        letters = await stream_messages(nc, DLQ_STREAM, f"iioe.dlq.{consumer.spec.durable}.>")
        assert letters == []
        assert consumer.outages >= 1
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM effects") == len(before) + len(during)
    finally:
        await runtime.stop()


async def _has(probe, wanted: set[str]) -> bool:
    return wanted <= await probe()
