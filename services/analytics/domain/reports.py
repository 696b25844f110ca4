"""The projection rules, part 2b: the current reports over the in-memory projections (pure: no I/O).

Each query has the shape of its set-based SQL twin in `store_reads.py`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from services.analytics.domain.rows import EDUCATOR_COUNT_KEYS, ProjectionTables


class CurrentReports(ProjectionTables):
    """Reads of the projections as they are now (the store's shapes)."""

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
