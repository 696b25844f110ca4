"""PostgreSQL access for the projections (schema `analytics`): set-based writes and report reads.

Writes take arrays and use `unnest`, so one statement per table handles a whole batch; rows
that share a key within a batch are folded in SQL (`DISTINCT ON`, `GROUP BY`) before the upsert.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from services.analytics.projections import EventColumns, ProjectionRules, columns

PROJECTION_LOCK = 0x11_0E_A4A1
"""Advisory lock: live transactions hold it shared, a rebuild's final swap holds it exclusively."""
REBUILD_LOCK = 0x11_0E_A4A2
"""Advisory lock held by a running rebuild, so two rebuilds never race."""
INBOX_CONSUMER = "analytics-projections"
"""Inbox key of the projections (one per schema, so a rebuild has its own inbox)."""


async def hold_projection_lock(conn: asyncpg.Connection) -> None:
    """Let a rebuild's swap wait for this transaction, and this one wait for the swap."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", PROJECTION_LOCK)


async def claim_many(conn: asyncpg.Connection, consumer: str, event_ids: Sequence[str]) -> set[str]:
    """The inbox for a batch: the ids never seen before (recorded now, in the caller's transaction)."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO inbox (consumer, event_id) SELECT $1, x FROM unnest($2::text[]) AS x"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        list(dict.fromkeys(event_ids)),
    )
    return {r["event_id"] for r in rows}


async def apply(conn: asyncpg.Connection, cols: EventColumns, rules: ProjectionRules) -> None:
    """Apply already-claimed events; call inside the claim's transaction."""
    tz = rules.month_timezone
    touched_by_courses: set[str] = set()
    touched_by_certificates: set[str] = set()

    if cols.registrations:
        ids, insts, roles, times = columns(cols.registrations, 4)
        await conn.execute(_UPSERT_REGISTRATIONS, ids, insts, roles, times, tz)

    placeholders = [(e, i) for e, i, _, _ in cols.completions]
    placeholders += [(e, i) for _, e, i, _, _, _ in cols.issued]
    placeholders += [(e, i) for _, e, i, _ in cols.revoked]
    if placeholders:
        ids, insts = columns(placeholders, 2)
        await conn.execute(_INSERT_PLACEHOLDERS, ids, insts)

    if cols.completions:
        ids, insts, courses, times = columns(cols.completions, 4)
        await conn.execute(_UPSERT_EDUCATOR_COURSES, ids, courses, times)
        await conn.execute(_ADD_COMPLETION_COUNTS, insts, courses, times, tz)
        touched_by_courses.update(ids)

    if cols.issued:
        cert, edu, inst, prog, credits, times = columns(cols.issued, 6)
        await conn.execute(_UPSERT_ISSUED, cert, edu, inst, prog, credits, times, tz)
        touched_by_certificates.update(edu)
    if cols.revoked:
        cert, edu, inst, times = columns(cols.revoked, 4)
        await conn.execute(_UPSERT_REVOKED, cert, edu, inst, times, tz)
        touched_by_certificates.update(edu)
    if cols.recognitions:
        await conn.execute(_INSERT_RECOGNITIONS, *columns(cols.recognitions, 7), tz)

    if touched_by_courses:
        courses = sorted(set(rules.programme_courses))
        await conn.execute(_RECOMPUTE_PROGRESS, sorted(touched_by_courses), courses, len(courses), tz)
    if touched_by_certificates:
        await conn.execute(_RECOMPUTE_CERTIFIED, sorted(touched_by_certificates), rules.programme_id)


def _month(expr: str, tz_param: str) -> str:
    return f"to_char(({expr}) AT TIME ZONE {tz_param}, 'YYYY-MM')"


# The earliest registration wins; ties are broken by (institution, role) so every order agrees.
_UPSERT_REGISTRATIONS = f"""
INSERT INTO educators AS e (educator_id, institution, role, registered_at, registered_month)
SELECT DISTINCT ON (id) id, inst, role, t, {_month("t", "$5::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, inst, role, t)
ORDER BY id, t, inst, role
ON CONFLICT (educator_id) DO UPDATE SET
    institution = EXCLUDED.institution,
    role = EXCLUDED.role,
    registered_at = EXCLUDED.registered_at,
    registered_month = EXCLUDED.registered_month
WHERE e.registered_at IS NULL
   OR (EXCLUDED.registered_at, EXCLUDED.institution, EXCLUDED.role) < (e.registered_at, e.institution, e.role)
"""

# An educator known only from later events (registration not seen yet); institution from the event.
_INSERT_PLACEHOLDERS = """
INSERT INTO educators AS e (educator_id, institution)
SELECT DISTINCT ON (id) id, inst FROM unnest($1::text[], $2::text[]) AS u(id, inst) ORDER BY id, inst
ON CONFLICT (educator_id) DO UPDATE SET institution = EXCLUDED.institution
WHERE e.registered_at IS NULL AND EXCLUDED.institution < e.institution
"""

_UPSERT_EDUCATOR_COURSES = """
INSERT INTO educator_courses AS c (educator_id, course_id, first_completed_at)
SELECT id, course, min(t) FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(id, course, t)
GROUP BY id, course
ON CONFLICT (educator_id, course_id) DO UPDATE SET first_completed_at = EXCLUDED.first_completed_at
WHERE EXCLUDED.first_completed_at < c.first_completed_at
"""

