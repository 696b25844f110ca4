"""What every service process holds: a database pool, a NATS connection, the outbox relay and
its consumers — built from settings in `start()`, never at import time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from iioe.runtime.consumer import ConsumerSpec, EventConsumer
from iioe.runtime.db import setup_database
from iioe.runtime.logging import get_logger
from iioe.runtime.metrics import ServiceMetrics  # observability hook
from iioe.runtime.nats import connect
from iioe.runtime.outbox import OutboxRelay, duplicate_publish_alarms, pending_count
from iioe.runtime.settings import ServiceSettings
from iioe.runtime.tokens import OPERATOR_SCOPES, TokenGrant, TokenRegistry

log = get_logger(__name__)
STOP_TIMEOUT_SECONDS = 10.0
RESTART_INITIAL_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
FAILING_AFTER = 5
"""Deaths in a row after which a restarted task counts as failed for liveness."""
BackgroundTask = Callable[[], Awaitable[None]]


def _recovered_after() -> float:
    """A task that ran this long before dying (or since its last start) is no longer "dying repeatedly"."""
    return RESTART_MAX_SECONDS * 2


GC_THRESHOLD = (20_000, 20, 20)
"""Young-generation collections every 20,000 allocations instead of 700: a consumer allocates thousands of
short-lived objects per batch (parsed events, models, rows) that reference counting frees anyway, and
the collector walking them cost up to ~30 % of the analytics rebuild's CPU (docs/analytics.md)."""


