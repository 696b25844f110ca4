"""NATS entry points: a received event becomes a plain event or command for a use case.

Nothing else happens here; data that no retry can fix is dead-lettered at once (`Unprocessable`).
"""

from __future__ import annotations

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
    def __init__(self, usecases: NotificationUseCases) -> None:
        self._usecases = usecases

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
