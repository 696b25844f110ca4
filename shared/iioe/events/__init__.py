"""The v1 event catalogue: every type, its data model, subject name and stream.

Each `EventSpec` holds what the contract fixes for one type; the CloudEvents `type`
(`org.iioe.<context>.<name>.v<major>`) is derived from it, never stored beside it.
`PARTNER_EVENT_TYPES` are the types a partner system may publish for its own institution
(contract section 8); `PLATFORM_EVENT_TYPES` are all the others, published only by the
platform's services. Access control (NATS permissions) is generated from these two.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass

from pydantic import BaseModel

from iioe.events.cascade import TraineeAttended, TrainingSessionHeld
from iioe.events.certification import (
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CreditRecognized,
)
from iioe.events.learning import CourseCompleted, CourseEvaluated
from iioe.events.portfolio import PortfolioEntryAdded, PracticeIntegrationReported
from iioe.events.recognition import CreditTransferDecided, CreditTransferRequested
from iioe.events.registration import EducatorContact, EducatorErased, EducatorRegistered, EducatorRoleChanged
from iioe.subjects import contact_subject, event_subject

_TOKEN_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class EventSpec:
    """What the contract fixes for one event type.

    `name` is the subject name (`iioe.events.<institution>.<name>.v<major>`); the type is
    `org.iioe.<context>.<type_name or name>.v<major>` — `type_name` is given only where the
    contract spells the type differently from the subject (`portfolio_entry_added` is
    `org.iioe.portfolio.entry_added.v1`).
    """

    context: str
    name: str
    major: int
    model: builtins.type[BaseModel]
    contact: bool = False
    """True for personal-data events that live on IIOE_CONTACTS, not IIOE_EVENTS."""
    partner: bool = False
    """True when a partner system may publish this type for its own institution (contract section 8)."""
    type_name: str | None = None

    def __post_init__(self) -> None:
        for token in (self.context, self.name, self.type_name or self.name):
            if not _TOKEN_RE.fullmatch(token):
                raise ValueError(f"{token!r} is not a snake_case type token")
        if self.major < 1:
            raise ValueError("major version starts at 1")
        if self.contact and self.partner:
            raise ValueError("partners never publish contact events")

    @property
    def type(self) -> str:
        """The CloudEvents `type`: `org.iioe.<context>.<name>.v<major>`."""
        return f"org.iioe.{self.context}.{self.type_name or self.name}.v{self.major}"

    def subject(self, institution: str) -> str:
        """The subject an event of this type about `institution` is published on."""
        if self.contact:
            return contact_subject(institution, self.major)
        return event_subject(institution, self.name, self.major)

    def subject_filter(self, institution: str = "*") -> str:
        """A NATS filter for this type: every institution by default (`iioe.events.*.<name>.v1`)."""
        if institution == "*":
            root = "iioe.contacts" if self.contact else "iioe.events"
            return f"{root}.*.{self.name}.v{self.major}"
        return self.subject(institution)


EDUCATOR_REGISTERED = EventSpec("registration", "educator_registered", 1, EducatorRegistered)
EDUCATOR_CONTACT = EventSpec("registration", "educator_contact", 1, EducatorContact, contact=True)
EDUCATOR_ROLE_CHANGED = EventSpec("registration", "educator_role_changed", 1, EducatorRoleChanged)
EDUCATOR_ERASED = EventSpec("registration", "educator_erased", 1, EducatorErased)
COURSE_COMPLETED = EventSpec("learning", "course_completed", 1, CourseCompleted, partner=True)
COURSE_EVALUATED = EventSpec("learning", "course_evaluated", 1, CourseEvaluated, partner=True)
TRAINING_SESSION_HELD = EventSpec("cascade", "training_session_held", 1, TrainingSessionHeld, partner=True)
TRAINEE_ATTENDED = EventSpec("cascade", "trainee_attended", 1, TraineeAttended, partner=True)
PORTFOLIO_ENTRY_ADDED = EventSpec(
    "portfolio", "portfolio_entry_added", 1, PortfolioEntryAdded, partner=True, type_name="entry_added"
)
PRACTICE_INTEGRATION_REPORTED = EventSpec(
    "portfolio", "practice_integration_reported", 1, PracticeIntegrationReported, partner=True
)
CERTIFICATE_ISSUED = EventSpec("certification", "certificate_issued", 1, CertificateIssued)
CERTIFICATE_REVOKED = EventSpec("certification", "certificate_revoked", 1, CertificateRevoked)
CERTIFICATE_SUSPENDED = EventSpec("certification", "certificate_suspended", 1, CertificateSuspended)
CERTIFICATE_REINSTATED = EventSpec("certification", "certificate_reinstated", 1, CertificateReinstated)
CREDIT_RECOGNIZED = EventSpec("certification", "credit_recognized", 1, CreditRecognized)
CREDIT_TRANSFER_REQUESTED = EventSpec("recognition", "credit_transfer_requested", 1, CreditTransferRequested)
CREDIT_TRANSFER_DECIDED = EventSpec("recognition", "credit_transfer_decided", 1, CreditTransferDecided)

ALL_EVENTS: tuple[EventSpec, ...] = (
    EDUCATOR_REGISTERED,
    EDUCATOR_CONTACT,
    COURSE_COMPLETED,
    CERTIFICATE_ISSUED,
    CERTIFICATE_REVOKED,
    CREDIT_RECOGNIZED,
    # contract v1.1
    EDUCATOR_ROLE_CHANGED,
    TRAINING_SESSION_HELD,
    TRAINEE_ATTENDED,
    PORTFOLIO_ENTRY_ADDED,
    PRACTICE_INTEGRATION_REPORTED,
    COURSE_EVALUATED,
    CREDIT_TRANSFER_REQUESTED,
    CREDIT_TRANSFER_DECIDED,
    CERTIFICATE_SUSPENDED,
    CERTIFICATE_REINSTATED,
    EDUCATOR_ERASED,
)
PARTNER_EVENT_TYPES: tuple[EventSpec, ...] = tuple(spec for spec in ALL_EVENTS if spec.partner)
"""The types a partner of an institution may publish on `iioe.events.<its institution>.…`."""
PLATFORM_EVENT_TYPES: tuple[EventSpec, ...] = tuple(spec for spec in ALL_EVENTS if not spec.partner)
"""Every other type (contacts included): published by the platform's services only."""
BY_TYPE: dict[str, EventSpec] = {spec.type: spec for spec in ALL_EVENTS}
BY_MODEL: dict[builtins.type[BaseModel], EventSpec] = {spec.model: spec for spec in ALL_EVENTS}

