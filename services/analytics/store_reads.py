"""PostgreSQL adapter of the reports' read port: one read-only REPEATABLE READ transaction per
report (so its numbers always add up), and the counting queries over the projection tables. SQL only;
`domain/projection.py` holds the pure version of each query (the shapes are the same)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg

from iioe.runtime.db import Conn


class PgProjectionReader:
    """`ProjectionReader` on PostgreSQL; `pool` is a provider (the pool exists once the runtime started)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[PgProjectionQueries]:
        async with self._pool().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            yield PgProjectionQueries(conn)


class PgProjectionQueries:
    """The report queries inside one snapshot transaction."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def institution_counts(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        return await institution_counts(self._conn, institution)

    async def course_counts(self, institution: str | None = None) -> list[dict[str, Any]]:
        return await course_counts(self._conn, institution)

    async def programme_counts(self) -> list[dict[str, Any]]:
        return await programme_counts(self._conn)

    async def recognition_totals(self) -> tuple[int, float]:
        return await recognition_totals(self._conn)

    async def monthly(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        return await monthly(self._conn, institution)

    async def registrations_in_month(self, month: str) -> list[tuple[str, int]]:
        return await registrations_in_month(self._conn, month)

    async def has_institution(self, code: str) -> bool:
        return await has_institution(self._conn, code)

    async def has_educator(self, educator_id: str) -> bool:
        return bool(
            await self._conn.fetchval("SELECT EXISTS (SELECT 1 FROM educators WHERE educator_id = $1)", educator_id)
        )

    async def cascade(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self._conn.fetch(_CASCADE)]

    async def cascade_totals(self) -> dict[str, int]:
        row = await self._conn.fetchrow(_CASCADE_TOTALS)
        assert row is not None
        return {k: int(v) for k, v in row.items()}

    async def cascade_breakdown(self, educator_id: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for field in ("region", "mode"):
            rows = await self._conn.fetch(_CASCADE_BREAKDOWN.format(field=field), educator_id)
            out[f"by_{field}"] = [
                {field: r["k"], "sessions": int(r["sessions"]), "trainees": int(r["trainees"])} for r in rows
            ]
        return out

    async def transfer_counts(self) -> list[dict[str, Any]]:
        return [
            {**dict(r), "credits": float(r["credits"])}
            | {k: int(r[k]) for k in ("requests", "pending", "accepted", "rejected")}
            for r in await self._conn.fetch(_TRANSFER_COUNTS)
        ]

    async def practice_counts(self) -> dict[str, dict[str, int]]:
        return {
            r["institution"]: {k: int(v) for k, v in r.items() if k != "institution"}
            for r in await self._conn.fetch(_PRACTICE_COUNTS)
        }

    async def feedback_counts(self) -> list[dict[str, Any]]:
        return [
            {k: (int(v) if k not in ("course_id", "language") else v) for k, v in r.items()}
            for r in await self._conn.fetch(_FEEDBACK_COUNTS)
        ]

    async def as_of_groups(self, cutoff: datetime, day: date, programme_id: str) -> list[dict[str, Any]]:
        rows = await self._conn.fetch(_AS_OF_GROUPS, cutoff, day, programme_id)
        return [{k: (int(v) if k not in ("institution", "language") else v) for k, v in r.items()} for r in rows]

    async def as_of_credits(self, cutoff: datetime) -> dict[str, dict[str, Any]]:
        return {
            r["institution"]: {
                "credits": float(r["credits"]),
                "recognitions": int(r["recognitions"]),
                "transfers_accepted": int(r["transfers_accepted"]),
            }
            for r in await self._conn.fetch(_AS_OF_CREDITS, cutoff)
        }

    async def as_of_course_languages(self, cutoff: datetime) -> dict[str, dict[str, int]]:
        rows = await self._conn.fetch(
            "SELECT coalesce(language, 'unknown') AS k, count(DISTINCT educator_id) AS educators, count(*) AS n"
            " FROM educator_courses WHERE first_completed_at < $1 GROUP BY 1",
            cutoff,
        )
        return {r["k"]: {"educators": int(r["educators"]), "course_completions": int(r["n"])} for r in rows}

    async def as_of_regions(self, day: date) -> dict[str, dict[str, int]]:
        return {
            r["region"]: {"sessions": int(r["sessions"]), "trainees": int(r["trainees"])}
            for r in await self._conn.fetch(_AS_OF_REGIONS, day)
        }

    async def as_of_programmes(self, cutoff: datetime) -> dict[str, int]:
        return {r["programme_id"]: int(r["n"]) for r in await self._conn.fetch(_AS_OF_PROGRAMMES, cutoff)}

    async def as_of_cascade(self, day: date) -> dict[str, int]:
        row = await self._conn.fetchrow(_AS_OF_CASCADE, day)
        assert row is not None
        return {"sessions": int(row["sessions"]), "trainees": int(row["trainees"])}


# As of a cutoff ($1, exclusive) whose last day is $2: the same rules as the live projections, on the
# kept history (role changes, suspensions, practice reports, session dates).
_ACTIVE_AT = """
    c.issued_at < $1 AND (c.revoked_at IS NULL OR c.revoked_at >= $1)
    AND NOT coalesce((SELECT s.suspended FROM certificate_status_changes s
                      WHERE s.certificate_id = c.certificate_id AND s.at < $1
                      ORDER BY s.at DESC, s.suspended ASC LIMIT 1), false)
