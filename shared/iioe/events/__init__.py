"""The v1 event catalogue: every type, its data model, subject name and stream."""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from pydantic import BaseModel

from iioe.events.certification import CertificateIssued, CertificateRevoked, CreditRecognized
from iioe.events.learning import CourseCompleted
from iioe.events.registration import EducatorContact, EducatorRegistered
from iioe.subjects import contact_subject, event_subject


@dataclass(frozen=True)
class EventSpec:
    """What the contract fixes for one event type."""

    type: str
    name: str
    major: int
    model: builtins.type[BaseModel]
    contact: bool = False
    """True for personal-data events that live on IIOE_CONTACTS, not IIOE_EVENTS."""

    def subject(self, institution: str) -> str:
        if self.contact:
            return contact_subject(institution, self.major)
        return event_subject(institution, self.name, self.major)


EDUCATOR_REGISTERED = EventSpec(
    "org.iioe.registration.educator_registered.v1", "educator_registered", 1, EducatorRegistered
)
EDUCATOR_CONTACT = EventSpec(
    "org.iioe.registration.educator_contact.v1", "educator_contact", 1, EducatorContact, contact=True
)
COURSE_COMPLETED = EventSpec("org.iioe.learning.course_completed.v1", "course_completed", 1, CourseCompleted)
CERTIFICATE_ISSUED = EventSpec(
    "org.iioe.certification.certificate_issued.v1", "certificate_issued", 1, CertificateIssued
)
CERTIFICATE_REVOKED = EventSpec(
    "org.iioe.certification.certificate_revoked.v1", "certificate_revoked", 1, CertificateRevoked
)
CREDIT_RECOGNIZED = EventSpec("org.iioe.certification.credit_recognized.v1", "credit_recognized", 1, CreditRecognized)

ALL_EVENTS: tuple[EventSpec, ...] = (
    EDUCATOR_REGISTERED,
    EDUCATOR_CONTACT,
    COURSE_COMPLETED,
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    CREDIT_RECOGNIZED,
)
BY_TYPE: dict[str, EventSpec] = {spec.type: spec for spec in ALL_EVENTS}
BY_MODEL: dict[builtins.type[BaseModel], EventSpec] = {spec.model: spec for spec in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "BY_MODEL",
    "BY_TYPE",
    "CERTIFICATE_ISSUED",
    "CERTIFICATE_REVOKED",
    "COURSE_COMPLETED",
    "CREDIT_RECOGNIZED",
    "EDUCATOR_CONTACT",
    "EDUCATOR_REGISTERED",
    "CertificateIssued",
    "CertificateRevoked",
    "CourseCompleted",
    "CreditRecognized",
    "EducatorContact",
    "EducatorRegistered",
    "EventSpec",
]
