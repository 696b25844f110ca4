"""The projection rules, part 2: the projections as plain Python state (pure: no I/O).

This is the reference version of the rules. The PostgreSQL store runs the same rules as
set-based SQL for speed (`store.py`); `tests/test_store_matches_domain.py` replays generated
event sequences (duplicates, retakes, revocations, out of order) through both and compares
every table and every report. The in-memory fake unit of work of the unit tests is this state.

The rows and tables are in `rows.py`, the reads in `reports.py` (current) and
`dated_reports.py` (as of a cutoff); this module applies the facts.
"""

from __future__ import annotations

from datetime import date, datetime

from services.analytics.domain.dated_reports import DatedReports
from services.analytics.domain.facts import (
    ProjectionDeltas,
    Session,
    TransferDecision,
    programme_progress,
)
from services.analytics.domain.reports import CurrentReports
from services.analytics.domain.rows import (
    EDUCATOR_COUNT_KEYS,
    MASTER_TEACHER,
    CertificateRow,
    EducatorRow,
    ProjectionTables,
    RecognitionRow,
)

__all__ = [
    "EDUCATOR_COUNT_KEYS",
    "MASTER_TEACHER",
    "CertificateRow",
    "EducatorRow",
    "ProjectionState",
    "ProjectionTables",
    "RecognitionRow",
]


class ProjectionState(CurrentReports, DatedReports):
    """Projections kept in memory, updated by `apply` exactly as the store's SQL updates its tables."""

    def apply(self, deltas: ProjectionDeltas) -> None:
        """Apply the facts of already-claimed events (the order of the steps is the store's)."""
        month = self.rules.month_of
        for r in deltas.registrations:
            row = self.educators.get(r.educator_id)
            if row is None:
                row = self.educators[r.educator_id] = EducatorRow(r.institution)
            elif row.registered_at is not None and (r.registered_at, r.institution, r.role, r.language) >= (
                row.registered_at,
                row.institution,
                row.role or "",
                row.language or "",
            ):
                continue
            row.institution, row.role, row.language = r.institution, r.role, r.language
            row.registered_at, row.registered_month = r.registered_at, month(r.registered_at)
        for educator_id, institution in deltas.educators_seen():
            row = self.educators.get(educator_id)
            if row is None:
                self.educators[educator_id] = EducatorRow(institution)
            elif row.registered_at is None and institution < row.institution:
                row.institution = institution
        for c in deltas.completions:
            courses = self.first_completions[c.educator_id]
            key = (c.educator_id, c.course_id)
            if c.course_id not in courses or (c.completed_at, c.language or "") < (
                courses[c.course_id],
                self.first_completion_languages.get(key) or "",
            ):
                courses[c.course_id] = c.completed_at
                self.first_completion_languages[key] = c.language
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
        self._apply_v11(deltas)
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
        for educator_id in deltas.educators_with_role_changes():
            row = self.educators[educator_id]
            row.current_role = row.role
            if changes := self.role_changes.get(educator_id):
                changed_at, role = max(changes)
                if row.registered_at is None or changed_at >= row.registered_at:
                    row.current_role = role
        for educator_id in deltas.educators_with_practice_reports():
            self.educators[educator_id].integrates_ai = max(self.practice_reports[educator_id])[1]

    def _apply_v11(self, deltas: ProjectionDeltas) -> None:
        """The facts of the contract v1.1 types (before the per-educator recomputations)."""
        for r in deltas.role_changes:
            self.role_changes[r.educator_id].add((r.changed_at, r.role))
        for s in deltas.status_changes:
            if s.certificate_id not in self.certificates:
                self.certificates[s.certificate_id] = CertificateRow(s.educator_id, s.institution)
            self.status_changes[s.certificate_id].add((s.at, s.suspended))
        for certificate_id in {s.certificate_id for s in deltas.status_changes}:
            # the latest change; at the same instant a reinstatement wins
            _, suspended = max(self.status_changes[certificate_id], key=lambda c: (c[0], not c[1]))
            self.certificates[certificate_id].suspended = suspended
        for session in deltas.sessions:
            known = self.sessions.get(session.session_id)
            if known is None or _session_key(session) < _session_key(known):
                self.sessions[session.session_id] = session
        for a in deltas.attendances:
            self.attendances.add((a.session_id, a.educator_id))
            self.educators[a.educator_id].attended = True
        for p in deltas.practice_reports:
            self.practice_reports[p.educator_id].add((p.reported_on, p.integrates_ai))
        for e in deltas.evaluations:
            key = (e.educator_id, e.course_id)
            known_eval = self.evaluations.get(key)
            if known_eval is None or (e.evaluated_at, e.event_id) > (known_eval.evaluated_at, known_eval.event_id):
                self.evaluations[key] = e
        for q in deltas.transfer_requests:
            known_req = self.transfer_requests.get(q.request_id)
            if known_req is None or (q.requested_at, q.receiving_institution) < (
                known_req.requested_at,
                known_req.receiving_institution,
            ):
                self.transfer_requests[q.request_id] = q
        for d in deltas.transfer_decisions:
            known_dec = self.transfer_decisions.get(d.request_id)
            if known_dec is None or _decision_key(d) > _decision_key(known_dec):
                self.transfer_decisions[d.request_id] = d

    def has_educator(self, educator_id: str) -> bool:
        return educator_id in self.educators

    def has_institution(self, code: str) -> bool:
        return (
            any(e.institution == code for e in self.educators.values())
            or any(c.institution == code for c in self.certificates.values())
            or any(inst == code for inst, _, _ in self.completion_counts)
            or any(s.institution == code for s in self.sessions.values())
        )


def _session_key(s: Session) -> tuple[date, str, str, str, str, str]:
    """Of two publications of one session id, the smaller key is kept (order-free)."""
    return (s.held_on, s.master_teacher_id, s.institution, s.region, s.mode, s.language)


def _decision_key(d: TransferDecision) -> tuple[datetime, str, str, float]:
    """Of two decisions of one request, the greater key is kept (order-free)."""
    return (d.decided_at, d.decision, d.receiving_institution, -1.0 if d.credits is None else d.credits)
