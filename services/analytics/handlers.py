"""Entry points of the live consumer of `iioe.events.>`: received messages → plain events → `Projector`.

The runtime's consumer calls `on_batch` with a whole fetched batch (one transaction) and falls back
to `on_event` one message at a time when a batch fails; `Unprocessable` dead-letters one message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from iioe.events import EventSpec
from iioe.reasons import Reason
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from iioe.runtime.logging import get_logger
from services.analytics.domain import ProjectionEvent
from services.analytics.usecases import Projector

log = get_logger(__name__)


def projection_event(
    spec: EventSpec, event_id: str, data: object, time: datetime | None = None, source: str = ""
) -> ProjectionEvent:
    """The plain event the projector takes; raises `Unprocessable` for data that must not be projected.

    A personal-data type (contacts) on the event stream breaks the contract: analytics never keeps it.
    """
    if spec.contact:
        raise Unprocessable(Reason.SUBJECT_MISMATCH, f"{spec.type} carries personal data and belongs on iioe.contacts")
    if not isinstance(data, spec.model):
        raise Unprocessable(Reason.INVALID_DATA, f"data of {spec.type} is not a {spec.model.__name__}")
    return ProjectionEvent(event_id, data, time, source)


def from_received(received: ReceivedEvent) -> ProjectionEvent:
    event = received.event
    return projection_event(received.spec, received.id, event.data, event.time, event.source)


class ProjectionHandlers:
    """Handlers for the runtime's consumer: a batch fast path and a per-message fallback."""

    def __init__(self, projector: Projector) -> None:
        self._projector = projector

    async def on_event(self, received: ReceivedEvent) -> None:
        """Fallback path (a batch failed, or a batch of one): the runtime retries/dead-letters this one."""
        if not await self._projector.project(from_received(received)):
            log.debug("duplicate event skipped")

    async def on_batch(self, batch: Sequence[ReceivedEvent]) -> None:
        """Fast path; one unprocessable message fails the batch, so each is then handled alone."""
        outcome = await self._projector.project_batch([from_received(r) for r in batch])
        log.info("batch projected", received=len(batch), applied=outcome.applied, duplicates=outcome.duplicates)
