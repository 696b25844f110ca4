"""The projection rules, part 1: which facts an event contributes (pure: no I/O).

Every rule is order-independent, so a live consumer that sees events out of order and a rebuild
that replays them in stream order end with the same numbers:

* an educator's registration is the earliest EducatorRegistered for the id (ties: lowest
  institution, then role, then language);
* a course counts as completed at its *first* completion (any score), in that completion's
  language (the same instant: the smaller language code, no language first); the programme is
  completed when every programme course is, at the latest of those first completions;
* a certificate is active when it has been issued and not revoked (a revocation may arrive first);
* CourseCompleted events are counted one by one (each is an attempt), by institution, course, month;
* months are `YYYY-MM` in the rules' time zone, taken from the event's own timestamp;
* an educator's current role is that of the latest EducatorRoleChanged not older than the
  registration (ties: the greater role code), else the registration's role;
* a certificate is suspended when its latest suspension is later than its latest reinstatement
  (a reinstatement at the same instant wins); a suspended certificate is not active;
* a practice report counts by the educator's latest `reported_on` (the same day: `integrates_ai`
  true wins); a course evaluation counts once per (educator, course): the latest by CloudEvent
  `time` wins (ties: the greater event id), so a re-evaluation replaces the earlier one;
* a training session keeps the smallest (held_on, master teacher, institution, region, mode,
  language) published for its id; an attendance is (session, educator), counted once;
* a credit transfer request keeps its earliest `requested_at`; its decision is the latest
  `decided_at` (ties: the greater decision, then receiving institution, then credits); credits
  count only for an acceptance;
* EducatorErased changes nothing: the projections hold ids and counts, never personal data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from iioe.events import (
    CertificateIssued,
    CertificateReinstated,
    CertificateRevoked,
    CertificateSuspended,
    CourseCompleted,
    CourseEvaluated,
    CreditRecognized,
    CreditTransferDecided,
    CreditTransferRequested,
    EducatorRegistered,
    EducatorRoleChanged,
    PracticeIntegrationReported,
    TraineeAttended,
    TrainingSessionHeld,
)

NO_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""The CloudEvent time assumed when an event comes without one (only in hand-made tests)."""


@dataclass(frozen=True)
class ProjectionRules:
    """What the projections depend on besides the events (changing any of it needs a rebuild)."""

    programme_id: str
    programme_courses: tuple[str, ...]
    month_timezone: str

    def month_of(self, at: datetime) -> str:
        """'YYYY-MM' of `at` in the reporting time zone (the national centre's months)."""
        local = at.astimezone(ZoneInfo(self.month_timezone))
        return f"{local.year:04d}-{local.month:02d}"

    @property
    def course_set(self) -> frozenset[str]:
        return frozenset(self.programme_courses)


