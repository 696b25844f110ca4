"""The projection rules, part 2: the projections as plain Python state (pure: no I/O).

This is the reference version of the rules. The PostgreSQL store runs the same rules as
set-based SQL for speed (`store.py`); `tests/test_store_matches_domain.py` replays generated
event sequences (duplicates, retakes, revocations, out of order) through both and compares
every table and every report. The in-memory fake unit of work of the unit tests is this state.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.analytics.domain.facts import (
    Evaluation,
    ProjectionDeltas,
    ProjectionRules,
    Session,
    TransferDecision,
    TransferRequest,
    programme_progress,
)

MASTER_TEACHER = "master_teacher"

EDUCATOR_COUNT_KEYS = (
    "registered",
    "master_teachers",
    "completed_programme",
    "funnel_started",
    "funnel_completed",
    "funnel_certified",
    "trainees_reached",
    "integrating_ai",
)


@dataclass
class EducatorRow:
    """One educator seen in any event; `registered_at` is None until the registration arrives."""

    institution: str
    role: str | None = None
    registered_at: datetime | None = None
    registered_month: str | None = None
    language: str | None = None
    """The registration's language (the language the educator follows the courses in)."""
    started: bool = False
    programme_courses_done: int = 0
    programme_completed_at: datetime | None = None
    programme_month: str | None = None
    certified: bool = False
    current_role: str | None = None
    """The registration's role, or that of a later EducatorRoleChanged."""
    attended: bool = False
    """Attended at least one training session (a trainee of the cascade)."""
    integrates_ai: bool | None = None
    """What the latest practice report says; None without a report."""

    @property
    def registered(self) -> bool:
        return self.registered_at is not None

    @property
    def master_teacher(self) -> bool:
        return self.registered and self.current_role == MASTER_TEACHER


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
    suspended: bool = False

    @property
    def active(self) -> bool:
        """Issued, not revoked, not suspended."""
        return self.issued_at is not None and self.revoked_at is None and not self.suspended

    @property
    def suspended_now(self) -> bool:
        """Issued, not revoked, and suspended (a revoked certificate counts as revoked only)."""
        return self.issued_at is not None and self.revoked_at is None and self.suspended

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
        self.first_completion_languages: dict[tuple[str, str], str | None] = {}
        """(educator, course) → the language of that first completion (None when not sent)."""
        self.completion_counts: Counter[tuple[str, str, str]] = Counter()
        """(institution, course, month) → CourseCompleted events."""
        self.certificates: dict[str, CertificateRow] = {}
        self.recognitions: dict[str, RecognitionRow] = {}
        self.role_changes: dict[str, set[tuple[datetime, str]]] = defaultdict(set)
        """educator → every (changed_at, role) of EducatorRoleChanged."""
        self.status_changes: dict[str, set[tuple[datetime, bool]]] = defaultdict(set)
        """certificate → every (at, suspended) of CertificateSuspended / CertificateReinstated."""
        self.sessions: dict[str, Session] = {}
        self.attendances: set[tuple[str, str]] = set()
        """(session, educator)."""
        self.practice_reports: dict[str, set[tuple[date, bool]]] = defaultdict(set)
        """educator → every (reported_on, integrates_ai)."""
        self.evaluations: dict[tuple[str, str], Evaluation] = {}
        """(educator, course) → the latest evaluation."""
        self.transfer_requests: dict[str, TransferRequest] = {}
        self.transfer_decisions: dict[str, TransferDecision] = {}

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
            row["master_teachers"] += e.master_teacher
            row["trainees_reached"] += e.attended
            row["integrating_ai"] += bool(e.integrates_ai)
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
            row["certificates_suspended"] = row.get("certificates_suspended", 0) + c.suspended_now
        for s in self.sessions.values():
            if institution is None or s.institution == institution:
                row = out.setdefault(s.institution, {})
                row["training_sessions"] = row.get("training_sessions", 0) + 1
        for (educator_id, _), ev in self.evaluations.items():
            inst = self.educators[educator_id].institution
            if institution is None or inst == institution:
                row = out.setdefault(inst, {})
                row["course_ratings"] = row.get("course_ratings", 0) + 1
                row["courses_rated_highly"] = row.get("courses_rated_highly", 0) + ev.rated_highly
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

    def cascade_trainees(self) -> dict[str, set[str]]:
        """Master teacher → distinct educators who attended one of their sessions (never themselves)."""
        out: dict[str, set[str]] = defaultdict(set)
        for session_id, educator_id in self.attendances:
            session = self.sessions.get(session_id)
            if session is not None and educator_id != session.master_teacher_id:
                out[session.master_teacher_id].add(educator_id)
        return out

    def cascade(self) -> list[dict[str, Any]]:
        """One row per master teacher (current role, or holder of a session): sessions, trainees,
        how many of them completed / are certified, and the second generation's reach."""
        trainees = self.cascade_trainees()
        sessions = Counter(s.master_teacher_id for s in self.sessions.values())
        masters = {k for k, e in self.educators.items() if e.master_teacher} | set(sessions)
        rows: list[dict[str, Any]] = []
        for m in masters:
            mine = trainees.get(m, set())
            second: set[str] = set()
            for t in mine:
                if self.educators[t].master_teacher:
                    second |= trainees.get(t, set())
            second.discard(m)
            rows.append(
                {
                    "educator_id": m,
                    "institution": self.educators[m].institution,
                    "sessions": sessions[m],
                    "trainees": len(mine),
                    "trainees_completed": sum(self.educators[t].programme_completed_at is not None for t in mine),
                    "trainees_certified": sum(self.educators[t].certified for t in mine),
                    "second_generation_reach": len(second),
                }
            )
        rows.sort(key=lambda r: (-r["trainees"], -r["sessions"], r["educator_id"]))
        return rows

    def cascade_totals(self) -> dict[str, int]:
        attendees = {e for _, e in self.attendances}
        return {
            "sessions": len(self.sessions),
            "trainees": len(attendees),
            "trainees_certified": sum(self.educators[e].certified for e in attendees),
        }

    def cascade_breakdown(self, educator_id: str) -> dict[str, list[dict[str, Any]]]:
        """One master teacher's sessions and distinct trainees by region and by mode."""
        out: dict[str, list[dict[str, Any]]] = {}
        for field_name in ("region", "mode"):
            sessions: Counter[str] = Counter()
            trainees: dict[str, set[str]] = defaultdict(set)
            for s in self.sessions.values():
                if s.master_teacher_id == educator_id:
                    sessions[getattr(s, field_name)] += 1
            for session_id, trainee in self.attendances:
                held = self.sessions.get(session_id)
                if held is not None and held.master_teacher_id == educator_id and trainee != educator_id:
                    trainees[getattr(held, field_name)].add(trainee)
            out[f"by_{field_name}"] = [
                {field_name: k, "sessions": sessions[k], "trainees": len(trainees[k])} for k in sorted(sessions)
            ]
        return out

    def transfer_counts(self) -> list[dict[str, Any]]:
        """Per receiving institution: requests, pending, decisions, acceptances, accepted credits."""
        out: dict[str, dict[str, Any]] = {}

        def row(code: str) -> dict[str, Any]:
            return out.setdefault(
                code,
                {
                    "receiving_institution": code,
                    "requests": 0,
                    "pending": 0,
                    "accepted": 0,
                    "rejected": 0,
                    "credits": 0.0,
                },
            )

        for q in self.transfer_requests.values():
            row(q.receiving_institution)["requests"] += 1
            row(q.receiving_institution)["pending"] += q.request_id not in self.transfer_decisions
        for d in self.transfer_decisions.values():
            r = row(d.receiving_institution)
            r[d.decision] += 1
            r["credits"] += d.credits or 0.0
        return [out[k] for k in sorted(out)]

    def practice_counts(self) -> dict[str, dict[str, int]]:
        """Per institution: completed the programme, reported, integrating AI, both completed and integrating."""
        out: dict[str, dict[str, int]] = {}
        for e in self.educators.values():
            completed, reported, ai = (
                e.programme_completed_at is not None,
                e.integrates_ai is not None,
                bool(e.integrates_ai),
            )
            if not (completed or reported):
                continue
            row = out.setdefault(
                e.institution, {"completed": 0, "reported": 0, "integrating": 0, "completed_integrating": 0}
            )
            row["completed"] += completed
            row["reported"] += reported
            row["integrating"] += ai
            row["completed_integrating"] += completed and ai
        return out

    def feedback_counts(self) -> list[dict[str, Any]]:
        """Per (course, language) of the latest evaluations: ratings, rated highly, rating sums."""
        out: dict[tuple[str, str], dict[str, Any]] = {}
        for e in self.evaluations.values():
            row = out.setdefault(
                (e.course_id, e.language),
                {
                    "course_id": e.course_id,
                    "language": e.language,
                    "ratings": 0,
                    "rated_highly": 0,
                    "content_sum": 0,
                    "usefulness_sum": 0,
                },
            )
            row["ratings"] += 1
            row["rated_highly"] += e.rated_highly
            row["content_sum"] += e.content_rating
            row["usefulness_sum"] += e.usefulness_rating
        return [out[k] for k in sorted(out)]

    # --------------------------------------------- dated reports (as of a cutoff; same rules, history kept) --

    def _role_at(self, e: EducatorRow, educator_id: str, cutoff: datetime) -> str | None:
        changes = [c for c in self.role_changes.get(educator_id, ()) if c[0] < cutoff]
        if changes:
            changed_at, role = max(changes)
            if e.registered_at is None or changed_at >= e.registered_at:
                return role
        return e.role

    def _active_at(self, certificate_id: str, c: CertificateRow, cutoff: datetime) -> bool:
        if c.issued_at is None or c.issued_at >= cutoff or (c.revoked_at is not None and c.revoked_at < cutoff):
            return False
        changes = [s for s in self.status_changes.get(certificate_id, ()) if s[0] < cutoff]
        return not (changes and max(changes, key=lambda s: (s[0], not s[1]))[1])

    def as_of_groups(self, cutoff: datetime, day: date, programme_id: str) -> list[dict[str, Any]]:
        """Per (institution, registration language), as of `cutoff` (exclusive; `day` its last day):
        registered, completed the programme, certified (an active programme certificate), master
        teachers, integrating AI (latest report by `day`), trainees (attended a session held by `day`)."""
        certified = {
            c.educator_id
            for k, c in self.certificates.items()
            if c.programme_id == programme_id and self._active_at(k, c, cutoff)
        }
        trainees = {
            e for s, e in self.attendances if (held := self.sessions.get(s)) is not None and held.held_on <= day
        }
        out: dict[tuple[str, str | None], dict[str, Any]] = {}
        for educator_id, e in self.educators.items():
            reports = [r for r in self.practice_reports.get(educator_id, ()) if r[0] <= day]
            ai = bool(reports) and max(reports)[1]
            registered = e.registered_at is not None and e.registered_at < cutoff
            completed = e.programme_completed_at is not None and e.programme_completed_at < cutoff
            flags = {
                "registered": registered,
                "completed": completed,
                "certified": educator_id in certified,
                "master_teachers": registered and self._role_at(e, educator_id, cutoff) == MASTER_TEACHER,
                "integrating_ai": ai,
                "completed_integrating": ai and completed,
                "trainees": educator_id in trainees,
            }
            if not any(flags.values()):
                continue
            row = out.setdefault(
                (e.institution, e.language),
                {"institution": e.institution, "language": e.language} | dict.fromkeys(flags, 0),
            )
            for k, v in flags.items():
                row[k] += v
        return list(out.values())

    def as_of_course_languages(self, cutoff: datetime) -> dict[str, dict[str, int]]:
        """Per course language (of each first completion; `unknown` when not sent): distinct educators
        and (educator, course) first completions by `cutoff`."""
        educators: dict[str, set[str]] = defaultdict(set)
        completions: Counter[str] = Counter()
        for educator_id, courses in self.first_completions.items():
            for course_id, at in courses.items():
                if at < cutoff:
                    language = self.first_completion_languages.get((educator_id, course_id)) or "unknown"
                    educators[language].add(educator_id)
                    completions[language] += 1
        return {k: {"educators": len(educators[k]), "course_completions": n} for k, n in completions.items()}

    def as_of_credits(self, cutoff: datetime) -> dict[str, dict[str, Any]]:
        """Per institution (the educator's, as the event says): credits recognised by `cutoff` —
        CreditRecognized and accepted credit transfers — and how many of each."""
        out: dict[str, dict[str, Any]] = {}

        def row(code: str) -> dict[str, Any]:
            return out.setdefault(code, {"credits": 0.0, "recognitions": 0, "transfers_accepted": 0})

        for r in self.recognitions.values():
            if r.recognized_at < cutoff:
                row(r.institution)["credits"] += r.credits
                row(r.institution)["recognitions"] += 1
        for d in self.transfer_decisions.values():
            if d.decision == "accepted" and d.decided_at < cutoff:
                row(d.institution)["credits"] += d.credits or 0.0
                row(d.institution)["transfers_accepted"] += 1
        return out

    def as_of_regions(self, day: date) -> dict[str, dict[str, int]]:
        """Per region: sessions held by `day` and distinct educators who attended them."""
        sessions: Counter[str] = Counter()
        trainees: dict[str, set[str]] = defaultdict(set)
        for s in self.sessions.values():
            if s.held_on <= day:
                sessions[s.region] += 1
        for session_id, educator_id in self.attendances:
            held = self.sessions.get(session_id)
            if held is not None and held.held_on <= day:
                trainees[held.region].add(educator_id)
        return {k: {"sessions": n, "trainees": len(trainees[k])} for k, n in sessions.items()}

    def as_of_programmes(self, cutoff: datetime) -> dict[str, int]:
        """Per programme: certificates active at `cutoff`."""
        out: Counter[str] = Counter()
        for k, c in self.certificates.items():
            if c.programme_id is not None and self._active_at(k, c, cutoff):
                out[c.programme_id] += 1
        return dict(out)

    def as_of_cascade(self, day: date) -> dict[str, int]:
        sessions = [s for s in self.sessions.values() if s.held_on <= day]
        held = {s.session_id for s in sessions}
        return {"sessions": len(sessions), "trainees": len({e for s, e in self.attendances if s in held})}

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
