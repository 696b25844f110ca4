"""The transactional outbox and its relay to JetStream.

`enqueue` writes the outgoing event in the caller's transaction and `NOTIFY`s the relay (delivered
by PostgreSQL at commit, to every relay of the service's schema, in any process). `OutboxRelay`
publishes pending rows with `Nats-Msg-Id` = event id, many in flight at once (nats-py
`publish_async`), and marks a row sent only after its PubAck:

* a crash between commit and publish loses nothing (the row is still pending);
* rows are *claimed* before publishing (`attempts + 1` and a lease in `next_attempt_at`,
  committed, `SKIP LOCKED`), so replicas never publish the same batch at once, and a relay that
  died mid-batch leaves its rows to be claimed again when the lease runs out; a crash after
  publish but before marking is absorbed by JetStream's duplicate window;
* a row that fails to publish is retried with exponential backoff (capped at a minute) for as
  long as it takes: nothing is abandoned;
* a PubAck saying "duplicate" for a row's *first* claim means someone else published that event
  id (a second relay outside the lease, a copied database, an id collision): it is logged as an
  error and counted (`duplicate_publish_alarms()`), and the row is marked sent.

Order per subject is not preserved across concurrent batches; the contract does not require it
(consumers are idempotent and order-insensitive). The relay wakes on `LISTEN`/`NOTIFY` and on
in-process `wake()`; a slow poll (`poll_seconds`) remains as a safety net for lost notifications,
expired leases and backoff retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from nats.js import JetStreamContext
from pydantic import BaseModel

from iioe.envelope import CloudEvent, event_headers, make_event
from iioe.events import BY_MODEL
from iioe.runtime.db import Conn
from iioe.runtime.logging import get_logger
from iioe.runtime.metrics import ServiceMetrics  # observability hook
from iioe.runtime.tracing import inject as with_trace_context  # observability hook

log = get_logger(__name__)
MAX_RETRY_DELAY_SECONDS = 60
NOTIFY_CHANNEL_PREFIX = "iioe_outbox_"
"""`LISTEN` channel of a schema's outbox: `iioe_outbox_<schema>`."""
_DB_ERRORS = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # "cannot switch to state …": a connection broken mid-operation
)
_STAGE_SQL = (
    "WITH staged AS ("
    " INSERT INTO outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (event_id) DO NOTHING RETURNING 1)"
    f" SELECT pg_notify('{NOTIFY_CHANNEL_PREFIX}' || current_schema(), '') FROM staged"
)
_STAGE_MANY_SQL = (
    "WITH staged AS ("
    " INSERT INTO outbox (event_id, subject, payload, headers)"
    " SELECT m.event_id, m.subject, m.payload, m.headers::jsonb"
    " FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])"
    " WITH ORDINALITY AS m(event_id, subject, payload, headers, n)"
    " ORDER BY m.n"
    " ON CONFLICT (event_id) DO NOTHING RETURNING 1)"
    " SELECT count(*) AS staged, (SELECT count(*) FROM"
    f" (SELECT pg_notify('{NOTIFY_CHANNEL_PREFIX}' || current_schema(), '') FROM (SELECT 1 FROM staged LIMIT 1) AS one)"
    " AS n) AS notified FROM staged"
)
_CLAIM_SQL = (
    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = now() + make_interval(secs => $2)"
    " WHERE seq IN (SELECT seq FROM outbox WHERE published_at IS NULL AND next_attempt_at <= now()"
    " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)"
    " RETURNING seq, event_id, subject, payload, headers, attempts"
)
_MARK_SENT_SQL = (
    "UPDATE outbox SET published_at = now(), last_error = NULL, next_attempt_at = now()"  # the lease is over
    " WHERE seq = ANY($1::bigint[])"
)
_RELEASE_SQL = "UPDATE outbox SET next_attempt_at = now() WHERE seq = ANY($1::bigint[]) AND published_at IS NULL"
_BACKOFF_SQL = (
    "UPDATE outbox SET last_error = $2,"
    " next_attempt_at = now() + make_interval(secs => least(power(2, greatest(attempts - 1, 0)), $3))"
    " WHERE seq = $1"
)

