"""Background loops around the sending use cases, run as the runtime's supervised background tasks.

They are separate loops on purpose: a partner endpoint that hangs until its timeout occupies one
webhook worker, never the e-mail worker. Every loop claims rows with SKIP LOCKED, so replicas of
the service share the queues, and a crashed process's claims come back when their lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from nats.js import JetStreamContext

from iioe.runtime.dlq import dead_letter
from iioe.runtime.logging import get_logger
from iioe.subjects import EVENTS_STREAM
from services.notifications.domain import scrub_addresses
from services.notifications.ports import ClaimedDelivery

log = get_logger(__name__)
WEBHOOK_DLQ_REASON = "webhook_failed"

Step = Callable[[], Awaitable[int]]
"""One round of work; returns how much it did (0 → idle until woken or the poll interval passes)."""


class PollLoop:
    """Runs a step over and over; idles when there was nothing to do, unless a commit woke it.

    Any number of `run()` coroutines may share one loop (the webhook workers do): one wake reaches all.
    An error in a step (the database gone for a moment) is logged and retried; the leases keep claimed
    rows safe meanwhile.
    """

    def __init__(self, name: str, step: Step, poll_seconds: float) -> None:
        self.name = name
        self._step = step
        self._poll = poll_seconds
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def run(self) -> None:
        while True:
            try:
                did = await self._step()
            except Exception as exc:
                log.error("worker iteration failed", worker=self.name, error=scrub_addresses(repr(exc)))
                did = 0
            if not did:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
                # arrives as the event is set, and the loop would then never stop
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._event.wait()
                self._event.clear()


class NatsDeadLetters:
    """The `DeadLetters` port on IIOE_DLQ; the JetStream context is looked up when needed (after start)."""

    def __init__(self, js: Callable[[], JetStreamContext], consumer: str) -> None:
        self._js = js
        self._consumer = consumer

    async def webhook_failed(self, d: ClaimedDelivery, error: str) -> None:
        try:
            await dead_letter(
                self._js(),
                data=d.body,
                original_subject=d.event_subject,
                consumer=self._consumer,
                reason=WEBHOOK_DLQ_REASON,
                detail=f"delivery {d.delivery_id} to webhook {d.webhook_id} failed {d.attempts} times: {error}",
                original_stream=EVENTS_STREAM,
                deliveries=d.attempts,
                msg_id=f"webhook-dead:{d.delivery_id}",
            )
        except Exception as exc:  # NATS away: the delivery is still recorded `dead` and listable
            log.error("could not publish webhook dead letter", delivery_id=d.delivery_id, error=repr(exc))
