"""Rebuild: replay IIOE_EVENTS from the start into fresh projections, then swap them in.

1. Migrations create a new schema `<schema>_rebuild_<UTC timestamp>` (its own inbox too).
2. An ephemeral pull consumer (no acks, large batches) reads the stream from sequence 1 up to
   the last sequence seen at start; each batch is claimed and projected with the same SQL as
   the live consumer (the `Projector` use case), one transaction per batch — the live service keeps running meanwhile.
   Reading (`pull.BatchPuller`) and parsing (`replay_parsing`) are the rebuild's own lean versions
   of the live path's, measured in docs/analytics.md (issue #11); the next batch is read and parsed
   while PostgreSQL applies the previous one.
3. Swap, in one transaction holding the projection lock exclusively (live transactions hold it
   shared, so they pause for this moment only): replay the tail that arrived during step 2, rename
   `<schema>` to `<schema>_old_<ts>` and the new schema to `<schema>`, commit; then drop the old one.

After the swap the live consumer goes on from its own durable position: whatever it
re-delivers was replayed already and is skipped by the new inbox (same CloudEvent ids), and
everything newer is applied to the new tables, which its connections now resolve by name.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from tqdm import tqdm

from iioe.parsing import InvalidEvent
from iioe.reference import load_institutions
from iioe.runtime.consumer import Unprocessable
from iioe.runtime.db import connect_with_retry, create_pool, quote_schema, setup_database
from iioe.runtime.logging import get_logger
from iioe.runtime.nats import connect
from iioe.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from services.analytics import store
from services.analytics.domain import ProjectionEvent, ProjectionRules
from services.analytics.main import MIGRATIONS, rules_from
from services.analytics.pull import BatchPuller
from services.analytics.replay_parsing import parse_projection_event
from services.analytics.reports import Reports
from services.analytics.settings import AnalyticsSettings
from services.analytics.snapshots import publish_summary
from services.analytics.store_reads import PgProjectionReader
from services.analytics.usecases import Projector

log = get_logger(__name__)


_PARSE_SLICE = 100
"""Messages parsed between two yields to the event loop (≈ 2 ms of CPU). A batch is applied by a
dozen statements in turn, each sent when the previous one returns: parsing a whole batch without
yielding (≈ 100 ms) would keep PostgreSQL waiting for the next statement that long, a dozen times."""

_REPLAY_GC_THRESHOLD = (50_000, 50, 1_000)
"""Collector thresholds while replaying (the defaults are 700, 10, 10). A replay keeps two or three
batches of messages and events alive at a time and allocates millions of objects: with the
defaults the cyclic collector kept re-scanning them, ≈ 30 % of the rebuild's Python CPU."""


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Raise the collector's thresholds for the replay; the process's own settings come back after."""
    before = gc.get_threshold()
    gc.set_threshold(*_REPLAY_GC_THRESHOLD)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class RebuildError(RuntimeError):
    """Why a rebuild could not run, phrased for the operator."""


@dataclass
class RebuildResult:
    schema: str
    events_read: int = 0
    events_applied: int = 0
    duplicates: int = 0
    invalid: int = 0
    last_seq: int = 0
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0


class _Replayer:
    """Reads the stream in order and projects each batch; counts what it saw."""

    def __init__(self, puller: BatchPuller, rules: ProjectionRules) -> None:
        self._puller = puller
        self._rules = rules
        self.seq = 0
        self.pending = 1
        self.result = RebuildResult(schema="")

    async def _fetch(self) -> list[ProjectionEvent] | None:
        """The next batch of valid events (maybe empty), or None when the stream has no more."""
        batch = await self._puller.next_batch()
        if batch is None:
            return None
        events: list[ProjectionEvent] = []
        for i, msg in enumerate(batch.msgs):
            if i % _PARSE_SLICE == 0:
                await asyncio.sleep(0)  # the batch being applied sends its next statement
            try:
                events.append(parse_projection_event(msg.data, msg.subject))
            except (InvalidEvent, Unprocessable):
                self.result.invalid += 1  # the live consumer dead-letters these: never counted
        self.seq, self.pending = batch.last_seq, batch.pending
        self.result.events_read += len(batch.msgs)
        return events

    async def replay(
        self,
        until_seq: int,
        conn_for_batch: Callable[[], AbstractAsyncContextManager[Any]],
        on_progress: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Project batches until `until_seq` is reached or the stream has nothing more to give.

        Pipelined: the next batch is fetched and parsed while PostgreSQL applies the previous one
        (batches are still applied one at a time, each in its own transaction).
        """
        applying: asyncio.Task[None] | None = None
        # the same use case as the live consumer, on this replay's transactions (no projection lock:
        # the build schema is not live yet, and the swap transaction holds the lock exclusively)
        projector = Projector(store.PgProjectionUnitOfWork(conn_for_batch, self._rules, hold_lock=False))

        async def apply_batch(events: list[ProjectionEvent], read: int) -> None:
            outcome = await projector.project_batch(events)
            self.result.events_applied += outcome.applied
            self.result.duplicates += outcome.duplicates
            on_progress(read)

        try:
            while self.seq < until_seq:
                before = self.result.events_read
                events = await self._fetch()
                if events is None:
                    if self.pending == 0 or self.seq == 0:
                        return  # nothing more in the stream (e.g. the last messages were deleted)
                    continue
                if applying is not None:
                    await applying
                applying = asyncio.create_task(apply_batch(events, self.result.events_read - before))
        finally:
            if applying is not None:
                await applying


