"""Event consumers: one durable pull consumer for registrations and completions, in stream order."""

from __future__ import annotations

from iioe.events import COURSE_COMPLETED, EDUCATOR_REGISTERED
from iioe.runtime.consumer import ConsumerSpec, ReceivedEvent
from iioe.runtime.service import ServiceRuntime
from iioe.subjects import EVENTS_STREAM, event_filter
from services.certification.usecases import Certification

CONSUMER_NAME = "progress"
"""One durable for both types: a single replica then sees a registration before later completions."""


def build_consumers(runtime: ServiceRuntime, certification: Certification, batch_size: int) -> list[ConsumerSpec]:
    async def on_event(received: ReceivedEvent) -> None:
        if received.spec is EDUCATOR_REGISTERED:
            await certification.on_educator_registered(received)
        elif received.spec is COURSE_COMPLETED:
            await certification.on_course_completed(received)

    filters = [event_filter(EDUCATOR_REGISTERED.name), event_filter(COURSE_COMPLETED.name)]
    return [runtime.add_consumer(CONSUMER_NAME, EVENTS_STREAM, filters, on_event, batch_size=batch_size)]