_ADD_COMPLETION_COUNTS = f"""
INSERT INTO course_completion_counts AS c (institution, course_id, month, completions)
SELECT inst, course, {_month("t", "$4::text")} AS month, count(*)
FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS u(inst, course, t)
GROUP BY inst, course, month
ON CONFLICT (institution, course_id, month) DO UPDATE SET completions = c.completions + EXCLUDED.completions
"""

_UPSERT_ISSUED = f"""
INSERT INTO certificates AS c (certificate_id, educator_id, institution, programme_id, credits, issued_at, issued_month)
SELECT DISTINCT ON (id) id, edu, inst, prog, credits, t, {_month("t", "$7::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::timestamptz[])
    AS u(id, edu, inst, prog, credits, t)
ORDER BY id, t
ON CONFLICT (certificate_id) DO UPDATE SET
    educator_id = EXCLUDED.educator_id,
    institution = EXCLUDED.institution,
    programme_id = EXCLUDED.programme_id,
    credits = EXCLUDED.credits,
    issued_at = EXCLUDED.issued_at,
    issued_month = EXCLUDED.issued_month
WHERE c.issued_at IS NULL OR EXCLUDED.issued_at < c.issued_at
"""

_UPSERT_REVOKED = f"""
INSERT INTO certificates AS c (certificate_id, educator_id, institution, revoked_at, revoked_month)
SELECT DISTINCT ON (id) id, edu, inst, t, {_month("t", "$5::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, edu, inst, t)
ORDER BY id, t
ON CONFLICT (certificate_id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at, revoked_month = EXCLUDED.revoked_month
WHERE c.revoked_at IS NULL OR EXCLUDED.revoked_at < c.revoked_at
"""

_INSERT_RECOGNITIONS = f"""
INSERT INTO credit_recognitions (recognition_id, certificate_id, educator_id, institution,
                                 receiving_institution, credits, recognized_at, month)
SELECT DISTINCT ON (id) id, cert, edu, inst, recv, credits, t, {_month("t", "$8::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::timestamptz[])
    AS u(id, cert, edu, inst, recv, credits, t)
ORDER BY id, t
ON CONFLICT (recognition_id) DO NOTHING
"""

# Recomputed from the facts for each touched educator: exact whatever the arrival order.
_RECOMPUTE_PROGRESS = f"""
UPDATE educators e SET
    started = true,
    programme_courses_done = s.done,
    programme_completed_at = CASE WHEN s.done = $3 THEN s.last END,
    programme_month = CASE WHEN s.done = $3 THEN {_month("s.last", "$4::text")} END
FROM (
    SELECT educator_id,
           count(*) FILTER (WHERE course_id = ANY($2::text[])) AS done,
           max(first_completed_at) FILTER (WHERE course_id = ANY($2::text[])) AS last
    FROM educator_courses WHERE educator_id = ANY($1::text[]) GROUP BY educator_id
) s
WHERE e.educator_id = s.educator_id
"""

_RECOMPUTE_CERTIFIED = """
UPDATE educators e SET certified = EXISTS (
    SELECT 1 FROM certificates c
    WHERE c.educator_id = e.educator_id AND c.programme_id = $2
      AND c.issued_at IS NOT NULL AND c.revoked_at IS NULL)
WHERE e.educator_id = ANY($1::text[])
"""


# ---------------------------------------------------------------------------------- reads --

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


async def institution_counts(conn: asyncpg.Connection, institution: str | None = None) -> dict[str, dict[str, int]]:
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


async def course_counts(conn: asyncpg.Connection, institution: str | None = None) -> list[dict[str, Any]]:
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


async def programme_counts(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT programme_id,"
        " count(*) FILTER (WHERE revoked_at IS NULL) AS active,"
        " count(*) FILTER (WHERE revoked_at IS NOT NULL) AS revoked,"
        " coalesce(sum(credits) FILTER (WHERE revoked_at IS NULL), 0) AS credits"
        " FROM certificates WHERE issued_at IS NOT NULL GROUP BY programme_id ORDER BY programme_id"
    )
    return [dict(r) for r in rows]


async def recognition_totals(conn: asyncpg.Connection) -> tuple[int, float]:
    row = await conn.fetchrow("SELECT count(*) AS n, coalesce(sum(credits), 0) AS credits FROM credit_recognitions")
    assert row is not None
    return int(row["n"]), float(row["credits"])


async def monthly(conn: asyncpg.Connection, institution: str | None = None) -> dict[str, dict[str, int]]:
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


async def registrations_in_month(conn: asyncpg.Connection, month: str) -> list[tuple[str, int]]:
    rows = await conn.fetch(
        "SELECT institution, count(*) AS n FROM educators WHERE registered_month = $1"
        " GROUP BY institution ORDER BY n DESC, institution",
        month,
    )
    return [(r["institution"], int(r["n"])) for r in rows]


async def has_institution(conn: asyncpg.Connection, code: str) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM educators WHERE institution = $1)"
        " OR EXISTS (SELECT 1 FROM certificates WHERE institution = $1)"
        " OR EXISTS (SELECT 1 FROM course_completion_counts WHERE institution = $1)",
        code,
    )
    return bool(found)