@asynccontextmanager
async def _in_new_transaction(pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A transaction of the build schema that commits without waiting for its WAL flush.

    Safe: nothing reads the build schema before the swap, and a rebuild that dies before it is
    started over (its schema is never swapped in). The swap's own commit is synchronous, and
    flushing its WAL flushes all that came before, so the swapped-in tables are durable when
    `rebuild` returns.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        yield conn


@asynccontextmanager
async def _in_current_transaction(conn: Any) -> AsyncIterator[Any]:
    yield conn


async def rebuild(
    settings: AnalyticsSettings,
    *,
    batch_size: int = 5000,
    progress: bool = False,
    keep_old: bool = False,
    publish: bool = True,
) -> RebuildResult:
    """Replay the whole event stream into fresh projections and swap them in atomically."""
    started = time.perf_counter()
    schema = settings.db_schema
    quote_schema(schema)
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    build_schema, old_schema = f"{schema}_rebuild_{stamp}", f"{schema}_old_{stamp}"
    rules = rules_from(settings)

    guard = await connect_with_retry(settings.database_url)
    if not await guard.fetchval("SELECT pg_try_advisory_lock($1)", store.REBUILD_LOCK):
        await guard.close()
        raise RebuildError("another analytics rebuild is running on this database")
    nc = await connect(settings.nats_url, "iioe-analytics-rebuild", auth=settings.nats_auth())
    pool: asyncpg.Pool | None = None
    swapped = False
    try:
        js = nc.jetstream()
        pool = await setup_database(settings.database_url, build_schema, MIGRATIONS, max_size=2)
        state = (await js.stream_info(EVENTS_STREAM)).state
        puller = BatchPuller(nc, EVENTS_STREAM, EVENTS_SUBJECTS, batch_size)
        await puller.start(js)
        replayer = _Replayer(puller, rules)
        log.info("rebuild started", schema=build_schema, events=state.messages, last_seq=state.last_seq)
        with (
            _fewer_gc_passes(),
            tqdm(
                total=state.messages, unit="ev", unit_scale=True, desc="rebuild", disable=not progress, file=sys.stderr
            ) as bar,
        ):
            build_pool = pool
            await replayer.replay(state.last_seq, lambda: _in_new_transaction(build_pool), bar.update)
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", store.PROJECTION_LOCK)
                tail_seq = (await js.stream_info(EVENTS_STREAM)).state.last_seq
                bar.total = max(bar.total or 0, replayer.result.events_read + tail_seq - replayer.seq)
                await replayer.replay(tail_seq, lambda: _in_current_transaction(conn), bar.update)
                live_exists = await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema
                )
                if live_exists:
                    await conn.execute(f"ALTER SCHEMA {quote_schema(schema)} RENAME TO {quote_schema(old_schema)}")
                await conn.execute(f"ALTER SCHEMA {quote_schema(build_schema)} RENAME TO {quote_schema(schema)}")
            swapped = True
        await puller.close()
        await pool.close()
        pool = None
        if live_exists and not keep_old:
            await guard.execute(f"DROP SCHEMA {quote_schema(old_schema)} CASCADE")
        result = replayer.result
        result.schema, result.last_seq = schema, replayer.seq
        result.seconds = time.perf_counter() - started
        log.info(
            "rebuild swapped in",
            schema=schema,
            events=result.events_read,
            applied=result.events_applied,
            duplicates=result.duplicates,
            invalid=result.invalid,
            seconds=round(result.seconds, 2),
        )
        if publish:
            await _publish_snapshot(settings, js, rules)
        return result
    finally:
        if pool is not None:
            await pool.close()
        if not swapped:
            await guard.execute(f"DROP SCHEMA IF EXISTS {quote_schema(build_schema)} CASCADE")
        await guard.close()  # also releases the rebuild lock
        await nc.close()


async def _publish_snapshot(settings: AnalyticsSettings, js: JetStreamContext, rules: ProjectionRules) -> None:
    """Dashboards see the rebuilt numbers at once, without waiting for the next event."""
    pool = await create_pool(settings.database_url, settings.db_schema, max_size=1)
    try:
        reports = Reports(PgProjectionReader(lambda: pool), load_institutions(settings.institutions_file), rules)
        await publish_summary(js, await reports.summary(), force=True)
    finally:
        await pool.close()