"""

_AS_OF_GROUPS = f"""
WITH r AS (
    SELECT DISTINCT ON (educator_id) educator_id, changed_at, role FROM role_changes WHERE changed_at < $1
    ORDER BY educator_id, changed_at DESC, role COLLATE "C" DESC
), c AS (
    SELECT DISTINCT c.educator_id FROM certificates c WHERE c.programme_id = $3 AND {_ACTIVE_AT}
), p AS (
    SELECT DISTINCT ON (educator_id) educator_id, integrates_ai FROM practice_reports WHERE reported_on <= $2
    ORDER BY educator_id, reported_on DESC, integrates_ai DESC
), a AS (
    SELECT DISTINCT a.educator_id FROM session_attendance a JOIN training_sessions s USING (session_id)
    WHERE s.held_on <= $2
), flags AS (
    SELECT e.institution, e.language,
           coalesce(e.registered_at < $1, false) AS registered,
           coalesce(e.programme_completed_at < $1, false) AS completed,
           c.educator_id IS NOT NULL AS certified,
           coalesce(e.registered_at < $1, false)
               AND CASE WHEN r.changed_at IS NOT NULL AND (e.registered_at IS NULL OR r.changed_at >= e.registered_at)
                        THEN r.role ELSE e.role END = 'master_teacher' AS master_teacher,
           coalesce(p.integrates_ai, false) AS ai,
           a.educator_id IS NOT NULL AS trainee
    FROM educators e LEFT JOIN r USING (educator_id) LEFT JOIN c USING (educator_id)
    LEFT JOIN p USING (educator_id) LEFT JOIN a USING (educator_id)
)
SELECT institution, language,
       count(*) FILTER (WHERE registered) AS registered,
       count(*) FILTER (WHERE completed) AS completed,
       count(*) FILTER (WHERE certified) AS certified,
       count(*) FILTER (WHERE master_teacher) AS master_teachers,
       count(*) FILTER (WHERE ai) AS integrating_ai,
       count(*) FILTER (WHERE ai AND completed) AS completed_integrating,
       count(*) FILTER (WHERE trainee) AS trainees
FROM flags WHERE registered OR completed OR certified OR ai OR trainee
GROUP BY institution, language
"""

_AS_OF_CREDITS = """
SELECT institution, coalesce(sum(credits), 0) AS credits,
       count(*) FILTER (WHERE kind = 'r') AS recognitions, count(*) FILTER (WHERE kind = 't') AS transfers_accepted
FROM (
    SELECT institution, credits, 'r' AS kind FROM credit_recognitions WHERE recognized_at < $1
    UNION ALL
    SELECT institution, coalesce(credits, 0), 't' FROM credit_transfer_decisions
    WHERE decision = 'accepted' AND decided_at < $1
) x GROUP BY institution
"""

_AS_OF_REGIONS = """
SELECT s.region, count(DISTINCT s.session_id) AS sessions, count(DISTINCT a.educator_id) AS trainees
FROM training_sessions s LEFT JOIN session_attendance a USING (session_id)
WHERE s.held_on <= $1 GROUP BY s.region
"""

_AS_OF_PROGRAMMES = f"""
SELECT c.programme_id, count(*) AS n FROM certificates c WHERE c.programme_id IS NOT NULL AND {_ACTIVE_AT}
GROUP BY c.programme_id
"""

_AS_OF_CASCADE = """
SELECT (SELECT count(*) FROM training_sessions WHERE held_on <= $1) AS sessions,
       (SELECT count(DISTINCT a.educator_id) FROM session_attendance a JOIN training_sessions s USING (session_id)
        WHERE s.held_on <= $1) AS trainees