@dataclass(frozen=True)
class ProjectionEvent:
    """An event as the projections see it: its CloudEvent `(source, id)` (the inbox key) and its `data`.

    `data` is one of the contract's data models; types the projections do not use are kept
    (they are claimed in the inbox like any other) and contribute nothing.
    """

    id: str
    data: BaseModel
    time: datetime | None = None
    """The CloudEvent `time` (only course evaluations, which carry no date of their own, use it)."""
    source: str = ""
    """The CloudEvent `source`: two producers may use the same id (CloudEvents uniqueness is per source)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.source, self.id)


class Registration(NamedTuple):
    educator_id: str
    institution: str
    role: str
    registered_at: datetime
    language: str


class Completion(NamedTuple):
    educator_id: str
    institution: str
    course_id: str
    completed_at: datetime
    language: str | None = None
    """The course language, when the partner sends it (optional in the contract)."""


class Issuance(NamedTuple):
    certificate_id: str
    educator_id: str
    institution: str
    programme_id: str
    credits: float
    issued_at: datetime


class Revocation(NamedTuple):
    certificate_id: str
    educator_id: str
    institution: str
    revoked_at: datetime


class Recognition(NamedTuple):
    recognition_id: str
    certificate_id: str
    educator_id: str
    institution: str
    receiving_institution: str
    credits: float
    recognized_at: datetime


class RoleChange(NamedTuple):
    educator_id: str
    institution: str
    role: str
    changed_at: datetime


class StatusChange(NamedTuple):
    """A suspension (`suspended` True) or a reinstatement of a certificate."""

    certificate_id: str
    educator_id: str
    institution: str
    suspended: bool
    at: datetime


class Session(NamedTuple):
    session_id: str
    institution: str
    master_teacher_id: str
    region: str
    mode: str
    held_on: date
    language: str


class Attendance(NamedTuple):
    session_id: str
    educator_id: str
    institution: str


class PracticeReport(NamedTuple):
    educator_id: str
    institution: str
    integrates_ai: bool
    reported_on: date


class Evaluation(NamedTuple):
    educator_id: str
    institution: str
    course_id: str
    language: str
    content_rating: int
    usefulness_rating: int
    evaluated_at: datetime
    event_id: str

    @property
    def rated_highly(self) -> bool:
        return self.content_rating >= 4 and self.usefulness_rating >= 4


class TransferRequest(NamedTuple):
    request_id: str
    educator_id: str
    institution: str
    certificate_id: str
    receiving_institution: str
    requested_at: datetime


class TransferDecision(NamedTuple):
    request_id: str
    educator_id: str
    institution: str
    receiving_institution: str
    decision: str
    credits: float | None
    decided_at: datetime


@dataclass
class ProjectionDeltas:
    """The facts of one batch of new events, by kind (the store sends each list as `unnest` arrays)."""

    registrations: list[Registration] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    issued: list[Issuance] = field(default_factory=list)
    revoked: list[Revocation] = field(default_factory=list)
    recognitions: list[Recognition] = field(default_factory=list)
    role_changes: list[RoleChange] = field(default_factory=list)
    status_changes: list[StatusChange] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    attendances: list[Attendance] = field(default_factory=list)
    practice_reports: list[PracticeReport] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    transfer_requests: list[TransferRequest] = field(default_factory=list)
    transfer_decisions: list[TransferDecision] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.registrations)
            + len(self.completions)
            + len(self.issued)
            + len(self.revoked)
            + len(self.recognitions)
            + len(self.role_changes)
            + len(self.status_changes)
            + len(self.sessions)
            + len(self.attendances)
            + len(self.practice_reports)
            + len(self.evaluations)
            + len(self.transfer_requests)
            + len(self.transfer_decisions)
        )

    def educators_seen(self) -> list[tuple[str, str]]:
        """(educator, institution) of every event about an educator who may not be registered yet:
        such an educator gets a row under the lowest institution seen until the registration arrives."""
        seen = [(c.educator_id, c.institution) for c in self.completions]
        seen += [(i.educator_id, i.institution) for i in self.issued]
        seen += [(r.educator_id, r.institution) for r in self.revoked]
        seen += [(r.educator_id, r.institution) for r in self.role_changes]
        seen += [(s.educator_id, s.institution) for s in self.status_changes]
        seen += [(s.master_teacher_id, s.institution) for s in self.sessions]
        seen += [(a.educator_id, a.institution) for a in self.attendances]
        seen += [(p.educator_id, p.institution) for p in self.practice_reports]
        seen += [(e.educator_id, e.institution) for e in self.evaluations]
        return seen

    def educators_with_role_changes(self) -> list[str]:
        """Whose current role must be recomputed (a registration or a role change arrived)."""
        return sorted({r.educator_id for r in self.registrations} | {r.educator_id for r in self.role_changes})

    def educators_with_practice_reports(self) -> list[str]:
        return sorted({p.educator_id for p in self.practice_reports})

    def educators_with_new_completions(self) -> list[str]:
        """Whose programme progress (started, courses done, completed-all-courses) must be recomputed."""
        return sorted({c.educator_id for c in self.completions})

    def educators_with_certificate_changes(self) -> list[str]:
        """Whose `certified` flag (an active certificate of the programme) must be recomputed."""
        return sorted(
            {i.educator_id for i in self.issued}
            | {r.educator_id for r in self.revoked}
            | {s.educator_id for s in self.status_changes}
        )

    def completion_counts(self, rules: ProjectionRules) -> Counter[tuple[str, str, str]]:
        """CourseCompleted events per (institution, course, month): every attempt counts."""
        return Counter((c.institution, c.course_id, rules.month_of(c.completed_at)) for c in self.completions)


def split_events(events: Iterable[ProjectionEvent]) -> ProjectionDeltas:
    """Only the fields the projections need are kept: never a payload, a name or an e-mail."""
    deltas = ProjectionDeltas()
    for event in events:
        data = event.data
        if isinstance(data, EducatorRegistered):
            deltas.registrations.append(
                Registration(data.educator_id, data.institution, data.role, data.registered_at, data.language)
            )
        elif isinstance(data, CourseCompleted):
            deltas.completions.append(
                Completion(data.educator_id, data.institution, data.course_id, data.completed_at, data.language)
            )
        elif isinstance(data, CertificateIssued):
            deltas.issued.append(
                Issuance(
                    data.certificate_id,
                    data.educator_id,
                    data.institution,
                    data.programme_id,
                    float(data.credits),
                    data.issued_at,
                )
            )
        elif isinstance(data, CertificateRevoked):
            deltas.revoked.append(Revocation(data.certificate_id, data.educator_id, data.institution, data.revoked_at))
        elif isinstance(data, CreditRecognized):
            deltas.recognitions.append(
                Recognition(
                    data.recognition_id,
                    data.certificate_id,
                    data.educator_id,
                    data.institution,
                    data.receiving_institution,
                    float(data.credits),
                    data.recognized_at,
                )
            )
        else:
            _split_v11(event, deltas)
        # other types (e.g. PortfolioEntryAdded, EducatorErased) do not change these projections
    return deltas


def _split_v11(event: ProjectionEvent, deltas: ProjectionDeltas) -> None:
    """The facts of the contract v1.1 types (section 9)."""
    data = event.data
    if isinstance(data, EducatorRoleChanged):
        deltas.role_changes.append(RoleChange(data.educator_id, data.institution, data.role, data.changed_at))
    elif isinstance(data, CertificateSuspended | CertificateReinstated):
        deltas.status_changes.append(
            StatusChange(
                data.certificate_id,
                data.educator_id,
                data.institution,
                isinstance(data, CertificateSuspended),
                data.at,
            )
        )
    elif isinstance(data, TrainingSessionHeld):
        deltas.sessions.append(
            Session(
                data.session_id,
                data.institution,
                data.master_teacher_id,
                data.region,
                data.mode,
                data.held_on,
                data.language,
            )
        )
    elif isinstance(data, TraineeAttended):
        deltas.attendances.append(Attendance(data.session_id, data.educator_id, data.institution))
    elif isinstance(data, PracticeIntegrationReported):
        deltas.practice_reports.append(
            PracticeReport(data.educator_id, data.institution, data.integrates_ai, data.reported_on)
        )
    elif isinstance(data, CourseEvaluated):
        deltas.evaluations.append(
            Evaluation(
                data.educator_id,
                data.institution,
                data.course_id,
                data.language,
                data.content_rating,
                data.usefulness_rating,
                event.time or NO_TIME,
                event.id,
            )
        )
    elif isinstance(data, CreditTransferRequested):
        deltas.transfer_requests.append(
            TransferRequest(
                data.request_id,
                data.educator_id,
                data.institution,
                data.certificate_id,
                data.receiving_institution,
                data.requested_at,
            )
        )
    elif isinstance(data, CreditTransferDecided):
        deltas.transfer_decisions.append(
            TransferDecision(
                data.request_id,
                data.educator_id,
                data.institution,
                data.receiving_institution,
                data.decision,
                data.granted_credits,
                data.decided_at,
            )
        )


def unique_by_id(events: Iterable[ProjectionEvent]) -> list[ProjectionEvent]:
    """First occurrence of each CloudEvent `(source, id)`, in order (a batch may hold the same one twice)."""
    seen: set[tuple[str, str]] = set()
    out: list[ProjectionEvent] = []
    for event in events:
        if event.key not in seen:
            seen.add(event.key)
            out.append(event)
    return out


def programme_progress(first_completions: dict[str, datetime], rules: ProjectionRules) -> tuple[int, datetime | None]:
    """(programme courses done, when the programme was completed or None): any score counts,
    completed at the latest of the first completions of its courses."""
    done = [at for course, at in first_completions.items() if course in rules.course_set]
    if done and len(done) == len(rules.course_set):
        return len(done), max(done)
    return len(done), None
