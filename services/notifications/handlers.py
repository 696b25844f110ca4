"""NATS entry points: a received event becomes a plain event or command for a use case.

Nothing else happens here; data that no retry can fix is dead-lettered at once (`Unprocessable`).
"""

from __future__ import annotations

from iioe.events import BY_TYPE, CertificateIssued, CertificateRevoked, EducatorContact, EducatorRegistered
from iioe.reasons import Reason
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from services.notifications.domain import MESSAGE_FOR_TYPE, Contact
from services.notifications.usecases import ContactReceived, EventToNotify, NotificationUseCases

NOTIFYING = (EducatorRegistered, CertificateIssued, CertificateRevoked)


class NotificationHandlers:
    def __init__(self, usecases: NotificationUseCases) -> None:
        self._usecases = usecases

    async def on_event(self, received: ReceivedEvent) -> None:
        """EducatorRegistered / CertificateIssued / CertificateRevoked → one e-mail + matching webhooks."""
        if received.event.type not in MESSAGE_FOR_TYPE:
            return  # another event type on the filtered subjects: nothing to tell anyone
        await self._usecases.record_event(to_event(received))

    async def on_contact(self, received: ReceivedEvent) -> None:
        """EducatorContact → remember how to reach the educator."""
        await self._usecases.apply_contact(to_contact(received))


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