"""


_MASTER = "registered_at IS NOT NULL AND role_now = 'master_teacher'"

# Master teacher → distinct trainees (never themselves); the second generation: trainees of those
# trainees who are master teachers now, the first master teacher excluded.
_CASCADE = f"""
WITH t AS (
    SELECT DISTINCT s.master_teacher_id AS m, a.educator_id AS t
    FROM training_sessions s JOIN session_attendance a USING (session_id)
    WHERE a.educator_id <> s.master_teacher_id
), masters AS (
    SELECT educator_id AS m FROM educators WHERE {_MASTER}
    UNION SELECT master_teacher_id FROM training_sessions
), sess AS (
    SELECT master_teacher_id AS m, count(*) AS n FROM training_sessions GROUP BY 1
), firsts AS (
    SELECT t.m, count(*) AS trainees,
           count(*) FILTER (WHERE e.programme_completed_at IS NOT NULL) AS completed,
           count(*) FILTER (WHERE e.certified) AS certified
    FROM t JOIN educators e ON e.educator_id = t.t GROUP BY t.m
), second AS (
    SELECT t1.m, count(DISTINCT t2.t) AS n
    FROM t t1 JOIN educators x ON x.educator_id = t1.t
        AND x.registered_at IS NOT NULL AND x.role_now = 'master_teacher'
    JOIN t t2 ON t2.m = t1.t
    WHERE t2.t <> t1.m GROUP BY t1.m
)
SELECT masters.m AS educator_id, e.institution,
       coalesce(sess.n, 0)::int AS sessions,
       coalesce(firsts.trainees, 0)::int AS trainees,
       coalesce(firsts.completed, 0)::int AS trainees_completed,
       coalesce(firsts.certified, 0)::int AS trainees_certified,
       coalesce(second.n, 0)::int AS second_generation_reach
FROM masters JOIN educators e ON e.educator_id = masters.m
LEFT JOIN sess USING (m) LEFT JOIN firsts USING (m) LEFT JOIN second USING (m)
ORDER BY trainees DESC, sessions DESC, educator_id COLLATE "C"
"""

_CASCADE_TOTALS = """
SELECT (SELECT count(*) FROM training_sessions) AS sessions,
       count(*) AS trainees, count(*) FILTER (WHERE e.certified) AS trainees_certified
FROM educators e WHERE e.attended
"""

_CASCADE_BREAKDOWN = """
SELECT s.{field} AS k, count(DISTINCT s.session_id) AS sessions,
       count(DISTINCT a.educator_id) FILTER (WHERE a.educator_id <> s.master_teacher_id) AS trainees
FROM training_sessions s LEFT JOIN session_attendance a USING (session_id)
WHERE s.master_teacher_id = $1 GROUP BY s.{field} ORDER BY s.{field} COLLATE "C"
"""

_TRANSFER_COUNTS = """
WITH q AS (
    SELECT r.receiving_institution AS code, count(*) AS requests,
           count(*) FILTER (WHERE d.request_id IS NULL) AS pending
    FROM credit_transfer_requests r LEFT JOIN credit_transfer_decisions d USING (request_id) GROUP BY 1
), d AS (
    SELECT receiving_institution AS code,
           count(*) FILTER (WHERE decision = 'accepted') AS accepted,
           count(*) FILTER (WHERE decision = 'rejected') AS rejected,
           coalesce(sum(credits), 0) AS credits
    FROM credit_transfer_decisions GROUP BY 1
)
SELECT code AS receiving_institution, coalesce(q.requests, 0) AS requests, coalesce(q.pending, 0) AS pending,
       coalesce(d.accepted, 0) AS accepted, coalesce(d.rejected, 0) AS rejected, coalesce(d.credits, 0) AS credits
