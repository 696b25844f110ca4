"""Event entry points: a received NATS event → its data and id → a use case; refusals → dead letters.

One durable pull consumer for registrations and completions, so a single replica sees them in stream order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from iioe.events import COURSE_COMPLETED, EDUCATOR_REGISTERED, CourseCompleted, EducatorRegistered
from iioe.runtime.consumer import BatchHandler, ConsumerSpec, Handler, ReceivedEvent, Unprocessable
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import EVENTS_STREAM, event_filter
from services.certification.domain import CertificationError
from services.certification.portfolio_usecases import PORTFOLIO_EVENTS, Portfolios
from services.certification.usecases import Certification, MessageOrigin
from services.certification.usecases_events import EventsIn

CONSUMER_NAME = "progress"
"""One durable for both types: a single replica then sees a registration before later completions."""


def event_handler(
    certification: EventsIn,
    durable: str,
    portfolios: Portfolios | None = None,
    ready: Callable[[], Awaitable[object]] | None = None,
) -> Handler:
    """The consumer's handler; a refused event (a `CertificationError`) is dead-lettered with its code.

    `ready` is awaited before each event: consumers start with the runtime, and must not act on an empty
    database before it is rebuilt from the log (`restore.py`)."""

    async def on_event(received: ReceivedEvent) -> None:
        if ready is not None:
            await ready()
        try:
            if received.spec is EDUCATOR_REGISTERED:
                data = cast(EducatorRegistered, received.event.data)
                await certification.on_educator_registered(received.id, data, source=received.event.source)
            elif received.spec is COURSE_COMPLETED:
                completed = cast(CourseCompleted, received.event.data)
                origin = origin_of(received, durable)
                await certification.on_course_completed(received.id, completed, origin, source=received.event.source)
            elif portfolios is not None and received.spec in PORTFOLIO_EVENTS:
                await portfolios.on_event(received.source, received.id, received.event.data)
        except CertificationError as exc:
            raise Unprocessable(exc.code, exc.message) from None

    return on_event


def batch_handler(
    certification: Certification,
    durable: str,
    portfolios: Portfolios | None = None,
    ready: Callable[[], Awaitable[object]] | None = None,
) -> BatchHandler:
    """The consumer's fast path: each run of registrations and completions in a fetched batch is applied in
    one transaction (`Certification.batch`), in stream order; portfolio events between runs keep their own.

    Raising anything hands the whole batch back to the consumer, which retries it one event at a time
    (`event_handler`): a refused event is dead-lettered alone, and the events of a run already committed are
    skipped by the inbox."""

    async def on_batch(events: Sequence[ReceivedEvent]) -> None:
        if ready is not None:
            await ready()
        for run in _runs(events):
            if run[0].spec in _PROGRESS_EVENTS:
                educators = [cast(EducatorRegistered | CourseCompleted, e.event.data).educator_id for e in run]
                async with certification.batch(educators, [(e.source, e.id) for e in run]) as in_batch:
                    handle = event_handler(in_batch, durable)
                    for received in run:
                        await handle(received)
            else:
                handle = event_handler(certification, durable, portfolios)
                for received in run:
                    await handle(received)

    return on_batch


_PROGRESS_EVENTS = (EDUCATOR_REGISTERED, COURSE_COMPLETED)


def _runs(events: Sequence[ReceivedEvent]) -> list[list[ReceivedEvent]]:
    """Consecutive events split where they change between progress events and the rest, order kept."""
    runs: list[list[ReceivedEvent]] = []
    for received in events:
        progress = received.spec in _PROGRESS_EVENTS
        if runs and (runs[-1][0].spec in _PROGRESS_EVENTS) == progress:
            runs[-1].append(received)
        else:
            runs.append([received])
    return runs


def origin_of(received: ReceivedEvent, durable: str) -> MessageOrigin:
    """Keep the original bytes in case a parked completion must be dead-lettered later."""
    return MessageOrigin(
        subject=received.subject,
        raw=received.data or received.event.to_json_bytes(),
        durable=durable,
        stream=received.stream or EVENTS_STREAM,
        stream_seq=received.stream_seq,
    )


def build_consumers(
    runtime: ServiceRuntime,
    certification: Certification,
    batch_size: int,
    portfolios: Portfolios | None = None,
    ready: Callable[[], Awaitable[object]] | None = None,
    workers: int = 1,
) -> list[ConsumerSpec]:
    filters = [event_filter(EDUCATOR_REGISTERED.name), event_filter(COURSE_COMPLETED.name)]
    if portfolios is not None:  # the Faculty AI Portfolio read model (portfolio_usecases.py)
        filters += [event_filter(spec.name) for spec in PORTFOLIO_EVENTS]
    durable = runtime.durable(CONSUMER_NAME)
    handler = event_handler(certification, durable, portfolios, ready)
    on_batch = batch_handler(certification, durable, portfolios, ready)
    return [
        runtime.add_consumer(
            CONSUMER_NAME,
            EVENTS_STREAM,
            filters,
            handler,
            batch_size=batch_size,
            batch_handler=on_batch,
            workers=workers,
        )
    ]