_alarms = {"duplicate_first_publish": 0}


def duplicate_publish_alarms() -> int:
    """First publishes of this process that JetStream acknowledged as duplicates (should stay 0)."""
    return _alarms["duplicate_first_publish"]


async def enqueue(conn: Conn, event: CloudEvent[Any], subject: str) -> None:
    """Stage `event` for publication on `subject`; must run inside the state change's transaction."""
    await enqueue_raw(conn, event.id, subject, event.to_json_bytes(), event_headers(event))


async def enqueue_event(
    conn: Conn,
    data: BaseModel,
    *,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    actor: str | None = None,
) -> CloudEvent[Any]:
    """Wrap `data` in a CloudEvent and stage it; the type and subject come from the event catalogue.

    `actor`: who caused it (an operator or institution action), as the `actor` extension attribute.

    `data`'s model names its v1 type, and its `institution` the subject, so an event can never be
    staged under another type's or institution's subject.
    """
    event, nats_subject = _catalogued(data, source=source, subject=subject, event_id=event_id, time=time, actor=actor)
    await enqueue(conn, event, nats_subject)
    return event


def _catalogued(
    data: BaseModel,
    *,
    source: str,
    subject: str | None,
    event_id: str | None,
    time: datetime | None,
    actor: str | None,
) -> tuple[CloudEvent[Any], str]:
    """`data` as the CloudEvent of its catalogue type, and the NATS subject of its institution."""
    spec = BY_MODEL[type(data)]
    event = make_event(
        data, event_type=spec.type, source=source, subject=subject, event_id=event_id, time=time, actor=actor
    )
    return event, spec.subject(data.institution)  # type: ignore[attr-defined]


async def enqueue_raw(conn: Conn, message_id: str, subject: str, payload: bytes, headers: dict[str, str]) -> None:
    """Stage a message that is not a CloudEvent of ours (e.g. a dead letter that must exist iff we commit).

    One statement: the insert and, if a row was inserted, the `NOTIFY` PostgreSQL delivers at commit."""
    # observability hook: the traceparent travels with the row
    await conn.execute(_STAGE_SQL, message_id, subject, payload, with_trace_context(headers))


@dataclass(frozen=True)
class OutboxMessage:
    """One outbox row before it is written: what `enqueue_raw` stages, as a value, so that a caller can
    write many in one statement (e.g. registration's batches, `unnest` of `outbox_columns`)."""

    message_id: str
    subject: str
    payload: bytes
    headers: dict[str, str]
    """With the `traceparent` of the context it was built in (`outbox_message`)."""


def outbox_message(
    data: BaseModel,
    *,
    source: str,
    subject: str | None = None,
    event_id: str | None = None,
    time: datetime | None = None,
    actor: str | None = None,
) -> OutboxMessage:
    """The row `enqueue_event` would stage for `data`, built now and written later by the caller.

    The current trace context goes into its headers, so build it in the context of the request the
    event belongs to (e.g. `contextvars.Context.run`), not in a task that writes for many requests."""
    event, nats_subject = _catalogued(data, source=source, subject=subject, event_id=event_id, time=time, actor=actor)
    headers = with_trace_context(event_headers(event))  # observability hook: the traceparent travels with the row
    return OutboxMessage(event.id, nats_subject, event.to_json_bytes(), headers)


async def stage_many(conn: Conn, messages: Sequence[OutboxMessage]) -> int:
    """Stage `messages` in one statement, in their order (a message already staged is skipped, as one by one);
    how many were new. One `NOTIFY` for them all, delivered at commit."""
    if not messages:
        return 0
    staged: int = await conn.fetchval(_STAGE_MANY_SQL, *outbox_columns(messages))
    return staged


def outbox_columns(messages: Sequence[OutboxMessage]) -> tuple[list[str], list[str], list[bytes], list[str]]:
    """(ids, subjects, payloads, JSON headers): `messages` as the arrays a multi-row `unnest` insert takes."""
    return (
        [m.message_id for m in messages],
        [m.subject for m in messages],
        [m.payload for m in messages],
        [json.dumps(m.headers) for m in messages],
    )


