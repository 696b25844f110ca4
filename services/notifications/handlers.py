"""NATS entry points: a received event becomes a plain event or command for a use case.

Nothing else happens here; data that no retry can fix is dead-lettered at once (`Unprocessable`).
"""

from __future__ import annotations

from collections.abc import Sequence

from iioe.events import (
    BY_TYPE,
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CourseCompleted,
    CreditTransferDecided,
    EducatorContact,
    EducatorErased,
    EducatorRegistered,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe.reasons import Reason
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from services.notifications.batches import BatchUseCases
from services.notifications.domain import MESSAGE_FOR_TYPE, Contact, Session
from services.notifications.usecases import Attended, ContactReceived, EventToNotify, NotificationUseCases

NOTIFYING = (
    EducatorRegistered,
    CertificateIssued,
    CertificateRevoked,
    CertificateSuspended,
    CertificateReinstated,
    CreditTransferDecided,
)


class NotificationHandlers:
    def __init__(self, usecases: NotificationUseCases, batches: BatchUseCases | None = None) -> None:
        self._usecases = usecases
        self._batches = batches

    async def on_events(self, batch: Sequence[ReceivedEvent]) -> None:
        """The consumer's fast path (`batch_handler`): each run of notifying events in one transaction
        (`BatchUseCases.record_events`), every other event on its own, in stream order — an erasure
        between two events of a run still comes after the first and before the second."""
        for run in _runs(batch):
            if self._batches is not None and _notifying(run[0]) and len(run) > 1:
                await self._batches.record_events([to_event(r) for r in run])
            else:
                for received in run:
                    await self.on_event(received)

    async def on_contacts(self, batch: Sequence[ReceivedEvent]) -> None:
        """The consumer's fast path for contacts: the batch in one transaction."""
        if self._batches is None:
            for received in batch:
                await self.on_contact(received)
            return
        await self._batches.apply_contacts([to_contact(r) for r in batch])

    async def on_event(self, received: ReceivedEvent) -> None:
        """One e-mail (+ matching webhooks) per notifying event; attendance, sessions and progress feed
        the trainees' mails and digests; an erasure forgets the person."""
        data = received.event.data
        if isinstance(data, EducatorErased):
            await self._usecases.erase_educator(data.educator_id, data.erased_at)
        elif isinstance(data, TrainingSessionHeld):
            await self._usecases.record_session(received.event.source, received.id, to_session(data))
        elif isinstance(data, TraineeAttended):
            await self._usecases.record_attendance(
                Attended(received.event.source, received.id, data.session_id, data.educator_id, data.institution)
            )
        elif isinstance(data, CourseCompleted):
            await self._usecases.record_completion(data.educator_id, data.course_id)
        elif received.event.type in MESSAGE_FOR_TYPE:
            await self._usecases.record_event(to_event(received))
        # any other type on the filtered subjects: nothing to tell anyone

    async def on_contact(self, received: ReceivedEvent) -> None:
        """EducatorContact → remember how to reach the educator."""
        await self._usecases.apply_contact(to_contact(received))


def _notifying(received: ReceivedEvent) -> bool:
    return received.event.type in MESSAGE_FOR_TYPE and isinstance(received.event.data, NOTIFYING)


def _runs(batch: Sequence[ReceivedEvent]) -> list[list[ReceivedEvent]]:
    """Consecutive events split where they change between notifying events and the rest, order kept."""
    runs: list[list[ReceivedEvent]] = []
    for received in batch:
        if runs and _notifying(runs[-1][0]) == _notifying(received):
            runs[-1].append(received)
        else:
            runs.append([received])
    return runs


def to_session(data: TrainingSessionHeld) -> Session:
    return Session(
        session_id=data.session_id,
        institution=data.institution,
        master_teacher_id=data.master_teacher_id,
        region=data.region,
        mode=data.mode,
        held_on=data.held_on,
        language=data.language,
    )


def to_event(received: ReceivedEvent) -> EventToNotify:
    data = received.event.data
    spec = BY_TYPE.get(received.event.type)
    if spec is None or not isinstance(data, spec.model) or not isinstance(data, NOTIFYING):
        raise Unprocessable(Reason.INVALID_DATA, f"{received.event.type} carries {type(data).__name__}")
    return EventToNotify(
        source=received.event.source,
        event_id=received.id,
        event_type=received.event.type,
        subject=received.subject,
        body=received.event.to_json_bytes(),
        data=data,
    )


def to_contact(received: ReceivedEvent) -> ContactReceived:
    data = received.event.data
    if not isinstance(data, EducatorContact):
        raise Unprocessable(Reason.INVALID_DATA, f"{received.event.type} is not an educator contact")
    contact = Contact(
        educator_id=data.educator_id,
        institution=data.institution,
        full_name=data.full_name,
        email=str(data.email),
        language=data.language,
    )
    return ContactReceived(contact=contact, event_time=received.event.time)
