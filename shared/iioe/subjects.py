"""Stream names and the subject rules of contract v1 (section 1, 3, 4, 6).

One place builds every subject so that no service can drift from the contract.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

EVENTS_STREAM = "IIOE_EVENTS"
CONTACTS_STREAM = "IIOE_CONTACTS"
DLQ_STREAM = "IIOE_DLQ"
ANALYTICS_STREAM = "IIOE_ANALYTICS"

EVENTS_SUBJECTS = "iioe.events.>"
CONTACTS_SUBJECTS = "iioe.contacts.>"
DLQ_SUBJECTS = "iioe.dlq.>"
ANALYTICS_SUBJECTS = "iioe.analytics.>"

MAX_EVENT_BYTES = 64 * 1024
"""Largest accepted event (contract section 1)."""

INSTITUTION_CODE_RE = re.compile(r"^[a-z0-9-]{2,32}$")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class InvalidSubjectPart(ValueError):
    """A value that would produce a subject outside the contract."""


def check_institution(code: str) -> str:
    if not INSTITUTION_CODE_RE.fullmatch(code):
        raise InvalidSubjectPart(f"institution code {code!r} must match [a-z0-9-]{{2,32}}")
    return code


def event_subject(institution: str, name: str, major: int = 1) -> str:
    """`iioe.events.<institution>.<name>.v<major>` — the one subject rule for domain events."""
    check_institution(institution)
    if not _NAME_RE.fullmatch(name):
        raise InvalidSubjectPart(f"event name {name!r} must be snake_case")
    if major < 1:
        raise InvalidSubjectPart("major version starts at 1")
    return f"iioe.events.{institution}.{name}.v{major}"


def contact_subject(institution: str, major: int = 1) -> str:
    """Contact details travel outside the event log: `iioe.contacts.<institution>.educator_contact.v1`."""
    check_institution(institution)
    return f"iioe.contacts.{institution}.educator_contact.v{major}"


def command_subject(institution: str, command: str) -> str:
    """`iioe.commands.<institution>.<command>` (request–reply)."""
    check_institution(institution)
    return f"iioe.commands.{institution}.{command}"


def command_filter(command: str) -> str:
    """What a command's responder subscribes to: `iioe.commands.*.<command>`, every institution."""
    return f"iioe.commands.*.{command}"


def command_institution(subject: str) -> str | None:
    """The `<institution>` token of `iioe.commands.<institution>.<command>` (unchecked: the catalogue
    decides whether it is known), or None if `subject` is not a command subject."""
    parts = subject.split(".")
    return parts[2] if len(parts) == 4 and parts[:2] == ["iioe", "commands"] and parts[2] else None


def event_filter(name: str, major: int = 1) -> str:
    """A consumer filter for one event name across all institutions."""
    return f"iioe.events.*.{name}.v{major}"


def dlq_subject(consumer: str, reason: str) -> str:
    """`iioe.dlq.<consumer>.<reason>` — filterable by consumer and by reason code."""
    for part in (consumer, reason):
        if not _TOKEN_RE.fullmatch(part):
            raise InvalidSubjectPart(f"dead-letter subject token {part!r} is not a NATS token")
    return f"iioe.dlq.{consumer}.{reason}"


def analytics_summary_subject() -> str:
    return "iioe.analytics.summary"


def analytics_institution_subject(institution: str) -> str:
    check_institution(institution)
    return f"iioe.analytics.institutions.{institution}"


@dataclass(frozen=True)
class EventSubject:
    """A parsed event subject."""

    institution: str
    name: str
    major: int


_EVENT_SUBJECT_RE = re.compile(r"^iioe\.events\.([a-z0-9-]{2,32})\.([a-z][a-z0-9_]*)\.v([1-9][0-9]*)$")


_CONTACT_SUBJECT_RE = re.compile(r"^iioe\.contacts\.([a-z0-9-]{2,32})\.([a-z][a-z0-9_]*)\.v([1-9][0-9]*)$")


def parse_event_subject(subject: str) -> EventSubject | None:
    """The parts of an event subject, or None if it does not follow the rule."""
    match = _EVENT_SUBJECT_RE.fullmatch(subject)
    if match is None:
        return None
    return EventSubject(match.group(1), match.group(2), int(match.group(3)))


def parse_contact_subject(subject: str) -> EventSubject | None:
    """The parts of a contact subject (`iioe.contacts.<institution>.<name>.v<major>`), or None."""
    match = _CONTACT_SUBJECT_RE.fullmatch(subject)
    if match is None:
        return None
    return EventSubject(match.group(1), match.group(2), int(match.group(3)))
