"""The transactional outbox and its relay to JetStream.

`enqueue` writes the outgoing event in the caller's transaction. `OutboxRelay` publishes
pending rows with `Nats-Msg-Id` = event id and marks them sent: a crash between commit and
publish loses nothing (the row is still pending), a crash after publish but before marking
is absorbed by JetStream's duplicate window. A row that fails to publish is retried with
exponential backoff (capped at a minute) for as long as it takes: nothing is abandoned.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    spec = BY_MODEL[type(data)]
    event = make_event(
        data, event_type=spec.type, source=source, subject=subject, event_id=event_id, time=time, actor=actor
    )
    await enqueue(conn, event, spec.subject(data.institution))  # type: ignore[attr-defined]
    return event


async def enqueue_raw(conn: Conn, message_id: str, subject: str, payload: bytes, headers: dict[str, str]) -> None:
    """Stage a message that is not a CloudEvent of ours (e.g. a dead letter that must exist iff we commit)."""
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (event_id) DO NOTHING",
        message_id,
        subject,
        payload,
        with_trace_context(headers),  # observability hook: the traceparent travels with the row
    )


class OutboxRelay:
    """Publishes outbox rows; several replicas may run, `SKIP LOCKED` keeps them apart."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        *,
        poll_seconds: float = 0.5,
        batch_size: int = 500,
        publish_timeout: float = 5.0,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.metrics = metrics or ServiceMetrics("outbox")  # observability hook
        self._pool = pool
        self._js = js
        self._poll = poll_seconds
        self._batch = batch_size
        self._timeout = publish_timeout
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Tell the relay that a transaction with outbox rows just committed."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                sent = await self.publish_pending()
            except Exception as exc:  # any failed pass (database or NATS away, a timeout) is retried, never fatal
                log.warning("outbox relay pass failed, will retry", error=repr(exc))
                sent = 0
            if sent == self._batch:
                continue  # more may be waiting
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT seq, event_id, subject, payload, headers FROM outbox"
                " WHERE published_at IS NULL AND next_attempt_at <= now()"
                " ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
                self._batch,
            )
            if not rows:
                return 0
            results = await asyncio.gather(
                *(
                    self._js.publish(r["subject"], bytes(r["payload"]), headers=r["headers"], timeout=self._timeout)
                    for r in rows
                ),
                return_exceptions=True,
            )
            sent = [r["seq"] for r, res in zip(rows, results, strict=True) if not isinstance(res, BaseException)]
            failed = [(r, res) for r, res in zip(rows, results, strict=True) if isinstance(res, BaseException)]
            if sent:
                await conn.execute("UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[])", sent)
            self.metrics.outbox_published.inc(len(sent))  # observability hook
            self.metrics.outbox_publish_failed.inc(len(failed))  # observability hook
            for row, error in failed:
                log.warning(
                    "outbox publish failed",
                    event_id=row["event_id"],
                    subject=row["subject"],
                    error=repr(error),
                )
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2,"
                    " next_attempt_at = now() + make_interval(secs => least(power(2, attempts), $3))"
                    " WHERE seq = $1",
                    row["seq"],
                    repr(error)[:1000],
                    MAX_RETRY_DELAY_SECONDS,
                )
        if sent:
            log.debug("outbox published", count=len(sent))
        return len(sent)


async def pending_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    return count
