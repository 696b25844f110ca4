"""Benchmark of the analytics projections: live consumption and `iioe analytics rebuild`.

Run: `.venv/bin/python bench/bench_analytics.py --events 200000` (or `make bench`).
Starts an embedded nats-server and PostgreSQL in a temporary directory (or uses NATS_URL /
DATABASE_URL), fills IIOE_EVENTS with realistic events, then measures events/s of
(1) the live service catching up from the start of the stream and (2) a full rebuild.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from iioe.envelope import event_headers
from iioe.events import BY_MODEL
from iioe.reference import load_institutions
from iioe.runtime.nats import connect, provision_streams
from iioe.subjects import EVENTS_STREAM
from iioe_tools.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from services.analytics.main import create_app
from services.analytics.rebuild import rebuild
from services.analytics.settings import AI_PROGRAMME_COURSES, AnalyticsSettings
from services.analytics.tests.helpers import completed, issued, registered
from tests.support.helpers import create_database, running_app, unique_ref


def realistic_events(n: int, seed: int = 7) -> list[Any]:
    """Registrations, course attempts and certificates across the 38 pilot institutions."""
    rng = random.Random(seed)
    codes = sorted(load_institutions())
    events: list[Any] = []
    i = 0
    while len(events) < n:
        code, edu = rng.choice(codes), f"edu-bench-{i}"
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        role = "master_teacher" if rng.random() < 0.05 else "educator"
        events.append(registered(edu, code, at=f"2025-{month:02d}-{day:02d}T09:00:00+08:00", role=role))
        done = rng.choice((0, 1, 2, 3, 3))
        for course in AI_PROGRAMME_COURSES[:done]:
            cm = min(12, month + rng.randint(0, 2))
            events.append(completed(edu, code, course, at=f"2025-{cm:02d}-{day:02d}T10:00:00+08:00", score=70.0))
        if done == 3 and rng.random() < 0.8:
            events.append(issued(f"cert-bench-{i}", edu, code, at=f"2025-{min(12, month + 2):02d}-01T09:00:00+08:00"))
        i += 1
    return events[:n]


async def fill_stream(nats_url: str, events: list[Any]) -> float:
    nc = await connect(nats_url, "bench-publisher")
    js = nc.jetstream()
    await provision_streams(js)
    start = time.perf_counter()
    pending = []
    for event in events:
        subject = BY_MODEL[type(event.data)].subject(event.data.institution)
        pending.append(await js.publish_async(subject, event.to_json_bytes(), headers=event_headers(event)))
        if len(pending) >= 2000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    seconds = time.perf_counter() - start
    await nc.close()
    return seconds


async def measure(nats_url: str, admin_db_url: str, n: int, batch_size: int) -> None:
    print(f"generating {n} events …", file=sys.stderr)
    events = realistic_events(n)
    seconds = await fill_stream(nats_url, events)
    print(f"published {n} events in {seconds:.1f}s ({n / seconds:,.0f}/s)")
    nc = await connect(nats_url, "bench")
    total = (await nc.jetstream().stream_info(EVENTS_STREAM)).state.messages

    database_url = await create_database(admin_db_url, unique_ref("bench_"))
    settings = AnalyticsSettings(
        NATS_URL=nats_url,
        DATABASE_URL=database_url,
        consumer_prefix=f"{unique_ref()}-",
        batch_size=batch_size,
        LOG_LEVEL="WARNING",
    )
    app = create_app(settings)
    start = time.perf_counter()
    async with running_app(app) as http:
        durable = app.state.analytics.runtime.consumers[0].spec.durable
        while True:
            info = await nc.jetstream().consumer_info(EVENTS_STREAM, durable)
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.2)
        live_seconds = time.perf_counter() - start
        live = (await http.get("/v1/analytics/summary")).json()
        print(f"live: {total} events projected in {live_seconds:.1f}s ({total / live_seconds:,.0f} events/s)")

        result = await rebuild(settings, progress=True)
        print(
            f"rebuild: {result.events_read} events in {result.seconds:.1f}s ({result.events_per_second:,.0f} events/s)"
        )
        rebuilt = (await http.get("/v1/analytics/summary")).json()
    live.pop("generated_at"), rebuilt.pop("generated_at")
    print("rebuild equals live:", live == rebuilt)
    print(
        f"educators={live['educators_registered']} completions={live['course_completions']}"
        f" certificates={live['certificates_issued']}"
    )
    await nc.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=500, help="live consumer fetch size")
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory(prefix="iioe-bench-") as tmp:
        nats = pg = None
        nats_url = os.environ.get("NATS_URL")
        db_url = os.environ.get("DATABASE_URL")
        try:
            if not nats_url:
                nats = EmbeddedNats(Path(tmp) / "nats", free_port()).start()
                nats_url = nats.url
            if not db_url:
                pg = EmbeddedPostgres(Path(tmp) / "pg", free_port()).start()
                db_url = pg.url
            asyncio.run(measure(nats_url, db_url, args.events, args.batch_size))
        finally:
            if pg is not None:
                pg.stop()
            if nats is not None:
                nats.stop()


if __name__ == "__main__":
    main()