@dataclass(frozen=True)
class _Row:
    seq: int
    event_id: str
    subject: str
    payload: bytes
    headers: dict[str, str]
    attempts: int
    """Claims so far, this one included: 1 on a row's first publish."""


class OutboxRelay:
    """Publishes outbox rows; several replicas may run, claims with `SKIP LOCKED` keep them apart."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        poll_seconds: float = 5.0,
        batch_size: int = 500,
        max_in_flight: int = 2000,
        publish_timeout: float = 5.0,
        lease_seconds: float | None = None,
        listen: bool = True,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ServiceMetrics("outbox")  # observability hook
        self._pool = pool
        self._js = js
        self._poll = poll_seconds
        self._batch = batch_size
        self._batches_in_flight = max(1, max_in_flight // batch_size)
        self._timeout = publish_timeout
        self._lease = lease_seconds if lease_seconds is not None else 2 * publish_timeout + 5
        self._listen_enabled = listen
        self._wake = asyncio.Event()
        self._retry_due: float | None = None
        self.published = 0
        """Rows published and marked by this relay."""
        self.duplicate_alarms = 0
        """First publishes JetStream acknowledged as duplicates (see the module docstring)."""
        self.listening = False

    def wake(self) -> None:
        """Tell the relay that a transaction with outbox rows just committed."""
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listen") if self._listen_enabled else None
        slots = asyncio.Semaphore(self._batches_in_flight)
        batches: dict[asyncio.Task[int], list[int]] = {}

        def finished(task: asyncio.Task[int]) -> None:
            batches.pop(task, None)
            slots.release()

        try:
            while True:
                await slots.acquire()
                self._wake.clear()
                try:
                    rows = await self._claim()
                except Exception as exc:  # the relay never stops for an error: a dead relay loses nothing
                    slots.release()  # but delays every event until the process restarts
                    if isinstance(exc, _DB_ERRORS):
                        log.warning("outbox claim failed, will retry", error=str(exc))
                    else:
                        log.error("outbox claim failed unexpectedly, will retry", error=repr(exc))
                    await self._wait_for_work(max_wait=1.0)
                    continue
                if not rows:
                    slots.release()
                    await self._wait_for_work()
                    continue
                task = asyncio.create_task(self._publish(rows))
                batches[task] = [r.seq for r in rows]
                task.add_done_callback(finished)
                if len(rows) < self._batch:  # nothing more pending right now
                    await self._wait_for_work()
        finally:
            unfinished = [seq for seqs in batches.values() for seq in seqs]
            for task in list(batches):
                task.cancel()
            if unfinished:
                await self._release(unfinished)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listener

    async def _release(self, seqs: list[int]) -> None:
        """On stop: hand claimed but unacknowledged rows back now, not when their lease runs out.

        Some of them may have reached JetStream already; re-sent, they are dropped as duplicates and,
        being no longer first claims, raise no alarm."""
        with contextlib.suppress(*_DB_ERRORS, TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pool.execute(_RELEASE_SQL, seqs)), 2.0)

    async def publish_pending(self) -> int:
        """Claim and publish one batch of due rows; returns how many were published and marked."""
        rows = await self._claim()
        return await self._publish(rows) if rows else 0

    async def _wait_for_work(self, max_wait: float | None = None) -> None:
        timeout = self._poll if max_wait is None else min(self._poll, max_wait)
        if self._retry_due is not None:
            timeout = max(0.0, min(timeout, self._retry_due - asyncio.get_running_loop().time()))
            self._retry_due = None
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that arrives as the
        # wait completes (a wake() and a stop() together), and the relay then never stops
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _claim(self) -> list[_Row]:
        records = await self._pool.fetch(_CLAIM_SQL, self._batch, self._lease)
        rows = [_Row(r["seq"], r["event_id"], r["subject"], r["payload"], r["headers"], r["attempts"]) for r in records]
        rows.sort(key=lambda r: r.seq)
        return rows

    async def _publish(self, rows: list[_Row]) -> int:
        """Publish `rows` with every PubAck awaited together, then mark the acknowledged ones."""
        acks: list[asyncio.Future[Any]] = []
        for row in rows:
            try:
                # no `wait_stall`: with a timeout nats-py wraps every semaphore wait in a task; the relay's
                # own bound (batches in flight x batch size) stays below nats-py's pending limit anyway
                acks.append(await self._js.publish_async(row.subject, row.payload, headers=row.headers))
            except Exception as exc:  # the connection is down, the buffer full, …: this row is retried
                failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
                failed.set_exception(exc)
                acks.append(failed)
        if acks:
            _, late = await asyncio.wait(acks, timeout=self._timeout)  # one timer for the whole batch
            for ack in late:
                ack.cancel()
        results: list[Any] = [
            ack.exception() or ack.result() if not ack.cancelled() else TimeoutError("no PubAck in time")
            for ack in acks
        ]
        sent: list[int] = []
        failures: list[tuple[int, str, str]] = []
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failures.append((row.seq, row.event_id, repr(result)))
                continue
            sent.append(row.seq)
            if result.duplicate and row.attempts == 1:
                self._alarm(row, result)
        try:
            if sent:
                await self._pool.execute(_MARK_SENT_SQL, sent)
            if failures:
                await self._pool.executemany(
                    _BACKOFF_SQL, [(seq, error[:1000], MAX_RETRY_DELAY_SECONDS) for seq, _, error in failures]
                )
        except _DB_ERRORS as exc:  # the lease brings the rows back; JetStream drops the re-sent ids
            log.warning("outbox could not mark published rows, they will be re-sent", error=str(exc))
            return 0
        if failures:
            log.warning(
                "outbox publishes failed, will retry with backoff",
                count=len(failures),
                event_id=failures[0][1],
                error=failures[0][2],
            )
            due = asyncio.get_running_loop().time() + 1.0
            self._retry_due = due if self._retry_due is None else min(self._retry_due, due)
        self.published += len(sent)
        self.metrics.outbox_published.inc(len(sent))  # observability hook
        self.metrics.outbox_publish_failed.inc(len(failures))  # observability hook
        log.debug("outbox published", count=len(sent), failed=len(failures))
        return len(sent)

    def _alarm(self, row: _Row, ack: Any) -> None:
        self.duplicate_alarms += 1
        _alarms["duplicate_first_publish"] += 1
        log.error(
            "outbox first publish acknowledged as a duplicate: another publisher sent this event id",
            event_id=row.event_id,
            subject=row.subject,
            stream=ack.stream,
            stream_seq=ack.seq,
        )

    async def _listen(self) -> None:
        """Hold one connection that `LISTEN`s on the schema's channel; reconnect when it drops."""
        while True:
            try:
                async with self._pool.acquire() as conn:
                    channel = await conn.fetchval(f"SELECT '{NOTIFY_CHANNEL_PREFIX}' || current_schema()")
                    lost = asyncio.Event()

                    def on_lost(_conn: Any, lost: asyncio.Event = lost) -> None:
                        lost.set()

                    conn.add_termination_listener(on_lost)
                    await conn.add_listener(channel, self._on_notify)
                    self.listening = True
                    self._wake.set()  # rows committed while nobody listened
                    try:
                        while not lost.is_set() and not conn.is_closed():
                            with contextlib.suppress(TimeoutError):
                                async with asyncio.timeout(self._poll):  # not wait_for (see _wait_for_work)
                                    await lost.wait()
                    finally:
                        self.listening = False
                        conn.remove_termination_listener(on_lost)
                        if not conn.is_closed():
                            with contextlib.suppress(*_DB_ERRORS):
                                await conn.remove_listener(channel, self._on_notify)
            except Exception as exc:  # polling carries on meanwhile (every `poll_seconds`)
                log.warning("outbox LISTEN connection lost, polling until it is back", error=repr(exc))
            await asyncio.sleep(1.0)

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()


async def pending_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count