FROM q FULL JOIN d USING (code) ORDER BY code COLLATE "C"
"""

_PRACTICE_COUNTS = """
SELECT institution,
       count(*) FILTER (WHERE programme_completed_at IS NOT NULL) AS completed,
       count(*) FILTER (WHERE integrates_ai IS NOT NULL) AS reported,
       count(*) FILTER (WHERE integrates_ai) AS integrating,
       count(*) FILTER (WHERE integrates_ai AND programme_completed_at IS NOT NULL) AS completed_integrating
FROM educators WHERE programme_completed_at IS NOT NULL OR integrates_ai IS NOT NULL GROUP BY institution
"""

_FEEDBACK_COUNTS = """
SELECT course_id, language, count(*) AS ratings,
       count(*) FILTER (WHERE content_rating >= 4 AND usefulness_rating >= 4) AS rated_highly,
       sum(content_rating) AS content_sum, sum(usefulness_rating) AS usefulness_sum
FROM course_evaluations GROUP BY course_id, language ORDER BY course_id COLLATE "C", language COLLATE "C"
"""


_EDUCATOR_COUNTS = """
SELECT institution,
       count(*) FILTER (WHERE registered_at IS NOT NULL) AS registered,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND role_now = 'master_teacher') AS master_teachers,
       count(*) FILTER (WHERE programme_completed_at IS NOT NULL) AS completed_programme,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND started) AS funnel_started,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND programme_completed_at IS NOT NULL) AS funnel_completed,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND certified) AS funnel_certified,
       count(*) FILTER (WHERE attended) AS trainees_reached,
       count(*) FILTER (WHERE integrates_ai) AS integrating_ai
FROM educators {where} GROUP BY institution
"""
_COMPLETION_COUNTS = (
    "SELECT institution, sum(completions)::bigint AS completions FROM course_completion_counts {where}"
    " GROUP BY institution"
)
_CERTIFICATE_COUNTS = """
SELECT institution,
       count(*) FILTER (WHERE issued_at IS NOT NULL AND revoked_at IS NULL AND NOT suspended) AS active,
       count(*) FILTER (WHERE issued_at IS NOT NULL AND revoked_at IS NOT NULL) AS revoked,
       count(*) FILTER (WHERE issued_at IS NOT NULL AND revoked_at IS NULL AND suspended) AS suspended
FROM certificates {where} GROUP BY institution
"""
_SESSION_COUNTS = "SELECT institution, count(*) AS n FROM training_sessions {where} GROUP BY institution"
_EVALUATION_COUNTS = """
SELECT e.institution, count(*) AS ratings,
       count(*) FILTER (WHERE c.content_rating >= 4 AND c.usefulness_rating >= 4) AS highly
