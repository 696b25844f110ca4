"""The projection rules, part 2: the projections as plain Python state (pure: no I/O).

This is the reference version of the rules. The PostgreSQL store runs the same rules as
set-based SQL for speed (`store.py`); `tests/test_store_matches_domain.py` replays generated
event sequences (duplicates, retakes, revocations, out of order) through both and compares
every table and every report. The in-memory fake unit of work of the unit tests is this state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.analytics.domain.facts import ProjectionDeltas, ProjectionRules, programme_progress

EDUCATOR_COUNT_KEYS = (
    "registered",
    "master_teachers",
    "completed_programme",
    "funnel_started",
    "funnel_completed",
    "funnel_certified",
)


@dataclass
class EducatorRow:
    """One educator seen in any event; `registered_at` is None until the registration arrives."""

    institution: str
    role: str | None = None
    registered_at: datetime | None = None
    registered_month: str | None = None
    started: bool = False
    programme_courses_done: int = 0
    programme_completed_at: datetime | None = None
    programme_month: str | None = None
    certified: bool = False

    @property
    def registered(self) -> bool:
        return self.registered_at is not None


@dataclass
class CertificateRow:
    """A certificate by id: issued, revoked, or both (a revocation may be known before the issuance)."""

    educator_id: str
    institution: str
    programme_id: str | None = None
    credits: float | None = None
    issued_at: datetime | None = None
    issued_month: str | None = None
    revoked_at: datetime | None = None
    revoked_month: str | None = None

    @property
    def active(self) -> bool:
        return self.issued_at is not None and self.revoked_at is None

    @property
    def revoked(self) -> bool:
        """Revoked and known to have been issued (only those count as revoked)."""
        return self.issued_at is not None and self.revoked_at is not None


@dataclass(frozen=True)
class RecognitionRow:
    certificate_id: str
    educator_id: str
    institution: str
    receiving_institution: str
    credits: float
    recognized_at: datetime
    month: str


class ProjectionState:
    """Projections kept in memory, updated by `apply` exactly as the store's SQL updates its tables."""

    def __init__(self, rules: ProjectionRules) -> None:
        self.rules = rules
        self.educators: dict[str, EducatorRow] = {}
        self.first_completions: dict[str, dict[str, datetime]] = defaultdict(dict)
        """educator → course → first completion (any score)."""
        self.completion_counts: Counter[tuple[str, str, str]] = Counter()
        """(institution, course, month) → CourseCompleted events."""
        self.certificates: dict[str, CertificateRow] = {}
        self.recognitions: dict[str, RecognitionRow] = {}

    def apply(self, deltas: ProjectionDeltas) -> None:
        """Apply the facts of already-claimed events (the order of the steps is the store's)."""
        month = self.rules.month_of
        for r in deltas.registrations:
            row = self.educators.get(r.educator_id)
            if row is None:
                row = self.educators[r.educator_id] = EducatorRow(r.institution)
            elif row.registered_at is not None and (r.registered_at, r.institution, r.role) >= (
                row.registered_at,
                row.institution,
                row.role or "",
            ):
                continue
            row.institution, row.role = r.institution, r.role
            row.registered_at, row.registered_month = r.registered_at, month(r.registered_at)
        for educator_id, institution in deltas.educators_seen():
            row = self.educators.get(educator_id)
            if row is None:
                self.educators[educator_id] = EducatorRow(institution)
            elif row.registered_at is None and institution < row.institution:
                row.institution = institution
        for c in deltas.completions:
            courses = self.first_completions[c.educator_id]
            if c.course_id not in courses or c.completed_at < courses[c.course_id]:
                courses[c.course_id] = c.completed_at
        self.completion_counts.update(deltas.completion_counts(self.rules))
        for i in deltas.issued:
            cert = self.certificates.get(i.certificate_id)
            if cert is None:
                cert = self.certificates[i.certificate_id] = CertificateRow(i.educator_id, i.institution)
            elif cert.issued_at is not None and i.issued_at >= cert.issued_at:
                continue
            cert.educator_id, cert.institution, cert.programme_id, cert.credits = (
                i.educator_id,
                i.institution,
                i.programme_id,
                i.credits,
            )
            cert.issued_at, cert.issued_month = i.issued_at, month(i.issued_at)
        for v in deltas.revoked:
            cert = self.certificates.get(v.certificate_id)
            if cert is None:
                cert = self.certificates[v.certificate_id] = CertificateRow(v.educator_id, v.institution)
            elif cert.revoked_at is not None and v.revoked_at >= cert.revoked_at:
                continue
            cert.revoked_at, cert.revoked_month = v.revoked_at, month(v.revoked_at)
        for g in deltas.recognitions:
            if g.recognition_id not in self.recognitions:
                self.recognitions[g.recognition_id] = RecognitionRow(
                    g.certificate_id,
                    g.educator_id,
                    g.institution,
                    g.receiving_institution,
                    g.credits,
                    g.recognized_at,
                    month(g.recognized_at),
                )
        for educator_id in deltas.educators_with_new_completions():
            row = self.educators[educator_id]
            done, completed_at = programme_progress(self.first_completions[educator_id], self.rules)
            row.started, row.programme_courses_done = True, done
            row.programme_completed_at = completed_at
            row.programme_month = month(completed_at) if completed_at is not None else None
        for educator_id in deltas.educators_with_certificate_changes():
            self.educators[educator_id].certified = any(
                c.educator_id == educator_id and c.programme_id == self.rules.programme_id and c.active
                for c in self.certificates.values()
            )

    # ------------------------------------------------------------------ reads (the store's shapes) --

    def institution_counts(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        """Per institution: educator counts (funnel counts only registered educators), completions,
        active and revoked certificates."""
        out: dict[str, dict[str, int]] = {}
        for e in self.educators.values():
            if institution is not None and e.institution != institution:
                continue
            row = out.setdefault(e.institution, dict.fromkeys(EDUCATOR_COUNT_KEYS, 0))
            row["registered"] += e.registered
            row["master_teachers"] += e.registered and e.role == "master_teacher"
            row["completed_programme"] += e.programme_completed_at is not None
            row["funnel_started"] += e.registered and e.started
            row["funnel_completed"] += e.registered and e.programme_completed_at is not None
            row["funnel_certified"] += e.registered and e.certified
        completions: Counter[str] = Counter()
        for (inst, _, _), n in self.completion_counts.items():
            if institution is None or inst == institution:
                completions[inst] += n
        for inst, n in completions.items():
            out.setdefault(inst, {})["completions"] = n
        for c in self.certificates.values():
            if institution is not None and c.institution != institution:
                continue
            row = out.setdefault(c.institution, {})
            row["certificates_active"] = row.get("certificates_active", 0) + c.active
            row["certificates_revoked"] = row.get("certificates_revoked", 0) + c.revoked
        return out

    def course_counts(self, institution: str | None = None) -> list[dict[str, Any]]:
        """Per course: CourseCompleted events and distinct educators who completed it (by the
        educator's current institution)."""
        by_course: dict[str, dict[str, Any]] = {}

        def course(course_id: str) -> dict[str, Any]:
            return by_course.setdefault(course_id, {"course_id": course_id, "completions": 0, "educators": 0})

        for (inst, course_id, _), n in self.completion_counts.items():
            if institution is None or inst == institution:
                course(course_id)["completions"] += n
        for educator_id, courses in self.first_completions.items():
            if institution is not None and self.educators[educator_id].institution != institution:
                continue
            for course_id in courses:
                course(course_id)["educators"] += 1
        return [by_course[k] for k in sorted(by_course)]

    def programme_counts(self) -> list[dict[str, Any]]:
        """Per programme (issued certificates only): active, revoked, credits of the active ones."""
        out: dict[str, dict[str, Any]] = {}
        for c in self.certificates.values():
            if c.issued_at is None or c.programme_id is None:
                continue
            row = out.setdefault(
                c.programme_id, {"programme_id": c.programme_id, "active": 0, "revoked": 0, "credits": 0.0}
            )
            row["active"] += c.active
            row["revoked"] += c.revoked
            row["credits"] += (c.credits or 0.0) if c.active else 0.0
        return [out[k] for k in sorted(out)]

    def recognition_totals(self) -> tuple[int, float]:
        return len(self.recognitions), float(sum(r.credits for r in self.recognitions.values()))

    def monthly(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        """Per month: registrations, course completions, programme completions, certificates issued
        (revoked later or not) and revoked (of issued certificates)."""
        counts: Counter[tuple[str, str]] = Counter()
        for e in self.educators.values():
            if institution is None or e.institution == institution:
                if e.registered_month is not None:
                    counts[(e.registered_month, "registrations")] += 1
                if e.programme_month is not None:
                    counts[(e.programme_month, "programme_completions")] += 1
        for (inst, _, m), n in self.completion_counts.items():
            if institution is None or inst == institution:
                counts[(m, "course_completions")] += n
        for c in self.certificates.values():
            if institution is None or c.institution == institution:
                if c.issued_month is not None:
                    counts[(c.issued_month, "certificates_issued")] += 1
                if c.revoked_month is not None and c.issued_at is not None:
                    counts[(c.revoked_month, "certificates_revoked")] += 1
        out: dict[str, dict[str, int]] = {}
        for (m, measure), n in counts.items():
            out.setdefault(m, {})[measure] = n
        return out

    def registrations_in_month(self, month: str) -> list[tuple[str, int]]:
        """(institution, new registrations) in `month`, most first, then by code."""
        counts = Counter(e.institution for e in self.educators.values() if e.registered_month == month)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def has_institution(self, code: str) -> bool:
        return (
            any(e.institution == code for e in self.educators.values())
            or any(c.institution == code for c in self.certificates.values())
            or any(inst == code for inst, _, _ in self.completion_counts)
        )
