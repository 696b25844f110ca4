"""Registration rules that need the platform's state or clock; the body's own rules live in its
contract model (`iioe.commands.RegisterEducatorRequest`). Pure: no I/O, no transport."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Container, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from iioe.commands import CommandRejected, RegisterEducatorRequest
from iioe.events import (
    CourseCompleted,
    EducatorContact,
    EducatorErased,
    EducatorRegistered,
    EducatorRoleChanged,
    PortfolioEntryAdded,
    PracticeIntegrationReported,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe.events.common import Language, Role

RecordT = TypeVar("RecordT", bound=BaseModel)

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
    """A registered educator; one per (institution, e-mail, compared case-insensitively).

    An erased educator keeps its id, institution, language, role and date, and nothing personal:
    `full_name` and `email` are None, so the same e-mail registers a *new* educator afterwards."""

    educator_id: str
    institution: str
    full_name: str | None
    email: str | None
    language: Language
    role: Role
    registered_at: datetime
    erased_at: datetime | None = None

    @property
    def email_key(self) -> str | None:
        """The identity of the e-mail: `Sarnai@MUST.edu.mn` and `sarnai@must.edu.mn` are one person."""
        return self.email.lower() if self.email is not None else None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    def events(self) -> tuple[EducatorRegistered, EducatorContact]:
        """No personal data in EducatorRegistered (kept for years); name and e-mail go in EducatorContact."""
        assert self.full_name is not None and self.email is not None, "an erased educator registers nothing"
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


# --- one educator's lifecycle: role changes and erasure (contract v1.1 section 9) ---------------


def educator_in_scope(educator: Educator | None, educator_id: str, institution: str | None) -> Educator:
    """The educator, if the caller's institution may see it (`None`: an operator sees every one).

    An educator of another institution is "not found" as well: a command never tells a partner
    which ids exist elsewhere."""
    if educator is None or (institution is not None and educator.institution != institution):
        raise RegistrationError("educator_not_found", f"no educator with id {educator_id!r}")
    return educator


def change_role(educator: Educator, role: Role, *, now: datetime) -> tuple[Educator, EducatorRoleChanged | None]:
    """The educator with `role`, and the event to emit — None when the role is already `role`."""
    if educator.erased:
        raise RegistrationError("educator_erased", f"educator {educator.educator_id!r} was erased")
    if educator.role == role:
        return educator, None
    changed = EducatorRoleChanged(
        educator_id=educator.educator_id, institution=educator.institution, role=role, changed_at=now
    )
    return replace(educator, role=role), changed


def erase(educator: Educator, *, now: datetime) -> tuple[Educator, EducatorErased | None]:
    """The educator without name and e-mail, and EducatorErased — None when it was erased already."""
    if educator.erased:
        return educator, None
    erased = EducatorErased(educator_id=educator.educator_id, institution=educator.institution, erased_at=now)
    return replace(educator, full_name=None, email=None, erased_at=now), erased


# --- cascade and portfolio records entered over HTTP (contract v1.1 section 9) --------------------


class RecordRejected(CommandRejected):
    """A cascade or portfolio record the platform cannot accept."""


def parse_record(model: type[RecordT], payload: Mapping[str, Any]) -> RecordT:
    """Validate a record with its event model; the first problem becomes `missing_<field>` or
    `invalid_<field>` (e.g. `invalid_mode`, `missing_held_on`)."""
    try:
        return model.model_validate(dict(payload))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "body"
        kind = "missing" if first["type"] == "missing" else "invalid"
        raise RecordRejected(f"{kind}_{field}", f"{field}: {first['msg']}") from None


def new_record_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


def _not_in_future(day: date, field: str, now: datetime) -> None:
    if day > (now + timedelta(days=1)).date():  # a day's grace: the partner may be a time zone ahead
        raise RecordRejected(f"{field}_in_future", f"{field} {day.isoformat()} is in the future")


def active_educator(educator: Educator | None, educator_id: str, code: str = "educator_not_found") -> Educator:
    if educator is None:
        raise RecordRejected(code, f"no educator with id {educator_id!r}")
    if educator.erased:
        raise RecordRejected("educator_erased", f"educator {educator_id!r} was erased")
    return educator


def hold_session(
    session: TrainingSessionHeld, master_teacher: Educator | None, institutions: Container[str], *, now: datetime
) -> TrainingSessionHeld:
    """A session is held by a known master teacher of the session's own institution."""
    if session.institution not in institutions:
        raise RecordRejected("unknown_institution", f"institution {session.institution!r} is not in the catalogue")
    teacher = active_educator(master_teacher, session.master_teacher_id, "unknown_master_teacher")
    if teacher.institution != session.institution:
        raise RecordRejected(
            "unknown_master_teacher", f"no educator {session.master_teacher_id!r} at {session.institution!r}"
        )
    if teacher.role != "master_teacher":
        raise RecordRejected("not_a_master_teacher", f"educator {teacher.educator_id!r} is not a master teacher")
    _not_in_future(session.held_on, "held_on", now)
    return session