__all__ = [
    "ALL_EVENTS",
    "BY_MODEL",
    "BY_TYPE",
    "CERTIFICATE_ISSUED",
    "CERTIFICATE_REINSTATED",
    "CERTIFICATE_REVOKED",
    "CERTIFICATE_SUSPENDED",
    "COURSE_COMPLETED",
    "COURSE_EVALUATED",
    "CREDIT_RECOGNIZED",
    "CREDIT_TRANSFER_DECIDED",
    "CREDIT_TRANSFER_REQUESTED",
    "EDUCATOR_CONTACT",
    "EDUCATOR_ERASED",
    "EDUCATOR_REGISTERED",
    "EDUCATOR_ROLE_CHANGED",
    "PARTNER_EVENT_TYPES",
    "PLATFORM_EVENT_TYPES",
    "PORTFOLIO_ENTRY_ADDED",
    "PRACTICE_INTEGRATION_REPORTED",
    "TRAINEE_ATTENDED",
    "TRAINING_SESSION_HELD",
    "CertificateIssued",
    "CertificateReinstated",
    "CertificateRevoked",
    "CertificateSuspended",
    "CourseCompleted",
    "CourseEvaluated",
    "CreditRecognized",
    "CreditTransferDecided",
    "CreditTransferRequested",
    "EducatorContact",
    "EducatorErased",
    "EducatorRegistered",
    "EducatorRoleChanged",
    "EventSpec",
    "PortfolioEntryAdded",
    "PracticeIntegrationReported",
    "TraineeAttended",
    "TrainingSessionHeld",
]
