"""Events of the registration context."""

from __future__ import annotations

from pydantic import Field

from iioe.events.common import EventData, Identifier, InstitutionCode, Language, Role, Timestamp


# .. event_type: org.iioe.registration.educator_registered.v1
# .. subject: iioe.events.<institution>.educator_registered.v1 (stream IIOE_EVENTS)
# .. producer: registration service
# .. consumers: certification, analytics, notifications
# .. personal_data: none — names and e-mails travel in EducatorContact only
class EducatorRegistered(EventData):
    """An educator joined the programme at an institution."""

    educator_id: Identifier
    institution: InstitutionCode
    language: Language
    role: Role
    registered_at: Timestamp


# .. event_type: org.iioe.registration.educator_contact.v1
# .. subject: iioe.contacts.<institution>.educator_contact.v1 (stream IIOE_CONTACTS, 30-day retention)
# .. producer: registration service
# .. consumers: notifications
# .. personal_data: full_name, email
class EducatorContact(EventData):
    """How to reach an educator; kept off the long-lived event log."""

    educator_id: Identifier
    institution: InstitutionCode
    full_name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    language: Language


# .. event_type: org.iioe.registration.educator_role_changed.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.educator_role_changed.v1 (stream IIOE_EVENTS)
# .. producer: registration service (command iioe.commands.<institution>.change_role)
# .. consumers: analytics (master teachers, cascade reach)
# .. personal_data: none
class EducatorRoleChanged(EventData):
    """An educator's role changed, e.g. to master teacher of the cascade model."""

    educator_id: Identifier
    institution: InstitutionCode
    role: Role
    changed_at: Timestamp


# .. event_type: org.iioe.registration.educator_erased.v1   (contract v1.1)
# .. subject: iioe.events.<institution>.educator_erased.v1 (stream IIOE_EVENTS)
# .. producer: registration service (erasure of a person's data)
# .. consumers: notifications (forget contact details), analytics, certification
# .. personal_data: none — it names the educator by id only
class EducatorErased(EventData):
    """An educator's personal data was erased; consumers forget whatever they hold about this id."""

    educator_id: Identifier
    institution: InstitutionCode
    erased_at: Timestamp