def attend(
    session: TrainingSessionHeld | None, session_id: str, trainee: Educator | None, educator_id: str
) -> TraineeAttended:
    """A known educator attended a known session; published for the *trainee's* institution."""
    if session is None:
        raise RecordRejected("session_not_found", f"no training session with id {session_id!r}")
    educator = active_educator(trainee, educator_id)
    return TraineeAttended(session_id=session.session_id, institution=educator.institution, educator_id=educator_id)


def add_portfolio_entry(entry: PortfolioEntryAdded, *, now: datetime) -> PortfolioEntryAdded:
    _not_in_future(entry.added_on, "added_on", now)
    return entry


def report_practice(report: PracticeIntegrationReported, *, now: datetime) -> PracticeIntegrationReported:
    _not_in_future(report.reported_on, "reported_on", now)
    return report


# --- course completions imported from CSV by institution staff (issue #13) -----------------------

COMPLETION_ID_NAMESPACE = uuid.UUID("6f1c7a52-5d0e-4c55-9d55-2f8e0b7c1a13")
"""Namespace of the name-based (UUID v5) ids of imported completions: never change it, or a
re-import would publish every completion again under new ids."""


def parse_completion(institution: str, values: Mapping[str, str]) -> CourseCompleted:
    """A CSV row (`educator_id`, `course_id`, `score`, `completed_at`, `language`?) as CourseCompleted
    of `institution`; the first problem becomes `missing_<field>` / `invalid_<field>`."""
    body: dict[str, Any] = {key: value for key, value in values.items() if value not in ("", None)}
    if "score" in body:
        try:
            score = float(body["score"])
        except ValueError:
            raise RecordRejected("invalid_score", f"score: {body['score']!r} is not a number") from None
        if not math.isfinite(score):
            raise RecordRejected("invalid_score", f"score: {body['score']!r} is not a number")
        body["score"] = score
    return parse_record(CourseCompleted, {**body, "institution": institution})


def completion_event_id(completion: CourseCompleted) -> str:
    """The event id of an imported completion, derived from its natural key (institution, educator,
    course, completion instant, score) alone: importing the same completion again — in another
    file, with `85` for `85.0` or the same instant in another offset — gives the same id, which the
    outbox and JetStream's duplicate window both refuse to publish twice. `language` is not part of
    the key."""
    instant = completion.completed_at.astimezone(UTC).isoformat(timespec="microseconds")
    key = [completion.institution, completion.educator_id, completion.course_id, instant, repr(float(completion.score))]
    return f"cc-{uuid.uuid5(COMPLETION_ID_NAMESPACE, json.dumps(key))}"


def import_completion(completion: CourseCompleted, educator: Educator | None, *, now: datetime) -> CourseCompleted:
    """A completion is imported only for a registered, not erased educator of its own institution,
    and not from the future (beyond `CLOCK_SKEW`)."""
    if educator is None or educator.institution != completion.institution:
        raise RecordRejected(
            "educator_not_found", f"no educator {completion.educator_id!r} at {completion.institution!r}"
        )
    if educator.erased:
        raise RecordRejected("educator_erased", f"educator {completion.educator_id!r} was erased")
    if completion.completed_at > now + CLOCK_SKEW:
        raise RecordRejected(
            "completed_at_in_future", f"completed_at {completion.completed_at.isoformat()} is in the future"
        )
    return completion
