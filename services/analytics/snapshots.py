"""Snapshots for dashboards: the summary on `iioe.analytics.summary`, each institution on
`iioe.analytics.institutions.<code>` (stream IIOE_ANALYTICS keeps the latest per subject).

Publication is coalesced: events only mark the projections dirty; a loop publishes at most once
per `interval`, and only what changed since its last publication. A burst of a thousand
events therefore yields a handful of snapshots. Snapshots are state, not events: no `Nats-Msg-Id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from iioe.runtime.logging import get_logger
from iioe.subjects import analytics_institution_subject, analytics_summary_subject
from services.analytics.models import Summary

log = get_logger(__name__)
SNAPSHOT_HEADERS = {"Content-Type": "application/json"}


def _without_time(summary: Summary) -> str:
    return summary.model_dump_json(exclude={"generated_at"})


async def publish_summary(
    js: JetStreamContext, summary: Summary, previous: dict[str, str] | None = None, *, force: bool = False
) -> dict[str, str]:
    """Publish the summary and every institution whose object differs from `previous`.

    Returns the new fingerprints (subject → JSON) to pass as `previous` next time.
    """
    previous = previous or {}
    current: dict[str, str] = {}
    summary_subject = analytics_summary_subject()
    current[summary_subject] = _without_time(summary)
    published = 0
    if force or previous.get(summary_subject) != current[summary_subject]:
        await js.publish(summary_subject, summary.model_dump_json().encode(), headers=SNAPSHOT_HEADERS)
        published += 1
    for inst in summary.by_institution:
        subject = analytics_institution_subject(inst.institution)
        current[subject] = body = inst.model_dump_json()
        if force or previous.get(subject) != body:
            await js.publish(subject, body.encode(), headers=SNAPSHOT_HEADERS)
            published += 1
    if published:
        log.info("snapshots published", subjects=published, educators=summary.educators_registered)
    return current


class SnapshotPublisher:
    """Coalesces 'something changed' signals into at most one publication per interval."""

    def __init__(
        self, js: Callable[[], JetStreamContext], read_summary: Callable[[], Awaitable[Summary]], interval: float
    ) -> None:
        self._js = js
        self._read_summary = read_summary
        self._interval = interval
        self._dirty = asyncio.Event()
        self._published: dict[str, str] = {}
        self.publications = 0

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def run(self) -> None:
        """Publish once at start (the stream may hold an older state), then on every change."""
        loop = asyncio.get_running_loop()
        last = -self._interval
        self._dirty.set()
        while True:
            await self._dirty.wait()
            wait = last + self._interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)  # the burst keeps arriving meanwhile: one snapshot covers it
            self._dirty.clear()
            last = loop.time()
            try:
                summary = await self._read_summary()
                self._published = await publish_summary(self._js(), summary, self._published)
                self.publications += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or NATS hiccup: try again at the next interval
                log.warning("snapshot failed, will retry", error=repr(exc))
                self._dirty.set()


class SummaryFeed:
    """Fans snapshots from `iioe.analytics.summary` out to SSE clients (whichever replica published)."""

    def __init__(self, max_queued: int = 16) -> None:
        self._queues: set[asyncio.Queue[str]] = set()
        self._max_queued = max_queued
        self._sub: Subscription | None = None

    async def start(self, nc: NATS) -> None:
        self._sub = await nc.subscribe(analytics_summary_subject(), cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def _on_msg(self, msg: Msg) -> None:
        data = msg.data.decode()
        try:
            json.loads(data)
        except ValueError:
            return
        for queue in list(self._queues):
            if queue.full():  # a slow client only needs the newest state
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(data)

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(self._max_queued)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._queues.discard(queue)
