"""The projection rules, part 2c: the dated reports (as of a cutoff; same rules, history kept; pure: no I/O)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime
from typing import Any

from services.analytics.domain.rows import MASTER_TEACHER, CertificateRow, EducatorRow, ProjectionTables


class DatedReports(ProjectionTables):
    """Reads of the projections as of a cutoff (exclusive) or a last day (inclusive)."""

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
