"""The projection rules, part 1: which facts an event contributes (pure: no I/O).

Every rule is order-independent, so a live consumer that sees events out of order and a rebuild
that replays them in stream order end with the same numbers:

* an educator's registration is the earliest EducatorRegistered for the id (ties: lowest
  institution, then role);
* a course counts as completed at its *first* completion (any score); the programme is
  completed when every programme course is, at the latest of those first completions;
* a certificate is active when it has been issued and not revoked (a revocation may arrive first);
* CourseCompleted events are counted one by one (each is an attempt), by institution, course, month;
* months are `YYYY-MM` in the rules' time zone, taken from the event's own timestamp.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from iioe.events import CertificateIssued, CertificateRevoked, CourseCompleted, CreditRecognized, EducatorRegistered


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
    """An event as the projections see it: its CloudEvent id (the inbox key) and its `data`.

    `data` is one of the contract's data models; types the projections do not use are kept
    (they are claimed in the inbox like any other) and contribute nothing.
    """

    id: str
    data: BaseModel


class Registration(NamedTuple):
    educator_id: str
    institution: str
    role: str
    registered_at: datetime


class Completion(NamedTuple):
    educator_id: str
    institution: str
    course_id: str
    completed_at: datetime


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


@dataclass
class ProjectionDeltas:
    """The facts of one batch of new events, by kind (the store sends each list as `unnest` arrays)."""

    registrations: list[Registration] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    issued: list[Issuance] = field(default_factory=list)
    revoked: list[Revocation] = field(default_factory=list)
    recognitions: list[Recognition] = field(default_factory=list)

    def __len__(self) -> int:
        return (
            len(self.registrations)
            + len(self.completions)
            + len(self.issued)
            + len(self.revoked)
            + len(self.recognitions)
        )

    def educators_seen(self) -> list[tuple[str, str]]:
        """(educator, institution) of every event about an educator who may not be registered yet:
        such an educator gets a row under the lowest institution seen until the registration arrives."""
        seen = [(c.educator_id, c.institution) for c in self.completions]
        seen += [(i.educator_id, i.institution) for i in self.issued]
        seen += [(r.educator_id, r.institution) for r in self.revoked]
        return seen

    def educators_with_new_completions(self) -> list[str]:
        """Whose programme progress (started, courses done, completed-all-courses) must be recomputed."""
        return sorted({c.educator_id for c in self.completions})

    def educators_with_certificate_changes(self) -> list[str]:
        """Whose `certified` flag (an active certificate of the programme) must be recomputed."""
        return sorted({i.educator_id for i in self.issued} | {r.educator_id for r in self.revoked})

    def completion_counts(self, rules: ProjectionRules) -> Counter[tuple[str, str, str]]:
        """CourseCompleted events per (institution, course, month): every attempt counts."""
        return Counter((c.institution, c.course_id, rules.month_of(c.completed_at)) for c in self.completions)


def split_events(events: Iterable[ProjectionEvent]) -> ProjectionDeltas:
    """Only the fields the projections need are kept: never a payload, a name or an e-mail."""
    deltas = ProjectionDeltas()
    for event in events:
        data = event.data
        if isinstance(data, EducatorRegistered):
            deltas.registrations.append(Registration(data.educator_id, data.institution, data.role, data.registered_at))
        elif isinstance(data, CourseCompleted):
            deltas.completions.append(Completion(data.educator_id, data.institution, data.course_id, data.completed_at))
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
        # other types (e.g. future additive ones) do not change these projections
    return deltas


def unique_by_id(events: Iterable[ProjectionEvent]) -> list[ProjectionEvent]:
    """First occurrence of each CloudEvent id, in order (a batch may hold the same id twice)."""
    seen: set[str] = set()
    out: list[ProjectionEvent] = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            out.append(event)
    return out


def programme_progress(first_completions: dict[str, datetime], rules: ProjectionRules) -> tuple[int, datetime | None]:
    """(programme courses done, when the programme was completed or None): any score counts,
    completed at the latest of the first completions of its courses."""
    done = [at for course, at in first_completions.items() if course in rules.course_set]
    if done and len(done) == len(rules.course_set):
        return len(done), max(done)
    return len(done), None