def tune_garbage_collector() -> None:
    """Once started: what was allocated so far (modules, models, the app) is frozen out of every later
    collection, and young collections run less often (`GC_THRESHOLD`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


class ServiceRuntime:
    """Lifecycle of a service's infrastructure: pool, NATS connection, outbox relay, consumers and
    background tasks. The composition root declares consumers and tasks before `start()`; use cases
    never see it (they get a unit of work built on `transaction()`)."""

    def __init__(
        self,
        settings: ServiceSettings,
        migrations: Path,
        *,
        run_relay: bool | None = None,
        pool_size: int = 10,
    ) -> None:
        self.settings = settings
        self._migrations = migrations
        self._consumer_specs: list[ConsumerSpec] = []
        self._background: list[tuple[str, BackgroundTask]] = []
        self._run_relay = settings.outbox_relay_enabled if run_relay is None else run_relay
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self.relay: OutboxRelay | None = None
        self.consumers: list[EventConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.task_failures: dict[str, int] = {}
        """Task name → deaths in a row (a task that then runs a good while starts again from 1)."""
        self._task_started: dict[str, float] = {}
        """Task name → when it was last (re)started (loop time)."""
        self.metrics = ServiceMetrics(settings.service_name)  # observability hook: served at /metrics
        operator = TokenGrant(kind="operator", actor="operator", scopes=OPERATOR_SCOPES)
        self.tokens = TokenRegistry({settings.api_token: operator} if settings.api_token else None)
        """HTTP bearer-token grants (see `iioe.runtime.auth`)."""

    @property
    def pool(self) -> asyncpg.Pool:
        assert self._pool is not None, "runtime not started"
        return self._pool

    @property
    def nc(self) -> NATS:
        assert self._nc is not None, "runtime not started"
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "runtime not started"
        return self._js

    def durable(self, name: str) -> str:
        """Durable consumer name: `<prefix><service>-<name>`, shared by the service's replicas."""
        return f"{self.settings.consumer_prefix}{self.settings.service_name}-{name}"

    def add_consumer(self, name: str, stream: str, filters: list[str], handler: Any, **kw: Any) -> ConsumerSpec:
        """Declare a durable consumer (started with the runtime) with this service's retry settings."""
        spec = ConsumerSpec(
            durable=self.durable(name),
            stream=stream,
            filter_subjects=filters,
            handler=handler,
            max_deliver=self.settings.max_deliver,
            ack_wait_seconds=self.settings.ack_wait_seconds,
            retry_backoff_seconds=self.settings.retry_backoff_seconds,
            outage_backoff_initial_seconds=self.settings.outage_backoff_initial_seconds,
            outage_backoff_max_seconds=self.settings.outage_backoff_max_seconds,
            **kw,
        )
        self._consumer_specs.append(spec)
        return spec

    def add_background_task(self, name: str, run: BackgroundTask) -> None:
        """Declare a long-running task started after the consumers; if it dies, liveness fails."""
        self._background.append((name, run))

    async def start(self) -> None:
        s = self.settings
        self._pool = await setup_database(
            s.database_url, s.db_schema, self._migrations, max_size=self._pool_size, timeouts=s.database_timeouts()
        )
        self._nc = await connect(
            s.nats_url,
            s.service_name,
            ping_interval=s.nats_ping_interval_seconds,
            max_outstanding_pings=s.nats_max_outstanding_pings,
            auth=s.nats_auth(),
        )
        self._js = self._nc.jetstream()
        await self.tokens.start(self._js)
        if self._run_relay:
            self.relay = OutboxRelay(self._pool, self._js, poll_seconds=s.outbox_poll_seconds, metrics=self.metrics)
            self._spawn(self.relay.run, "outbox-relay")
        for spec in self._consumer_specs:
            for worker in range(1, spec.workers + 1):
                consumer = EventConsumer(self._js, spec, probe=self.probe_database, metrics=self.metrics)
                await consumer.start()
                self.consumers.append(consumer)
                self._spawn(consumer.run, spec.durable if worker == 1 else f"{spec.durable}#{worker}")
        for name, run in self._background:
            self._spawn(run, name)
        tune_garbage_collector()
        log.info("service started", consumers=[c.spec.durable for c in self.consumers])

    def _spawn(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        task = asyncio.create_task(self._supervise(run, name), name=name)
        self._tasks.append(task)

    async def _supervise(self, run: Callable[[], Awaitable[None]], name: str) -> None:
        """Run a long-lived task until the service stops; if it dies, log it and start it again.

        A relay or consumer that died of one unexpected error would otherwise hold every later event back
        until someone restarts the process. Restarts back off (1 s doubling to 30 s); a task that keeps
        dying fails liveness (`/livez`), so an orchestrator restarts the whole process."""
        loop = asyncio.get_running_loop()
        delay = RESTART_INITIAL_SECONDS
        while True:
            started = self._task_started[name] = loop.time()
            try:
                await run()
                error = "returned"  # these tasks run until cancelled: returning is a failure too
            except Exception as exc:
                error = repr(exc)
            self.task_failures[name] = self.task_failures.get(name, 0) + 1
            if loop.time() - started > _recovered_after():  # it ran a good while: a fresh failure
                delay, self.task_failures[name] = RESTART_INITIAL_SECONDS, 1
            log.error("background task died, restarting", task=name, error=error, restart_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_MAX_SECONDS)

    async def stop(self) -> None:
        await self.tokens.stop()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # bounded: a task that swallowed its cancellation must not hold the process (or a pod) forever
            _, stuck = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_SECONDS)
            for task in stuck:
                log.error("background task did not stop", task=task.get_name(), timeout=STOP_TIMEOUT_SECONDS)
        self._tasks.clear()
        if self._nc is not None:
            # consumers are stopped, so flush pending acks/publishes and close; drain() would wait
            # ~30 s on the pull subscriptions' inboxes
            with contextlib.suppress(Exception):
                await self._nc.flush(timeout=2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), STOP_TIMEOUT_SECONDS)
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), STOP_TIMEOUT_SECONDS)
            except TimeoutError:  # a connection still busy: terminate rather than wait
                self._pool.terminate()
        log.info("service stopped")

    def _consumer_counts(self) -> dict[str, dict[str, int]]:
        """processed / dead_lettered per durable, summed over its workers."""
        counts: dict[str, dict[str, int]] = {}
        for c in self.consumers:
            mine = counts.setdefault(c.spec.durable, {"processed": 0, "dead_lettered": 0})
            mine["processed"] += c.processed
            mine["dead_lettered"] += c.dead_lettered
        return counts

    async def refresh_metrics(self) -> None:  # observability hook: the gauges read at each scrape
        consumers = list(dict.fromkeys((c.spec.stream, c.spec.durable) for c in self.consumers))
        await self.metrics.refresh(js=self._js, consumers=consumers, pool=self._pool)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A transaction whose outbox rows the relay publishes right after commit (yields a connection)."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
        if self.relay is not None:
            self.relay.wake()

    @contextlib.asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Any]:
        """A connection outside any transaction, for work done in one statement (which is atomic on its own):
        no BEGIN and COMMIT round trips. Wakes the outbox relay afterwards, as `transaction()` does."""
        async with self.pool.acquire() as conn:
            yield conn
        if self.relay is not None:
            self.relay.wake()

    async def probe_database(self) -> None:
        """`SELECT 1` through the pool: raises while the database does not answer (consumers pause on it)."""
        async with self.pool.acquire() as conn:
            await conn.fetchval("SELECT 1")

    def liveness(self) -> dict[str, Any]:
        """Is the process doing its work? Only its own tasks count: a database outage is not a reason
        to restart it (that is readiness)."""
        dead_tasks = self._dead_tasks()
        return {"status": "ok" if not dead_tasks else "failed", "stopped_tasks": dead_tasks}

    def _dead_tasks(self) -> list[str]:
        """Tasks that ended, or keep dying (`FAILING_AFTER` deaths in a row, and not running well since)."""
        now = asyncio.get_running_loop().time()
        failing = {
            name
            for name, n in self.task_failures.items()
            if n >= FAILING_AFTER and now - self._task_started.get(name, now) <= _recovered_after()
        }
        return [t.get_name() for t in self._tasks if t.done() or t.get_name() in failing]

    async def health(self) -> dict[str, Any]:
        """Readiness facts (`/readyz`, `/healthz`): the database and NATS answer, and every task runs."""
        db_ok = True
        pending = None
        try:
            pending = await pending_count(self.pool)
        except Exception:
            db_ok = False
        nats_ok = self._nc is not None and self._nc.is_connected
        dead_tasks = self._dead_tasks()
        return {
            "status": "ok" if db_ok and nats_ok and not dead_tasks else "degraded",
            "service": self.settings.service_name,
            "database": "ok" if db_ok else "unreachable",
            "nats": "ok" if nats_ok else "disconnected",
            "outbox_pending": pending,
            "outbox_duplicate_alarms": duplicate_publish_alarms(),
            "consumers": self._consumer_counts(),
            "stopped_tasks": dead_tasks,
        }
