"""Durable JetStream pull consumers with explicit acks, bounded retries and dead-lettering.

Why not FastStream's subscriber here: its default ack policy terminates a message on any
exception, and the dead-letter rule of the contract needs the delivery count and the raw
bytes of the message. This runner does exactly three things with a message:

* it cannot be parsed or the handler raises `Unprocessable` → dead letter with a reason, `term`;
* the handler raises anything else → `nak` with a growing delay; after `max_deliver`
  deliveries → dead letter `processing_failed`, `term`;
* the handler returns → `ack`.

So a poison message never blocks the stream, and a transient database error loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, FetchTimeoutError

from iioe.envelope import CloudEvent
from iioe.events import EventSpec
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason
from iioe.runtime.dlq import dead_letter
from iioe.runtime.logging import get_logger
from iioe.runtime.metrics import ServiceMetrics  # observability hook
from iioe.runtime.tracing import continue_trace  # observability hook

log = get_logger(__name__)


class Unprocessable(Exception):
    """Raised by a handler for a message that no retry can fix (dead-lettered at once)."""

    def __init__(self, reason: Reason | str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = str(reason)
        self.detail = detail


@dataclass(frozen=True)
class ReceivedEvent:
    """A parsed event and where it came from."""

    spec: EventSpec
    event: CloudEvent[Any]
    subject: str
    stream_seq: int
    num_delivered: int
    data: bytes = b""
    """The original bytes, e.g. to keep for a later dead letter."""
    stream: str = ""

    @property
    def id(self) -> str:
        return self.event.id


Handler = Callable[[ReceivedEvent], Awaitable[None]]
BatchHandler = Callable[[Sequence[ReceivedEvent]], Awaitable[None]]


@dataclass
class ConsumerSpec:
    """What a service consumes and how."""

    durable: str
    stream: str
    filter_subjects: list[str]
    handler: Handler
    batch_handler: BatchHandler | None = None
    """Optional fast path: a whole fetched batch in one call; on error each message is retried alone."""
    batch_size: int = 100
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    retry_backoff_seconds: Sequence[float] = field(default=(1.0, 5.0, 15.0, 30.0))
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL


class EventConsumer:
    """Runs one durable pull consumer until cancelled."""

    def __init__(self, js: JetStreamContext, spec: ConsumerSpec, metrics: ServiceMetrics | None = None) -> None:
        self._js = js
        self.spec = spec
        self.metrics = metrics or ServiceMetrics(spec.durable)  # observability hook
        self.metrics.declare_consumer(spec.durable)
        self._sub: JetStreamContext.PullSubscription | None = None
        self.processed = 0
        self.dead_lettered = 0

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.spec.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=self.spec.deliver_policy,
            ack_wait=self.spec.ack_wait_seconds,
            max_deliver=-1,  # enforced here, so an exhausted message is dead-lettered, not dropped
            max_ack_pending=max(1000, self.spec.batch_size * 4),
            filter_subjects=self.spec.filter_subjects if len(self.spec.filter_subjects) > 1 else None,
            filter_subject=self.spec.filter_subjects[0] if len(self.spec.filter_subjects) == 1 else None,
        )

    async def start(self) -> None:
        """Create the durable consumer, or update it when its filters changed (e.g. after an upgrade)."""
        try:
            await self._js.add_consumer(self.spec.stream, self._config())
        except APIError as exc:  # an incompatible change (e.g. deliver policy): keep the existing one
            log.warning("durable consumer kept as it is", durable=self.spec.durable, error=str(exc))
        self._sub = await self._js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        log.info("consumer bound", durable=self.spec.durable, stream=self.spec.stream)

    async def run(self) -> None:
        if self._sub is None:
            await self.start()
        assert self._sub is not None
        while True:
            try:
                msgs = await self._sub.fetch(self.spec.batch_size, timeout=1.0)
            except (FetchTimeoutError, NatsTimeoutError, TimeoutError):
                continue
            except Exception as exc:  # connection trouble: back off, the client reconnects
                log.warning("fetch failed", durable=self.spec.durable, error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            try:
                await self.process_batch(msgs)
            except Exception as exc:  # e.g. NATS gone while dead-lettering: unacked → redelivered later
                log.error("batch processing failed", durable=self.spec.durable, error=repr(exc))
                await asyncio.sleep(1.0)

    async def process_batch(self, msgs: Sequence[Msg]) -> None:
        received: list[tuple[Msg, ReceivedEvent]] = []
        for msg in msgs:
            parsed = await self._parse_or_dead_letter(msg)
            if parsed is not None:
                received.append((msg, parsed))
        if not received:
            return
        if self.spec.batch_handler is not None and len(received) > 1:
            try:
                await self.spec.batch_handler([r for _, r in received])
            except Exception as exc:
                log.info("batch failed, retrying one by one", durable=self.spec.durable, error=repr(exc))
            else:
                await asyncio.gather(*(msg.ack() for msg, _ in received))
                self.processed += len(received)
                for _, handled in received:  # observability hook
                    self.metrics.handled(self.spec.durable, handled.event.type, handled.event.time)
                return
        for msg, event in received:
            with continue_trace(msg.headers, f"consume {self.spec.durable}") as trace_fields:  # observability hook
                with structlog.contextvars.bound_contextvars(**trace_fields):
                    await self._handle_one(msg, event)

    async def _parse_or_dead_letter(self, msg: Msg) -> ReceivedEvent | None:
        meta = msg.metadata
        try:
            spec, event = parse_event(msg.data, msg.subject)
        except InvalidEvent as exc:
            await self._dead_letter(msg, exc.reason, exc.detail)
            return None
        if meta.num_delivered > self.spec.max_deliver:
            # earlier deliveries never finished (e.g. the process died mid-way): do not loop forever
            await self._dead_letter(
                msg, Reason.PROCESSING_FAILED, f"delivered {meta.num_delivered} times without completing"
            )
            return None
        return ReceivedEvent(
            spec, event, msg.subject, meta.sequence.stream, meta.num_delivered, data=msg.data, stream=meta.stream
        )

    async def _handle_one(self, msg: Msg, event: ReceivedEvent) -> None:
        with structlog.contextvars.bound_contextvars(
            event_id=event.id, event_type=event.event.type, subject=event.subject, durable=self.spec.durable
        ):
            try:
                await self.spec.handler(event)
            except Unprocessable as exc:
                await self._dead_letter(msg, exc.reason, exc.detail)
                return
            except Exception as exc:
                if event.num_delivered >= self.spec.max_deliver:
                    await self._dead_letter(msg, Reason.PROCESSING_FAILED, repr(exc))
                    return
                backoff = self.spec.retry_backoff_seconds
                delay = backoff[min(event.num_delivered - 1, len(backoff) - 1)] if backoff else 1.0
                log.warning("handler failed, will retry", attempt=event.num_delivered, delay=delay, error=repr(exc))
                self.metrics.failed(self.spec.durable)  # observability hook
                await msg.nak(delay=delay)
                return
            await msg.ack()
            self.processed += 1
            self.metrics.handled(self.spec.durable, event.event.type, event.event.time)  # observability hook
            log.debug("event handled")

    async def _dead_letter(self, msg: Msg, reason: str, detail: str) -> None:
        meta = msg.metadata
        await dead_letter(
            self._js,
            data=msg.data,
            original_subject=msg.subject,
            consumer=self.spec.durable,
            reason=str(reason),
            detail=detail,
            original_stream=meta.stream,
            original_seq=meta.sequence.stream,
            deliveries=meta.num_delivered,
        )
        await msg.term()
        self.dead_lettered += 1
        self.metrics.dead_lettered(self.spec.durable, str(reason))  # observability hook
