"""`make bench`: throughput of the foundation on this machine (numbers, not pass/fail).

Starts its own nats-server and PostgreSQL (or uses NATS_URL / DATABASE_URL), then measures:
registration over NATS request–reply, the outbox relay, and the pull-consumer runner with
an inbox claim per message. Run other benchmarks (e.g. analytics) from their own scripts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from iioe.envelope import make_event
from iioe.events import COURSE_COMPLETED, CourseCompleted
from iioe.runtime.consumer import ConsumerSpec, EventConsumer, ReceivedEvent
from iioe.runtime.db import setup_database
from iioe.runtime.inbox import claim
from iioe.runtime.nats import connect, provision_streams
from iioe.runtime.outbox import OutboxRelay, enqueue
from iioe.subjects import EVENTS_STREAM, REGISTER_EDUCATOR, command_subject, event_subject
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from tests.support.helpers import create_database, running_app, unique_ref

MIGRATIONS_NONE = Path(tempfile.mkdtemp())


def report(name: str, count: int, seconds: float) -> None:
    print(f"{name:<44} {count:>7} in {seconds:6.2f}s = {count / seconds:9.0f}/s", flush=True)


async def bench_registration(nats_url: str, database_url: str, n: int = 2000, concurrency: int = 32) -> None:
    from services.registration.main import create_app
    from services.registration.settings import RegistrationSettings

    ref = unique_ref("b")
    app = create_app(RegistrationSettings(NATS_URL=nats_url, DATABASE_URL=database_url, consumer_prefix=ref))
    async with running_app(app):
        nc = await connect(nats_url, "bench")
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            body = {"full_name": f"Bench {i}", "email": f"{ref}.{i}@must.edu.mn", "language": "mn"}
            async with sem:
                reply = await nc.request(
                    command_subject("must", REGISTER_EDUCATOR), json.dumps(body).encode(), timeout=30
                )
            assert "educator_id" in json.loads(reply.data)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        report(f"register_educator (NATS req, {concurrency} in flight)", n, time.perf_counter() - started)
        await nc.close()


async def bench_outbox(nats_url: str, database_url: str, n: int = 20000) -> None:
    pool = await setup_database(database_url, "bench_outbox", MIGRATIONS_NONE)
    nc = await connect(nats_url, "bench-outbox")
    ref = unique_ref("o")
    async with pool.acquire() as conn, conn.transaction():
        for i in range(n):
            data = CourseCompleted(
                educator_id=f"{ref}-{i}", institution="must", course_id="genai-fundamentals", score=90.0,
                completed_at="2025-04-01T10:00:00+08:00",
            )  # fmt: skip
            event = make_event(data, event_type=COURSE_COMPLETED.type, source="urn:iioe:bench")
            await enqueue(conn, event, event_subject(f"b{ref}", "course_completed"))
    relay = OutboxRelay(pool, nc.jetstream(), batch_size=500)
    started = time.perf_counter()
    sent = 0
    while sent < n:
        sent += await relay.publish_pending()
    report("outbox relay -> JetStream (batches of 500)", sent, time.perf_counter() - started)
    await nc.close()
    await pool.close()


async def bench_consumer(nats_url: str, database_url: str, n: int = 20000) -> None:
    pool = await setup_database(database_url, "bench_consumer", MIGRATIONS_NONE)
    nc = await connect(nats_url, "bench-consumer")
    js = nc.jetstream()
    inst = f"c{unique_ref('')}"
    subject = event_subject(inst, "course_completed")
    for i in range(0, n, 1000):
        await asyncio.gather(
            *(
                js.publish(subject, _completion(f"{inst}-{j}", inst), headers={"Nats-Msg-Id": f"{inst}-{j}"})
                for j in range(i, min(n, i + 1000))
            )
        )
    done = asyncio.Event()
    count = 0

    async def handler(received: ReceivedEvent) -> None:
        nonlocal count
        async with pool.acquire() as conn, conn.transaction():
            await claim(conn, "bench", received.id)
        count += 1
        if count >= n:
            done.set()

    async def batch(received: Sequence[ReceivedEvent]) -> None:
        nonlocal count
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                "INSERT INTO inbox (consumer, event_id) VALUES ('bench-batch', $1) ON CONFLICT DO NOTHING",
                [(r.id,) for r in received],
            )
        count += len(received)
        if count >= n:
            done.set()

    for label, spec in (
        ("consumer, inbox claim per message", ConsumerSpec(f"{inst}-one", EVENTS_STREAM, [subject], handler)),
        (
            "consumer, batch handler (fetch 500)",
            ConsumerSpec(f"{inst}-batch", EVENTS_STREAM, [subject], handler, batch_handler=batch, batch_size=500),
        ),
    ):
        count = 0
        done.clear()
        consumer = EventConsumer(js, spec)
        await consumer.start()
        started = time.perf_counter()
        task = asyncio.create_task(consumer.run())
        await done.wait()
        report(label, n, time.perf_counter() - started)
        task.cancel()
    await nc.close()
    await pool.close()


def _completion(event_id: str, inst: str) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0", "id": event_id, "source": "urn:iioe:bench", "time": "2025-04-01T10:00:00+08:00",
            "type": "org.iioe.learning.course_completed.v1", "datacontenttype": "application/json",
            "data": {"educator_id": event_id, "institution": inst, "course_id": "genai-fundamentals", "score": 90,
                     "completed_at": "2025-04-01T10:00:00+08:00"},
        }
    ).encode()  # fmt: skip


async def main(nats_url: str, database_url: str) -> None:
    nc = await connect(nats_url, "bench-provision")
    await provision_streams(nc.jetstream())
    await nc.close()
    db = await create_database(database_url, unique_ref("bench_"))
    print(f"IIOE foundation benchmarks ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    await bench_registration(nats_url, db)
    await bench_outbox(nats_url, db)
    await bench_consumer(nats_url, db)


if __name__ == "__main__":
    tmp = Path(tempfile.mkdtemp(prefix="iioe-bench-"))
    nats = None if os.environ.get("NATS_URL") else EmbeddedNats(tmp / "nats", free_port()).start()
    pg = None if os.environ.get("DATABASE_URL") else EmbeddedPostgres(tmp / "pg", free_port()).start()
    try:
        asyncio.run(
            main(
                os.environ.get("NATS_URL") or (nats.url if nats else ""),
                os.environ.get("DATABASE_URL") or (pg.url.rsplit("/", 1)[0] + "/postgres" if pg else ""),
            )
        )
    finally:
        if pg:
            pg.stop()
        if nats:
            nats.stop()
