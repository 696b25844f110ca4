"""Durable JetStream pull consumers with explicit acks, bounded retries and dead-lettering.

Why not FastStream's subscriber here: its default ack policy terminates a message on any
exception, and the dead-letter rule of the contract needs the delivery count and the raw
bytes of the message. This runner does exactly three things with a message:

* it cannot be parsed or the handler raises `Unprocessable` → dead letter with a reason, `term`;
* the handler raises an *infrastructure* error (database or NATS unreachable, see
  `is_infrastructure_error`) → `nak` with a short capped delay that is **not** held against the
  message, and the consumer pauses fetching until its dependencies answer again (`probe`,
  capped exponential backoff) — a ten-minute outage dead-letters nothing;
* the handler raises anything else (a *logic* failure) → `nak` with a growing delay; after
  `max_deliver` logic failures → dead letter `processing_failed`, `term`;
* the handler returns → `ack`.

So a poison message never blocks the stream, and an outage of the world loses nothing and
spends no message's retry budget.

Retry accounting: JetStream counts every delivery (`num_delivered`), whatever its cause. This
runner remembers, per stream sequence and in memory, how many deliveries ended in an
infrastructure nak; only `num_delivered - infra_naks` counts against `max_deliver`. Because the
consumer pauses on the first infrastructure failure instead of fetching more, an outage costs a
message at most one or two uncounted deliveries — and even a restart, which forgets the memory,
can only push a message over the budget through deliveries that really did not complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, FetchTimeoutError, ServiceUnavailableError

from iioe.envelope import CloudEvent
from iioe.events import EventSpec
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason
from iioe.runtime.dlq import dead_letter
from iioe.runtime.logging import get_logger
from iioe.runtime.metrics import ServiceMetrics  # observability hook
from iioe.runtime.tracing import continue_trace  # observability hook

log = get_logger(__name__)
Probe = Callable[[], Awaitable[None]]
"""Raises while a dependency (the database) does not answer; returns once it does."""

_INFRA_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is a subclass)
    TimeoutError,  # connect / command timeouts (asyncio.TimeoutError is TimeoutError on 3.11)
    asyncpg.InterfaceError,  # pool closed / closing, connection released or closed under us
    asyncpg.exceptions.InternalClientError,  # "cannot switch to state": a connection broken mid-operation
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,  # class 08: connection failures
    asyncpg.CannotConnectNowError,  # the server is starting up or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.exceptions.AdminShutdownError,  # 57P01: the server is being stopped
    asyncpg.exceptions.CrashShutdownError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.ConnectionDrainingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    ServiceUnavailableError,  # JetStream 503: no responders (no quorum, server restarting)
)


def is_infrastructure_error(exc: BaseException) -> bool:
    """True when `exc` says "the world is down" (database or NATS unreachable), not "this message is bad".

    Follows `__cause__` / `__context__`, so a domain error raised *from* a connection error counts too.
    `Unprocessable` is never infrastructural.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Unprocessable):
            return False
        if isinstance(current, _INFRA_ERRORS):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


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

    @property
    def source(self) -> str:
        """CloudEvents `source`: with `id`, the event's identity (the inbox key)."""
        return self.event.source


_MAX_TRACKED = 100_000
"""Per-message counters kept at most (oldest forgotten first): memory stays bounded."""


def _bounded_increment(counts: dict[int, int], seq: int) -> int:
    value = counts.pop(seq, 0) + 1
    counts[seq] = value
    while len(counts) > _MAX_TRACKED:
        del counts[next(iter(counts))]
    return value


TOP_UP_SECONDS = 0.02
"""How long a fetch that already holds a message waits for the rest of a batch (replies arriving later
stay in the subscription's queue and start the next batch)."""


def _pending_after(msg: Msg) -> int:
    """Messages the consumer still holds after `msg` (0 when unknown, e.g. a status message)."""
    try:
        return int(msg.metadata.num_pending)
    except Exception:
        return 0


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
    workers: int = 1
    """Fetch-and-handle loops on the durable in this process. A handler that mostly waits on the database
    (certification) gets through more with two: one works while the other waits. Only for handlers that are
    safe with replicas (per-key locks, inbox), since that is what concurrent loops are."""
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    retry_backoff_seconds: Sequence[float] = field(default=(1.0, 5.0, 15.0, 30.0))
    deliver_policy: DeliverPolicy = DeliverPolicy.ALL
    outage_backoff_initial_seconds: float = 0.5
    """First pause after an infrastructure failure; doubles per failed probe ..."""
    outage_backoff_max_seconds: float = 15.0
    """... up to this cap (also the cap of the uncounted nak delay)."""


