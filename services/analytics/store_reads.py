"""PostgreSQL adapter of the reports' read port: one read-only REPEATABLE READ transaction per
report (so its numbers always add up), and the counting queries over the projection tables. SQL only;
`domain/projection.py` holds the pure version of each query (the shapes are the same)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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


_EDUCATOR_COUNTS = """
SELECT institution,
       count(*) FILTER (WHERE registered_at IS NOT NULL) AS registered,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND role = 'master_teacher') AS master_teachers,
       count(*) FILTER (WHERE programme_completed_at IS NOT NULL) AS completed_programme,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND started) AS funnel_started,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND programme_completed_at IS NOT NULL) AS funnel_completed,
       count(*) FILTER (WHERE registered_at IS NOT NULL AND certified) AS funnel_certified
FROM educators {where} GROUP BY institution
"""
_COMPLETION_COUNTS = (
    "SELECT institution, sum(completions)::bigint AS completions FROM course_completion_counts {where}"
    " GROUP BY institution"
)
_CERTIFICATE_COUNTS = """
SELECT institution,
       count(*) FILTER (WHERE issued_at IS NOT NULL AND revoked_at IS NULL) AS active,
       count(*) FILTER (WHERE issued_at IS NOT NULL AND revoked_at IS NOT NULL) AS revoked
FROM certificates {where} GROUP BY institution
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
        row_for(r["institution"]).update(certificates_active=int(r["active"]), certificates_revoked=int(r["revoked"]))
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
        " count(*) FILTER (WHERE revoked_at IS NULL) AS active,"
        " count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked,"
        " coalesce(sum(credits) FILTER (WHERE revoked_at IS NULL), 0) AS credits"
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
        " OR EXISTS (SELECT 1 FROM course_completion_counts WHERE institution = $1)",
        code,
    )
    return bool(found)