FROM course_evaluations c JOIN educators e USING (educator_id) {where} GROUP BY e.institution
"""


async def institution_counts(conn: Conn, institution: str | None = None) -> dict[str, dict[str, int]]:
    """Counts per institution (all, or one): educators, completions, certificates."""
    where = "WHERE institution = $1" if institution is not None else ""
    args: list[Any] = [institution] if institution is not None else []
    out: dict[str, dict[str, int]] = {}

    def row_for(code: str) -> dict[str, int]:
        return out.setdefault(code, {})

    for r in await conn.fetch(_EDUCATOR_COUNTS.format(where=where), *args):
        row_for(r["institution"]).update({k: int(v) for k, v in r.items() if k != "institution"})
    for r in await conn.fetch(_COMPLETION_COUNTS.format(where=where), *args):
        row_for(r["institution"])["completions"] = int(r["completions"])
    for r in await conn.fetch(_CERTIFICATE_COUNTS.format(where=where), *args):
        row_for(r["institution"]).update(
            certificates_active=int(r["active"]),
            certificates_revoked=int(r["revoked"]),
            certificates_suspended=int(r["suspended"]),
        )
    for r in await conn.fetch(_SESSION_COUNTS.format(where=where), *args):
        row_for(r["institution"])["training_sessions"] = int(r["n"])
    e_where = "WHERE e.institution = $1" if institution is not None else ""
    for r in await conn.fetch(_EVALUATION_COUNTS.format(where=e_where), *args):
        row_for(r["institution"]).update(course_ratings=int(r["ratings"]), courses_rated_highly=int(r["highly"]))
    return out


async def course_counts(conn: Conn, institution: str | None = None) -> list[dict[str, Any]]:
    """Per course: CourseCompleted events and distinct educators who completed it."""
    if institution is None:
        completions = await conn.fetch(
            "SELECT course_id, sum(completions)::bigint AS n FROM course_completion_counts GROUP BY course_id"
        )
        educators = await conn.fetch("SELECT course_id, count(*) AS n FROM educator_courses GROUP BY course_id")
    else:
        completions = await conn.fetch(
            "SELECT course_id, sum(completions)::bigint AS n FROM course_completion_counts"
            " WHERE institution = $1 GROUP BY course_id",
            institution,
        )
        educators = await conn.fetch(
            "SELECT c.course_id, count(*) AS n FROM educator_courses c JOIN educators e USING (educator_id)"
            " WHERE e.institution = $1 GROUP BY c.course_id",
            institution,
        )
    by_course: dict[str, dict[str, Any]] = {}
    for r in completions:
        by_course.setdefault(r["course_id"], {"course_id": r["course_id"], "completions": 0, "educators": 0})
        by_course[r["course_id"]]["completions"] = int(r["n"])
    for r in educators:
        by_course.setdefault(r["course_id"], {"course_id": r["course_id"], "completions": 0, "educators": 0})
        by_course[r["course_id"]]["educators"] = int(r["n"])
    return [by_course[k] for k in sorted(by_course)]


async def programme_counts(conn: Conn) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT programme_id,"
        " count(*) FILTER (WHERE revoked_at IS NULL AND NOT suspended) AS active,"
        " count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked,"
        " coalesce(sum(credits) FILTER (WHERE revoked_at IS NULL AND NOT suspended), 0) AS credits"
        ' FROM certificates WHERE issued_at IS NOT NULL GROUP BY programme_id ORDER BY programme_id COLLATE "C"'
    )
    return [dict(r) for r in rows]


async def recognition_totals(conn: Conn) -> tuple[int, float]:
    row = await conn.fetchrow("SELECT count(*) AS n, coalesce(sum(credits), 0) AS credits FROM credit_recognitions")
    assert row is not None
    return int(row["n"]), float(row["credits"])


async def monthly(conn: Conn, institution: str | None = None) -> dict[str, dict[str, int]]:
    """Per month ('YYYY-MM'): registrations, course completions, programme completions, issued, revoked."""
    cond = "AND institution = $1" if institution is not None else ""
    args: list[Any] = [institution] if institution is not None else []
    queries = {
        "registrations": "SELECT registered_month AS m, count(*) AS n FROM educators"
        f" WHERE registered_month IS NOT NULL {cond} GROUP BY 1",
        "course_completions": "SELECT month AS m, sum(completions)::bigint AS n FROM course_completion_counts"
        f" WHERE true {cond} GROUP BY 1",
        "programme_completions": "SELECT programme_month AS m, count(*) AS n FROM educators"
        f" WHERE programme_month IS NOT NULL {cond} GROUP BY 1",
        "certificates_issued": "SELECT issued_month AS m, count(*) AS n FROM certificates"
        f" WHERE issued_month IS NOT NULL {cond} GROUP BY 1",
        "certificates_revoked": "SELECT revoked_month AS m, count(*) AS n FROM certificates"
        f" WHERE revoked_month IS NOT NULL AND issued_at IS NOT NULL {cond} GROUP BY 1",
    }
    out: dict[str, dict[str, int]] = {}
    for measure, sql in queries.items():
        for r in await conn.fetch(sql, *args):
            out.setdefault(r["m"], {})[measure] = int(r["n"])
    return out


async def registrations_in_month(conn: Conn, month: str) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT institution, count(*) AS n FROM educators WHERE registered_month = $1"
        ' GROUP BY institution ORDER BY n DESC, institution COLLATE "C"',
        month,
    )
    return [(r["institution"], int(r["n"])) for r in rows]


async def has_institution(conn: Conn, code: str) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM educators WHERE institution = $1)"
        " OR EXISTS (SELECT 1 FROM certificates WHERE institution = $1)"
        " OR EXISTS (SELECT 1 FROM course_completion_counts WHERE institution = $1)"
        " OR EXISTS (SELECT 1 FROM training_sessions WHERE institution = $1)",
        code,
    )
    return bool(found)
