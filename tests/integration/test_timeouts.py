"""Nothing waits forever: database sessions carry timeouts, NATS pings a silent server, and a handler
that outlives `ack_wait` keeps its message (in-progress heartbeats) instead of having it redelivered."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from iioe.runtime.consumer import ConsumerSpec, EventConsumer, ReceivedEvent
from iioe.runtime.db import DatabaseTimeouts, create_pool
from iioe.runtime.nats import connect, server_list
from iioe.runtime.settings import ServiceSettings
from iioe.subjects import EVENTS_STREAM
from tests.support.helpers import completion, eventually

pytestmark = pytest.mark.integration


async def test_pooled_connections_carry_server_side_timeouts(database_url: str) -> None:
    pool = await create_pool(database_url, "timeouts", max_size=1, timeouts=DatabaseTimeouts(statement_ms=200))
    try:
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW statement_timeout") == "200ms"
            assert await conn.fetchval("SHOW lock_timeout") == "10s"
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "1min"
            assert await conn.fetchval("SHOW tcp_keepalives_idle") == "30"
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.execute("SELECT pg_sleep(5)")
    finally:
        await pool.close()


def test_settings_defaults_bound_every_wait() -> None:
    timeouts = ServiceSettings().database_timeouts()
    assert timeouts.statement_ms == 30_000 and timeouts.command_seconds == 60.0
    assert ServiceSettings().nats_ping_interval_seconds == 10.0
    assert server_list("nats://a:4222, nats://b:4222,,") == ["nats://a:4222", "nats://b:4222"]


async def test_nats_client_pings_every_ten_seconds(infra) -> None:
    nc = await connect(infra.nats_url, "ping-test")
    try:
        assert nc.options["ping_interval"] == 10
        assert nc.options["max_outstanding_pings"] == 3
        assert nc.options["max_reconnect_attempts"] == -1
    finally:
        await nc.close()


async def test_handler_outliving_ack_wait_is_not_redelivered(nc, ref) -> None:
    js = nc.jetstream()
    subject = f"iioe.events.x{ref}.course_completed.v1"
    deliveries: list[int] = []

    async def slow_handler(received: ReceivedEvent) -> None:
        deliveries.append(received.num_delivered)
        await asyncio.sleep(3.5)  # the work itself: more than twice ack_wait

    consumer = EventConsumer(
        js, ConsumerSpec(f"{ref}-slow", EVENTS_STREAM, [subject], slow_handler, ack_wait_seconds=1.5)
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await js.publish(subject, completion(f"{ref}-1", f"x{ref}"))

        async def processed() -> bool:
            return consumer.processed == 1

        await eventually(processed, timeout=15, what="the slow event acknowledged")
        info = await js.consumer_info(EVENTS_STREAM, f"{ref}-slow")
        assert deliveries == [1]
        assert info.num_redelivered == 0
    finally:
        task.cancel()
