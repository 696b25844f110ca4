"""PostgreSQL adapter of the notifications service, part 4: the cascade facts behind the monthly digests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from iioe.runtime.db import Conn
from services.notifications.domain import Session


@dataclass(frozen=True)
class PgCascade:
    conn: Conn

    async def add_session(self, s: Session) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO training_sessions"
            " (session_id, institution, master_teacher_id, region, mode, held_on, language)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
            s.session_id,
            s.institution,
            s.master_teacher_id,
            s.region,
            s.mode,
            s.held_on,
            s.language,
        )
        return inserted is not None

    async def session(self, session_id: str) -> Session | None:
        row = await self.conn.fetchrow(
            "SELECT session_id, institution, master_teacher_id, region, mode, held_on, language"
            " FROM training_sessions WHERE session_id = $1",
            session_id,
        )
        return Session(**dict(row)) if row else None

    async def add_attendance(self, session_id: str, educator_id: str, institution: str, event_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO attendances (session_id, educator_id, institution, event_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            session_id,
            educator_id,
            institution,
            event_id,
        )
        return inserted is not None

    async def attendances(self, session_id: str) -> list[tuple[str, str, str]]:
        rows = await self.conn.fetch(
            "SELECT educator_id, institution, event_id FROM attendances WHERE session_id = $1 ORDER BY educator_id",
            session_id,
        )
        return [(r["educator_id"], r["institution"], r["event_id"]) for r in rows]

    async def add_completion(self, educator_id: str, course_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO course_completions (educator_id, course_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            educator_id,
            course_id,
        )
        return inserted is not None

    async def add_certified(self, educator_id: str, certificate_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO certified (educator_id, certificate_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            educator_id,
            certificate_id,
        )
        return inserted is not None

    async def master_teachers(self, held_until: date) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT s.master_teacher_id FROM training_sessions s"
            " JOIN attendances a ON a.session_id = s.session_id WHERE s.held_on <= $1 ORDER BY 1",
            held_until,
        )
        return [r["master_teacher_id"] for r in rows]

    async def digest_facts(self, master_teacher_id: str, first: date, last: date) -> dict[str, int]:
        row = await self.conn.fetchrow(
            "WITH mine AS (SELECT a.educator_id, s.session_id, s.held_on FROM training_sessions s"
            "  JOIN attendances a ON a.session_id = s.session_id WHERE s.master_teacher_id = $1 AND s.held_on <= $3),"
            " trainees AS (SELECT DISTINCT educator_id FROM mine)"
            " SELECT (SELECT count(*) FROM trainees) AS trainees,"
            "  (SELECT count(DISTINCT educator_id) FROM mine WHERE held_on >= $2) AS new_trainees,"
            "  (SELECT count(*) FROM training_sessions WHERE master_teacher_id = $1 AND held_on BETWEEN $2 AND $3)"
            "   AS sessions,"
            "  (SELECT count(*) FROM trainees t WHERE EXISTS"
            "   (SELECT 1 FROM course_completions c WHERE c.educator_id = t.educator_id)) AS trainees_completing,"
            "  (SELECT count(*) FROM trainees t WHERE EXISTS"
            "   (SELECT 1 FROM certified c WHERE c.educator_id = t.educator_id)) AS trainees_certified",
            master_teacher_id,
            first,
            last,
        )
        assert row is not None
        return {key: int(value) for key, value in dict(row).items()}

    async def claim_digest(self, master_teacher_id: str, month: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO digests (educator_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            master_teacher_id,
            month,
        )
        return inserted is not None

    async def forget(self, educator_id: str) -> None:
        for table in ("attendances", "course_completions", "certified"):
            await self.conn.execute(f"DELETE FROM {table} WHERE educator_id = $1", educator_id)
