"""Registration rules that need the platform's state or clock; the body's own rules live in its
contract model (`iioe.commands.RegisterEducatorRequest`). Pure: no I/O, no transport."""

from __future__ import annotations

import uuid
from collections.abc import Container
from dataclasses import dataclass
from datetime import datetime, timedelta

from iioe.commands import CommandRejected, RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorRegistered
from iioe.events.common import Language, Role

CLOCK_SKEW = timedelta(minutes=5)
"""A `registered_at` slightly ahead of our clock is accepted: partner clocks drift."""


class RegistrationError(CommandRejected):
    """A well-formed registration the platform cannot accept (unknown institution, future date)."""


@dataclass(frozen=True)
class RegisterEducator:
    """The command: a validated body for the institution named by the subject (or the HTTP body)."""

    institution: str
    request: RegisterEducatorRequest


@dataclass(frozen=True)
class Educator:
    """A registered educator; one per (institution, e-mail, compared case-insensitively)."""

    educator_id: str
    institution: str
    full_name: str
    email: str
    language: Language
    role: Role
    registered_at: datetime

    @property
    def email_key(self) -> str:
        """The identity of the e-mail: `Sarnai@MUST.edu.mn` and `sarnai@must.edu.mn` are one person."""
        return self.email.lower()

    def events(self) -> tuple[EducatorRegistered, EducatorContact]:
        """No personal data in EducatorRegistered (kept for years); name and e-mail go in EducatorContact."""
        registered = EducatorRegistered(
            educator_id=self.educator_id,
            institution=self.institution,
            language=self.language,
            role=self.role,
            registered_at=self.registered_at,
        )
        contact = EducatorContact(
            educator_id=self.educator_id,
            institution=self.institution,
            full_name=self.full_name,
            email=self.email,
            language=self.language,
        )
        return registered, contact


def new_educator_id() -> str:
    return f"edu-{uuid.uuid4()}"


def new_educator(
    command: RegisterEducator, institutions: Container[str], *, now: datetime, educator_id: str
) -> Educator:
    """The educator a command would register, or the reason it cannot."""
    if command.institution not in institutions:
        raise RegistrationError("unknown_institution", f"institution {command.institution!r} is not in the catalogue")
    request = command.request
    registered_at = request.registered_at or now
    if registered_at > now + CLOCK_SKEW:
        raise RegistrationError(
            "registered_at_in_future", f"registered_at {registered_at.isoformat()} is in the future"
        )
    return Educator(
        educator_id=educator_id,
        institution=command.institution,
        full_name=request.full_name,
        email=request.email,
        language=request.language,
        role=request.role,
        registered_at=registered_at,
    )