class EventConsumer:
    """Runs one durable pull consumer until cancelled."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        *,
        probe: Probe | None = None,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self._js = js
        self.spec = spec
        self._probe = probe
        self.metrics = metrics or ServiceMetrics(spec.durable)  # observability hook
        self.metrics.declare_consumer(spec.durable)
        self._sub: JetStreamContext.PullSubscription | None = None
        self.processed = 0
        self.dead_lettered = 0
        self.infra_failures = 0
        """Handler or fetch failures blamed on the world (never on a message)."""
        self.outages = 0
        """Times this consumer paused for its dependencies."""
        self.paused = False
        self._infra_naks: dict[int, int] = {}
        """stream seq → deliveries that ended in an infrastructure nak (not held against the message)."""
        self._logic_failures: dict[int, int] = {}
        """stream seq → deliveries that ended in a handler logic error (the retry budget)."""
        self._world_down = False
        self._backlog = False
        """The last fetched message said more were pending: ask for a full batch at once."""
        self._outage_delay: float | None = None
        """Current pause between probes while an outage lasts; None when the world answers."""

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
            if self._world_down:
                await self.wait_for_dependencies()
            try:
                msgs = await self._fetch()
            except (FetchTimeoutError, NatsTimeoutError, TimeoutError):
                if not self._nats_connected():
                    self._world_down = True
                elif self._outage_delay is not None and self._probe is not None and await self._dependencies_answer():
                    self._world_answers()  # nothing to fetch, but NATS and the database answer
                continue
            except Exception as exc:  # connection trouble: pause until NATS answers, the client reconnects
                log.warning("fetch failed", durable=self.spec.durable, error=repr(exc))
                self._world_down = True
                continue
            try:
                await self.process_batch(msgs)
            except Exception as exc:  # e.g. NATS gone while dead-lettering: unacked → redelivered later
                log.error("batch processing failed", durable=self.spec.durable, error=repr(exc))
                self._world_down = True

    async def _fetch(self) -> list[Msg]:
        """The next batch: as soon as one message is there, with whatever else is already waiting.

        nats-py's `fetch(n)` on a drained consumer leaves a pull request open and returns only when `n`
        messages have come or the timeout has passed — at a trickle, every message would wait up to the
        whole timeout. So: with a backlog (the last message said more are pending) a full batch is asked
        for, which returns at once; otherwise `fetch(1)` wakes on the next message, and a short `no_wait`
        top-up adds what arrived with it.
        """
        assert self._sub is not None
        batch = self.spec.batch_size
        if self._backlog or batch == 1:
            msgs = await self._sub.fetch(batch, timeout=1.0)
        else:
            msgs = await self._sub.fetch(1, timeout=1.0)
            with contextlib.suppress(FetchTimeoutError, NatsTimeoutError, TimeoutError):
                msgs += await self._sub.fetch(batch - 1, timeout=TOP_UP_SECONDS)
        self._backlog = _pending_after(msgs[-1]) > 0
        return msgs

    def _nats_connected(self) -> bool:
        nc = getattr(self._js, "_nc", None)
        return nc is None or bool(nc.is_connected)

    async def _dependencies_answer(self) -> bool:
        if not self._nats_connected():
            return False
        if self._probe is None:
            return True  # half-open: the next fetched message is the probe
        try:
            await asyncio.wait_for(self._probe(), timeout=max(1.0, self.spec.outage_backoff_max_seconds))
        except Exception as exc:
            log.debug("dependency probe failed", durable=self.spec.durable, error=repr(exc))
            return False
        return True

    async def wait_for_dependencies(self) -> None:
        """Pause (no fetching) until NATS is connected and the probe answers, with capped backoff.

        The delay keeps growing across pauses until a fetch or a handler succeeds again, so a
        dependency that answers the probe but still fails real work is not hammered either.
        """
        self.paused = True
        started = asyncio.get_running_loop().time()
        if self._outage_delay is None:
            self.outages += 1
            self._outage_delay = self.spec.outage_backoff_initial_seconds
            log.warning("dependencies unavailable, consumer paused", durable=self.spec.durable)
        try:
            while True:
                await asyncio.sleep(self._outage_delay)
                self._outage_delay = min(self._outage_delay * 2, self.spec.outage_backoff_max_seconds)
                if await self._dependencies_answer():
                    break
        finally:
            self.paused = False
        self._world_down = False
        log.debug(
            "dependencies answer, consumer resumes",
            durable=self.spec.durable,
            paused_seconds=round(asyncio.get_running_loop().time() - started, 3),
        )

    def _world_answers(self) -> None:
        """A fetch or a handler succeeded: the outage (if any) is over."""
        if self._outage_delay is not None:
            log.info("dependencies answer again, consumer resumed", durable=self.spec.durable, outage=self.outages)
            self._outage_delay = None

    async def process_batch(self, msgs: Sequence[Msg]) -> None:
        async with self._heartbeat(msgs):
            await self._process_batch(msgs)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, msgs: Sequence[Msg]) -> AsyncIterator[None]:
        """While a batch is being handled, tell JetStream every `ack_wait / 3` that its still-unanswered
        messages are in progress, so a handler that outlives `ack_wait` is not redelivered meanwhile."""
        interval = self.spec.ack_wait_seconds / 3

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                for msg in msgs:
                    if not msg._ackd:
                        with contextlib.suppress(Exception):
                            await msg.in_progress()

        task = asyncio.create_task(beat(), name=f"{self.spec.durable}-heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _process_batch(self, msgs: Sequence[Msg]) -> None:
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
                if is_infrastructure_error(exc):
                    self.infra_failures += 1
                    self._world_down = True
                    log.warning(
                        "dependency failed during a batch, not counted", durable=self.spec.durable, error=repr(exc)
                    )
                    for msg, event in received:
                        await self._nak_infra(msg, event.stream_seq)
                    return
                log.info("batch failed, retrying one by one", durable=self.spec.durable, error=repr(exc))
            else:
                for msg, _ in received:  # no task per ack: they queue for nats-py's flusher and leave in one write
                    await msg.ack()
                self._world_answers()
                self.processed += len(received)
                for _, handled in received:  # observability hook
                    self.metrics.handled(self.spec.durable, handled.event.type, handled.event.time)
                return
        for msg, event in received:
            if self._world_down:
                # the world failed on an earlier message of this batch: hand the rest back, uncounted
                await self._nak_infra(msg, event.stream_seq)
                continue
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
        seq = meta.sequence.stream
        counted = meta.num_delivered - self._infra_naks.get(seq, 0)
        if counted > self.spec.max_deliver:
            # earlier deliveries never finished (e.g. the process died mid-way): do not loop forever
            await self._dead_letter(
                msg,
                Reason.PROCESSING_FAILED,
                f"delivered {meta.num_delivered} times without completing "
                f"({self._infra_naks.get(seq, 0)} of them during outages)",
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
                if is_infrastructure_error(exc):
                    self.infra_failures += 1
                    self._world_down = True
                    log.warning("dependency failed, not counted against the event", error=repr(exc))
                    await self._nak_infra(msg, event.stream_seq)
                    return
                failures = _bounded_increment(self._logic_failures, event.stream_seq)
                counted = event.num_delivered - self._infra_naks.get(event.stream_seq, 0)
                attempt = max(failures, counted)
                if attempt >= self.spec.max_deliver:
                    self._forget(event.stream_seq)
                    await self._dead_letter(msg, Reason.PROCESSING_FAILED, repr(exc))
                    return
                backoff = self.spec.retry_backoff_seconds
                delay = backoff[min(attempt - 1, len(backoff) - 1)] if backoff else 1.0
                log.warning("handler failed, will retry", attempt=attempt, delay=delay, error=repr(exc))
                self.metrics.failed(self.spec.durable)  # observability hook
                await msg.nak(delay=delay)
                return
            await msg.ack()
            self._forget(event.stream_seq)
            self._world_answers()
            self.processed += 1
            self.metrics.handled(self.spec.durable, event.event.type, event.event.time)  # observability hook
            log.debug("event handled")

    async def _nak_infra(self, msg: Msg, seq: int) -> None:
        _bounded_increment(self._infra_naks, seq)
        with contextlib.suppress(Exception):  # NATS down too: the message comes back after ack_wait
            await msg.nak(delay=min(self.spec.outage_backoff_initial_seconds, self.spec.outage_backoff_max_seconds))

    def _forget(self, seq: int) -> None:
        self._infra_naks.pop(seq, None)
        self._logic_failures.pop(seq, None)

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
        self._forget(meta.sequence.stream)
        self.dead_lettered += 1
        self.metrics.dead_lettered(self.spec.durable, str(reason))  # observability hook
