"""Turning events into column batches for the store's set-based SQL (pure Python, no I/O).

Every projection rule is order-independent, so a live consumer that sees events out of
order and a rebuild that replays them in stream order end with the same numbers:

* an educator's registration is the earliest EducatorRegistered for the id;
* a course counts as completed at its *first* completion (any score); the programme is
  completed when every programme course is, at the latest of those first completions;
* a certificate is active when it has been issued and not revoked (a revocation may arrive first);
* CourseCompleted events are counted one by one (each is an attempt), by institution, course, month.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from iioe.envelope import CloudEvent
from iioe.events import CertificateIssued, CertificateRevoked, CourseCompleted, CreditRecognized, EducatorRegistered


@dataclass(frozen=True)
class ProjectionRules:
    """What the projections depend on besides the events (changing any of it needs a rebuild)."""

    programme_id: str
    programme_courses: tuple[str, ...]
    month_timezone: str


@dataclass
class EventColumns:
    """The events of one batch, split by type into columns (arrays for `unnest`)."""

    registrations: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    """(educator_id, institution, role, registered_at)"""
    completions: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    """(educator_id, institution, course_id, completed_at)"""
    issued: list[tuple[str, str, str, str, float, datetime]] = field(default_factory=list)
    """(certificate_id, educator_id, institution, programme_id, credits, issued_at)"""
    revoked: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    """(certificate_id, educator_id, institution, revoked_at)"""
    recognitions: list[tuple[str, str, str, str, str, float, datetime]] = field(default_factory=list)
    """(recognition_id, certificate_id, educator_id, institution, receiving_institution, credits, recognized_at)"""

    def __len__(self) -> int:
        return (
            len(self.registrations)
            + len(self.completions)
            + len(self.issued)
            + len(self.revoked)
            + len(self.recognitions)
        )


def split_events(events: Iterable[CloudEvent[Any]]) -> EventColumns:
    """Only the fields the projections need are kept: never a payload, a name or an e-mail."""
    cols = EventColumns()
    for event in events:
        data = event.data
        if isinstance(data, EducatorRegistered):
            cols.registrations.append((data.educator_id, data.institution, data.role, data.registered_at))
        elif isinstance(data, CourseCompleted):
            cols.completions.append((data.educator_id, data.institution, data.course_id, data.completed_at))
        elif isinstance(data, CertificateIssued):
            cols.issued.append(
                (
                    data.certificate_id,
                    data.educator_id,
                    data.institution,
                    data.programme_id,
                    float(data.credits),
                    data.issued_at,
                )
            )
        elif isinstance(data, CertificateRevoked):
            cols.revoked.append((data.certificate_id, data.educator_id, data.institution, data.revoked_at))
        elif isinstance(data, CreditRecognized):
            cols.recognitions.append(
                (
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
    return cols


def unique_by_id(events: Iterable[CloudEvent[Any]]) -> list[CloudEvent[Any]]:
    """First occurrence of each CloudEvent id, in order (a batch may hold the same id twice)."""
    seen: set[str] = set()
    out: list[CloudEvent[Any]] = []
    for event in events:
        if event.id not in seen:
            seen.add(event.id)
            out.append(event)
    return out


def columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into `width` column lists (for `unnest($1::text[], ...)`)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]
