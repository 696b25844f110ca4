"""`make bench`: the pipeline against the broker's own ceilings, in one run on the same servers.

    .venv/bin/python -m bench.run            # the full run (1,000,000 events for the rebuild)
    .venv/bin/python -m bench.run --quick    # small sizes, for developing the harness

Starts the platform as `iioe up` does (authenticated embedded nats-server, embedded PostgreSQL
with a role per service, the four services as OS processes at LOG_LEVEL=WARNING), then measures:

1. raw ceilings on a scratch stream: nats-py `publish_async` (bounded in flight) and a pull
   consumer's `fetch(500)` + ack; the PubAck latency of `publish_async` at each offered rate;
2. the outbox relay draining staged rows to the scratch stream;
3. `register_educator` commands/s over NATS (50 in flight) and over HTTP (50 in flight);
4. completions → certificates end to end (publish as fast as JetStream takes them, until the
   last CertificateIssued is seen);
5. latency from a completion's publish to its CertificateIssued at offered 100, 500, 1,000/s
   (the completion that finishes the programme: each one issues a certificate);
6. analytics: live catch-up and `rebuild` over N extra events (certification and notifications
   are stopped first, so the synthetic events cause no certificate work);
7. peak RSS (VmHWM) of every service process.

Writes docs/bench/results.json, results.md and results.png (see bench.report).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
from tqdm import tqdm

from bench.platform import BenchPlatform
from bench.report import LatencyPoint, Results, write_results
from iioe.envelope import event_headers, make_event
from iioe.events import BY_MODEL, COURSE_COMPLETED, CourseCompleted
from iioe.reference import load_institutions
from iioe.runtime.db import setup_database
from iioe.runtime.logging import configure_logging
from iioe.runtime.outbox import OutboxRelay, enqueue_raw, pending_count
from iioe.subjects import CONTACTS_STREAM, EVENTS_STREAM, command_subject, event_filter

SCRATCH_STREAM = "BENCH_SCRATCH"
SCRATCH_SUBJECTS = "bench.scratch.>"
COURSES = ("genai-fundamentals", "teaching-with-ai", "future-classroom")
RATES = (100, 500, 1000)
IN_FLIGHT = 1000


@dataclass(frozen=True)
class Sizes:
    raw_messages: int
    relay_rows: int
    e2e_educators: int
    http_registrations: int
    latency_seconds: float
    events: int

    def latency_educators(self, rate: int) -> int:
        return max(1, int(rate * self.latency_seconds))


QUICK = Sizes(
    raw_messages=20_000, relay_rows=5_000, e2e_educators=300, http_registrations=300, latency_seconds=2, events=20_000
)
FULL = Sizes(
    raw_messages=200_000,
    relay_rows=50_000,
    e2e_educators=5_000,
    http_registrations=3_000,
    latency_seconds=5,
    events=1_000_000,
)


@dataclass
class Educator:
    educator_id: str
    institution: str


@dataclass
class Run:
    """What the phases share."""

    bench: BenchPlatform
    nc: NATS
    js: JetStreamContext
    sizes: Sizes
    results: Results
    institutions: list[str] = field(default_factory=list)
    educators: list[Educator] = field(default_factory=list)


# --- helpers -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def completion_payload(educator: Educator, course: str, n: int) -> tuple[str, bytes, dict[str, str]]:
    data = CourseCompleted(
        educator_id=educator.educator_id,
        institution=educator.institution,
        course_id=course,
        score=90.0,
        completed_at="2025-04-01T10:00:00+08:00",
    )
    event = make_event(
        data,
        event_type=COURSE_COMPLETED.type,
        source=f"urn:iioe:partner:{educator.institution}-lms",
        subject=educator.educator_id,
        event_id=f"bench-{educator.educator_id}-{course}-{n}",
    )
    return COURSE_COMPLETED.subject(educator.institution), event.to_json_bytes(), event_headers(event)


async def publish_all(js: JetStreamContext, items: list[tuple[str, bytes, dict[str, str]]]) -> float:
    """Publish with at most IN_FLIGHT PubAcks outstanding; returns seconds; raises on any failed publish."""
    gate = asyncio.Semaphore(IN_FLIGHT)
    futures: list[asyncio.Future[Any]] = []
    started = time.perf_counter()
    for subject, payload, headers in items:
        await gate.acquire()
        future = await js.publish_async(subject, payload, headers=headers)
        future.add_done_callback(lambda _f: gate.release())
        futures.append(future)
    await asyncio.gather(*futures)
    return time.perf_counter() - started


async def quiesce(
    js: JetStreamContext, timeout: float = 600.0, streams: tuple[str, ...] = (), services: tuple[str, ...] = ()
) -> float:
    """Wait until the durable consumers of the platform's streams (of `services` only, if given) have
    nothing pending; returns seconds."""
    started = time.perf_counter()
    streams = streams or (EVENTS_STREAM, CONTACTS_STREAM)
    calm = 0
    while time.perf_counter() - started < timeout:
        busy = False
        for stream in streams:
            for info in await js.consumers_info(stream):
                durable = info.config.durable_name or ""
                if services and not any(durable.startswith(name) for name in services):
                    continue
                if durable and (info.num_pending or info.num_ack_pending):
                    busy = True
        calm = 0 if busy else calm + 1
        if calm >= 2:
            return time.perf_counter() - started
        await asyncio.sleep(0.25)
    return float("nan")  # still busy: the next phase starts anyway (its figures then include the backlog)


class CertificateWatch:
    """Core-NATS subscription to every CertificateIssued: when each educator's certificate was seen."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self._waiters: list[tuple[set[str], asyncio.Future[None]]] = []

    async def start(self, nc: NATS) -> None:
        await nc.subscribe(event_filter("certificate_issued"), cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        now = time.perf_counter()
        educator_id = json.loads(msg.data)["data"]["educator_id"]
        self.seen.setdefault(educator_id, now)
        for wanted, future in self._waiters:
            wanted.discard(educator_id)
            if not wanted and not future.done():
                future.set_result(None)

    async def wait_for(self, educator_ids: list[str], timeout: float) -> None:
        wanted = {e for e in educator_ids if e not in self.seen}
        if not wanted:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((wanted, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiters.remove((wanted, future))


# --- phases --------------------------------------------------------------------------------------


async def phase_raw_ceilings(run: Run) -> None:
    js = run.js
    await js.add_stream(
        StreamConfig(name=SCRATCH_STREAM, subjects=[SCRATCH_SUBJECTS], storage=StorageType.FILE, duplicate_window=600)
    )
    educator = Educator("edu-ceiling", "must")
    _, payload, _ = completion_payload(educator, COURSES[0], 0)  # the size of a real event
    n = run.sizes.raw_messages
    items = [("bench.scratch.raw", payload, {"Nats-Msg-Id": f"raw-{i}"}) for i in range(n)]
    seconds = await publish_all(js, items)
    run.results.ceilings["publish_async"] = n / seconds

    sub = await js.pull_subscribe(
        "bench.scratch.raw",
        durable="bench-fetch",
        stream=SCRATCH_STREAM,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT),
    )
    received = 0
    started = time.perf_counter()
    while received < n:
        for msg in await sub.fetch(500, timeout=5):
            await msg.ack()
            received += 1
    await run.nc.flush()
    run.results.ceilings["fetch_ack"] = n / (time.perf_counter() - started)
    await sub.unsubscribe()


async def paced(rate: int, count: int, send: Callable[[int], Awaitable[None]]) -> None:
    """Open loop: item i is sent at start + i/rate, whatever the answers do."""
    started = time.perf_counter()
    i = 0
    while i < count:
        due = min(count, int((time.perf_counter() - started) * rate) + 1)
        while i < due:
            await send(i)
            i += 1
        await asyncio.sleep(0.001)


async def phase_raw_latency(run: Run) -> None:
    educator = Educator("edu-ceiling", "must")
    _, payload, _ = completion_payload(educator, COURSES[0], 0)
    for rate in RATES:
        count = run.sizes.latency_educators(rate)
        latencies: list[float] = []
        futures: list[asyncio.Future[Any]] = []

        async def send(
            i: int, rate: int = rate, latencies: list[float] = latencies, futures: list[Any] = futures
        ) -> None:
            sent = time.perf_counter()
            future = await run.js.publish_async(
                "bench.scratch.latency", payload, headers={"Nats-Msg-Id": f"lat-{rate}-{i}"}
            )
            future.add_done_callback(lambda _f: latencies.append(time.perf_counter() - sent))
            futures.append(future)

        await paced(rate, count, send)
        await asyncio.gather(*futures)
        run.results.raw_latency[rate] = (percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000)


async def phase_relay(run: Run, relay_class: type[Any]) -> None:
    pool = await setup_database(run.bench.admin_database_url, "bench_relay", Path(tempfile.mkdtemp()))
    n = run.sizes.relay_rows
    educator = Educator("edu-relay", "must")
    _, payload, _ = completion_payload(educator, COURSES[0], 0)
    async with pool.acquire() as conn, conn.transaction():
        for i in range(n):
            await enqueue_raw(conn, f"relay-{i}", "bench.scratch.relay", payload, {"Nats-Msg-Id": f"relay-{i}"})
    relay = relay_class(pool, run.js, poll_seconds=1.0)
    started = time.perf_counter()
    task = asyncio.create_task(relay.run())
    while await pending_count(pool) > 0:  # noqa: ASYNC110 - the relay runs in this process, no event to wait on
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pool.close()
    run.results.add("outbox relay → JetStream", n / seconds, "rows/s", ceiling="publish_async")


async def phase_registration(run: Run) -> None:
    s = run.sizes
    total = s.e2e_educators + sum(s.latency_educators(r) for r in RATES)
    gate = asyncio.Semaphore(50)
    stamp = int(time.time())
    educators: list[Educator | None] = [None] * total

    async def one(i: int) -> None:
        inst = run.institutions[i % len(run.institutions)]
        body = {"full_name": f"Bench Educator {i}", "email": f"bench.{stamp}.{i}@{inst}.edu.mn", "language": "mn"}
        async with gate:
            reply = await run.nc.request(command_subject(inst, "register_educator"), json.dumps(body).encode(), 30)
        answer = json.loads(reply.data)
        if "educator_id" not in answer:
            raise RuntimeError(f"registration failed: {answer}")
        educators[i] = Educator(answer["educator_id"], inst)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    run.results.add(
        "register_educator over NATS (50 in flight)",
        total / (time.perf_counter() - started),
        "commands/s",
        ceiling="publish_async",
        target=2000,
    )
    run.educators = [e for e in educators if e is not None]

    url = run.bench.url("registration")
    headers = {"Authorization": f"Bearer {run.bench.token}"}
    limits = httpx.Limits(max_connections=50, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:

        async def post(i: int) -> None:
            inst = run.institutions[i % len(run.institutions)]
            body = {
                "institution": inst,
                "full_name": f"Http {i}",
                "email": f"http.{stamp}.{i}@{inst}.edu.mn",
                "language": "en",
            }
            async with gate:
                reply = await http.post("/v1/educators", json=body)
            if reply.status_code not in (200, 201):
                raise RuntimeError(f"HTTP registration failed: {reply.status_code} {reply.text}")

        started = time.perf_counter()
        await asyncio.gather(*(post(i) for i in range(s.http_registrations)))
        run.results.add(
            "register_educator over HTTP (50 in flight)",
            s.http_registrations / (time.perf_counter() - started),
            "commands/s",
            ceiling="publish_async",
        )
    await quiesce(run.js)


async def phase_end_to_end(run: Run, watch: CertificateWatch) -> None:
    educators = run.educators[: run.sizes.e2e_educators]
    items = [completion_payload(e, course, 1) for e in educators for course in COURSES]
    started = time.perf_counter()
    publish_seconds = await publish_all(run.js, items)
    ids = [e.educator_id for e in educators]
    await watch.wait_for(ids, timeout=600)
    done = [watch.seen[i] for i in ids if i in watch.seen]
    if len(done) < len(ids):
        run.results.notes.append(f"end to end: {len(ids) - len(done)} of {len(ids)} certificates not seen in 600 s")
    seconds = (max(done) if done else time.perf_counter()) - started
    run.results.add(
        "completions → certificates, end to end",
        len(items) / seconds,
        "completions/s",
        ceiling="publish_async",
        target_ratio=0.3,
        detail=f"{len(items)} completions ({len(done)} certificates); all published after {publish_seconds:.1f} s",
    )
    await quiesce(run.js)


async def phase_latency(run: Run, watch: CertificateWatch) -> None:
    s = run.sizes
    offset = s.e2e_educators
    groups: dict[int, list[Educator]] = {}
    for rate in RATES:
        n = s.latency_educators(rate)
        groups[rate] = run.educators[offset : offset + n]
        offset += n
    # the first two courses ahead of time (not timed), so each timed completion finishes a programme
    preload = [completion_payload(e, c, 1) for group in groups.values() for e in group for c in COURSES[:2]]
    await publish_all(run.js, preload)
    await quiesce(run.js, timeout=1800)
    for rate, group in groups.items():
        items = [completion_payload(e, COURSES[2], 1) for e in group]
        sent_at: dict[str, float] = {}
        futures: list[asyncio.Future[Any]] = []

        async def send(
            i: int,
            items: list[Any] = items,
            group: list[Educator] = group,
            sent_at: dict[str, float] = sent_at,
            futures: list[Any] = futures,
        ) -> None:
            subject, payload, headers = items[i]
            sent_at[group[i].educator_id] = time.perf_counter()
            futures.append(await run.js.publish_async(subject, payload, headers=headers))

        first = time.perf_counter()
        await paced(rate, len(items), send)
        await asyncio.gather(*futures)
        await watch.wait_for(list(sent_at), timeout=120 + len(items) / 10)  # a backlog drains at ≥ 10/s
        latencies = [watch.seen[e] - t for e, t in sent_at.items() if e in watch.seen]
        last = max((watch.seen[e] for e in sent_at if e in watch.seen), default=time.perf_counter())
        raw = run.results.raw_latency.get(rate, (float("nan"), float("nan")))
        run.results.latency.append(
            LatencyPoint(
                offered=rate,
                achieved=len(latencies) / (last - first),
                p50_ms=percentile(latencies, 0.5) * 1000,
                p99_ms=percentile(latencies, 0.99) * 1000,
                max_ms=max(latencies, default=float("nan")) * 1000,
                count=len(items),
                missing=len(items) - len(latencies),
                raw_p50_ms=raw[0],
                raw_p99_ms=raw[1],
            )
        )
        await quiesce(run.js)


def realistic_events(n: int, seed: int = 7) -> Iterator[Any]:
    """Registrations, course attempts and certificates across the 38 pilot institutions (streamed)."""
    from services.analytics.tests.helpers import completed, issued, registered

    rng = random.Random(seed)
    codes = sorted(load_institutions())
    produced = 0
    i = 0
    while True:
        code, edu = rng.choice(codes), f"edu-rebuild-{i}"
        month, day = rng.randint(1, 12), rng.randint(1, 28)
        role = "master_teacher" if rng.random() < 0.05 else "educator"
        batch = [registered(edu, code, at=f"2025-{month:02d}-{day:02d}T09:00:00+08:00", role=role)]
        done = rng.choice((0, 1, 2, 3, 3))
        for course in COURSES[:done]:
            cm = min(12, month + rng.randint(0, 2))
            batch.append(completed(edu, code, course, at=f"2025-{cm:02d}-{day:02d}T10:00:00+08:00", score=85.0))
        if done == 3 and rng.random() < 0.8:
            batch.append(issued(f"cert-rebuild-{i}", edu, code, at=f"2025-{min(12, month + 2):02d}-01T09:00:00+08:00"))
        for event in batch:
            yield event
            produced += 1
            if produced >= n:
                return
        i += 1


async def phase_analytics(run: Run) -> None:
    from services.analytics.rebuild import rebuild
    from services.analytics.settings import AnalyticsSettings

    run.results.memory.update(run.bench.memory())  # certification and notifications are stopped next
    await asyncio.to_thread(run.bench.stop, ["certification", "notifications"])
    n = run.sizes.events
    started = time.perf_counter()
    chunk: list[tuple[str, bytes, dict[str, str]]] = []
    fill_seconds = 0.0
    for event in realistic_events(n):
        chunk.append(
            (BY_MODEL[type(event.data)].subject(event.data.institution), event.to_json_bytes(), event_headers(event))
        )
        if len(chunk) == 20_000:
            fill_seconds += await publish_all(run.js, chunk)
            chunk.clear()
    if chunk:
        fill_seconds += await publish_all(run.js, chunk)
    catch_up = await quiesce(run.js, timeout=3600, streams=(EVENTS_STREAM,), services=("analytics",))
    live_seconds = time.perf_counter() - started
    run.results.add(
        "analytics live projection (catch-up)",
        n / live_seconds,
        "events/s",
        ceiling="fetch_ack",
        detail=f"{n} events published in {fill_seconds:.1f} s, projected {catch_up:.1f} s after the last publish",
    )
    operator = run.bench.platform.operator_auth()
    assert operator is not None and operator.user is not None and operator.password is not None
    settings = AnalyticsSettings(
        NATS_URL=run.bench.platform.nats_url,
        NATS_USER=operator.user,
        NATS_PASSWORD=operator.password,
        DATABASE_URL=run.bench.admin_database_url,
        LOG_LEVEL="WARNING",
    )
    result = await rebuild(settings, progress=False, publish=False)
    run.results.add(
        "analytics rebuild",
        result.events_per_second,
        "events/s",
        ceiling="fetch_ack",
        target_ratio=0.5,
        detail=f"{result.events_read} events in {result.seconds:.1f} s",
    )
    run.results.memory.update(run.bench.memory(["analytics", "registration"]))


# --- main ----------------------------------------------------------------------------------------


def load_relay_class(path: str | None) -> type[Any]:
    """`--relay-module FILE`: measure another relay implementation (e.g. the previous one) in phase 2."""
    if not path:
        return OutboxRelay
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_relay_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    relay: type[Any] = module.OutboxRelay
    return relay


async def measure(bench: BenchPlatform, sizes: Sizes, results: Results, args: argparse.Namespace) -> None:
    nc = await bench.operator("bench")
    js = nc.jetstream(publish_async_max_pending=IN_FLIGHT * 4)
    run = Run(bench, nc, js, sizes, results, institutions=sorted(load_institutions()))
    watch = CertificateWatch()
    await watch.start(nc)
    phases: list[tuple[str, Callable[[], Awaitable[None]]]] = [
        ("raw ceilings", lambda: phase_raw_ceilings(run)),
        ("raw latency", lambda: phase_raw_latency(run)),
        ("outbox relay", lambda: phase_relay(run, load_relay_class(args.relay_module))),
        ("registration", lambda: phase_registration(run)),
        ("end to end", lambda: phase_end_to_end(run, watch)),
        ("latency", lambda: phase_latency(run, watch)),
        ("analytics", lambda: phase_analytics(run)),
    ]
    only = set(args.only or [])
    with tqdm(total=len(phases), unit="phase", file=sys.stderr, dynamic_ncols=True) as bar:
        for name, phase in phases:
            bar.set_description(name)
            if not only or name in only or name.startswith("raw"):
                await phase()
            bar.update(1)
    if only and "analytics" not in only:
        results.memory.update(bench.memory())
    alive = bench.alive()
    results.notes += [
        f"{name} died during the run" for name, up in alive.items() if not up and name in ("registration", "analytics")
    ]
    await nc.close()


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, for developing the harness")
    parser.add_argument("--events", type=int, default=None, help="events for the analytics rebuild (default 1,000,000)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="seconds per offered rate")
    parser.add_argument("--relay-rows", type=int, default=None, help="rows the outbox relay phase drains")
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="where results.{json,md,png} go")
    parser.add_argument("--only", nargs="*", help="run only these phases (raw ceilings always run)")
    parser.add_argument("--relay-module", default=None, help="file of another OutboxRelay to measure in phase 2")
    parser.add_argument("--label", default="", help="a note stored with the results (e.g. 'busy machine')")
    args = parser.parse_args(argv)
    os.environ["LOG_LEVEL"] = "WARNING"
    configure_logging("bench", "WARNING")
    sizes = QUICK if args.quick else FULL
    chosen = (("events", args.events), ("latency_seconds", args.latency_seconds), ("relay_rows", args.relay_rows))
    overrides = {k: v for k, v in chosen if v is not None}
    sizes = Sizes(**{**sizes.__dict__, **overrides})
    results = Results(
        meta={
            "mode": "quick" if args.quick else "full",
            "sizes": sizes.__dict__,
            "cores": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "commit": git_commit(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_at_start": os.getloadavg(),
            "label": args.label,
            "relay": args.relay_module or "iioe.runtime.outbox.OutboxRelay",
        }
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the platform on `kill` too
    data_dir = Path(tempfile.mkdtemp(prefix="iioe-bench-"))
    bench = BenchPlatform(data_dir)
    try:
        bench.start()
        asyncio.run(measure(bench, sizes, results, args))
    finally:
        bench.stop()
    results.meta["load_average_at_end"] = os.getloadavg()
    written = write_results(results, args.out)
    print("\n".join(str(p) for p in written))
    print((args.out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
