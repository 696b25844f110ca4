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

INSTITUTION_CODE_PATTERN = r"[a-z0-9-]{2,32}"
"""The institution code (contract section 3): the one definition; everything else derives from it."""
INSTITUTION_CODE_RE = re.compile(rf"^{INSTITUTION_CODE_PATTERN}$")
INSTITUTION_PLACEHOLDER = "{institution}"
"""The institution token of a subject *template* (AsyncAPI addresses, documentation)."""

CONTACT_NAME = "educator_contact"
REGISTER_EDUCATOR = "register_educator"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class InvalidSubjectPart(ValueError):
    """A value that would produce a subject outside the contract."""


def check_institution(code: str) -> str:
    if not INSTITUTION_CODE_RE.fullmatch(code):
        raise InvalidSubjectPart(f"institution code {code!r} must match {INSTITUTION_CODE_PATTERN}")
    return code


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise InvalidSubjectPart(f"{what} name {name!r} must be snake_case")
    return name


def _check_major(major: int) -> int:
    if major < 1:
        raise InvalidSubjectPart("major version starts at 1")
    return major


# The raw shapes, written once; the public functions below check their parts first.
def _event(institution: str, name: str, major: int) -> str:
    return f"iioe.events.{institution}.{name}.v{major}"


def _contact(institution: str, major: int) -> str:
    return f"iioe.contacts.{institution}.{CONTACT_NAME}.v{major}"


def _command(institution: str, command: str) -> str:
    return f"iioe.commands.{institution}.{command}"


def event_subject(institution: str, name: str, major: int = 1) -> str:
    """`iioe.events.<institution>.<name>.v<major>` — the one subject rule for domain events."""
    return _event(check_institution(institution), _check_name(name, "event"), _check_major(major))


def contact_subject(institution: str, major: int = 1) -> str:
    """Contact details travel outside the event log: `iioe.contacts.<institution>.educator_contact.v1`."""
    return _contact(check_institution(institution), _check_major(major))


def command_subject(institution: str, command: str) -> str:
    """`iioe.commands.<institution>.<command>` (request–reply)."""
    return _command(check_institution(institution), _check_name(command, "command"))


def command_institution(subject: str) -> str | None:
    """The `<institution>` token of `iioe.commands.<institution>.<command>` (unchecked: the catalogue
    decides whether it is known), or None if `subject` is not a command subject."""
    parts = subject.split(".")
    return parts[2] if len(parts) == 4 and parts[:2] == ["iioe", "commands"] and parts[2] else None


def institution_commands(institution: str) -> str:
    """Every command of one institution: `iioe.commands.<institution>.>` (a partner's permission)."""
    return f"iioe.commands.{check_institution(institution)}.>"


def event_filter(name: str, major: int = 1) -> str:
    """A consumer filter for one event name across all institutions."""
    return _event("*", _check_name(name, "event"), _check_major(major))


def contact_filter(major: int = 1) -> str:
    """A consumer filter for every institution's contacts: `iioe.contacts.*.educator_contact.v1`."""
    return _contact("*", _check_major(major))


def command_filter(command: str) -> str:
    """A subscription to one command across all institutions: `iioe.commands.*.<command>`."""
    return _command("*", _check_name(command, "command"))


def event_address(name: str, major: int = 1) -> str:
    """The AsyncAPI address of an event: `iioe.events.{institution}.<name>.v<major>`."""
    return _event(INSTITUTION_PLACEHOLDER, _check_name(name, "event"), _check_major(major))


def contact_address(major: int = 1) -> str:
    """The AsyncAPI address of the contact message: `iioe.contacts.{institution}.educator_contact.v<major>`."""
    return _contact(INSTITUTION_PLACEHOLDER, _check_major(major))


def command_address(command: str) -> str:
    """The AsyncAPI address of a command: `iioe.commands.{institution}.<command>`."""
    return _command(INSTITUTION_PLACEHOLDER, _check_name(command, "command"))


def dlq_subject(consumer: str, reason: str) -> str:
    """`iioe.dlq.<consumer>.<reason>` — filterable by consumer and by reason code."""
    for part in (consumer, reason):
        if not _TOKEN_RE.fullmatch(part):
            raise InvalidSubjectPart(f"dead-letter subject token {part!r} is not a NATS token")
    return f"iioe.dlq.{consumer}.{reason}"


def dlq_match(consumer: str | None, reason: str | None) -> str:
    """Dead letters of one consumer and/or reason (`*` where unset): `iioe.dlq.<consumer|*>.<reason|*>`."""
    parts = [p if p else "*" for p in (consumer, reason)]
    for part in parts:
        if part != "*" and not _TOKEN_RE.fullmatch(part):
            raise InvalidSubjectPart(f"dead-letter subject token {part!r} is not a NATS token")
    return f"iioe.dlq.{parts[0]}.{parts[1]}"


def dlq_filter(consumer: str) -> str:
    """Every dead letter of one consumer: `iioe.dlq.<consumer>.>`."""
    if not _TOKEN_RE.fullmatch(consumer):
        raise InvalidSubjectPart(f"dead-letter subject token {consumer!r} is not a NATS token")
    return f"iioe.dlq.{consumer}.>"


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


_EVENT_SUBJECT_RE = re.compile(rf"^iioe\.events\.({INSTITUTION_CODE_PATTERN})\.([a-z][a-z0-9_]*)\.v([1-9][0-9]*)$")


_CONTACT_SUBJECT_RE = re.compile(rf"^iioe\.contacts\.({INSTITUTION_CODE_PATTERN})\.([a-z][a-z0-9_]*)\.v([1-9][0-9]*)$")


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


@dataclass(frozen=True)
class CommandSubject:
    """A parsed command subject."""

    institution: str
    command: str


_COMMAND_SUBJECT_RE = re.compile(rf"^iioe\.commands\.({INSTITUTION_CODE_PATTERN})\.([a-z][a-z0-9_]*)$")


def parse_command_subject(subject: str) -> CommandSubject | None:
    """The parts of `iioe.commands.<institution>.<command>`, or None if it does not follow the rule."""
    match = _COMMAND_SUBJECT_RE.fullmatch(subject)
    if match is None:
        return None
    return CommandSubject(match.group(1), match.group(2))
