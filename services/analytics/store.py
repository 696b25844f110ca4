"""PostgreSQL adapter of the projections (schema `analytics`): SQL only.

The projection rules of `domain/` run here as set-based SQL, for speed: writes take arrays and use
`unnest`, so one statement per table handles a whole batch; rows that share a key within a batch
are folded in SQL (`DISTINCT ON`, `GROUP BY`) before the upsert, and months are computed with
`AT TIME ZONE`. `domain/projection.py` is the pure version of the same rules;
`tests/test_store_matches_domain.py` checks this SQL against it on generated event sequences.
Text tie-breaks use `COLLATE "C"` (code-point order, as in Python) whatever the database's locale.

`PgProjectionUnitOfWork` implements the use case's port; `PgProjectionReader` the reports' port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from iioe.runtime.db import Conn
from iioe.runtime.inbox import claim_many
from services.analytics.domain import ProjectionDeltas, ProjectionRules

PROJECTION_LOCK = 0x11_0E_A4A1
"""Advisory lock: live transactions hold it shared, a rebuild's final swap holds it exclusively."""
REBUILD_LOCK = 0x11_0E_A4A2
"""Advisory lock held by a running rebuild, so two rebuilds never race."""
INBOX_CONSUMER = "analytics-projections"
"""Inbox key of the projections (one per schema, so a rebuild has its own inbox)."""


def columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into `width` column lists (for `unnest($1::text[], ...)`)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


class PgProjectionUnitOfWork:
    """The use case's unit of work on PostgreSQL: each `transaction()` is one database transaction.

    `begin` yields a connection inside a transaction (the runtime's `transaction`, or a rebuild's);
    `hold_lock` takes the projection lock shared, so a rebuild's swap waits for it and it for the swap.
    """

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[Any]],
        rules: ProjectionRules,
        *,
        hold_lock: bool = True,
    ) -> None:
        self._begin = begin
        self._rules = rules
        self._hold_lock = hold_lock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgProjectionTransaction]:
        async with self._begin() as conn:
            if self._hold_lock:
                await hold_projection_lock(conn)
            yield PgProjectionTransaction(conn, self._rules)


class PgProjectionTransaction:
    def __init__(self, conn: Conn, rules: ProjectionRules) -> None:
        self._conn = conn
        self._rules = rules

    @property
    def projections(self) -> PgProjections:
        return PgProjections(self._conn, self._rules)

    @property
    def inbox(self) -> PgInbox:
        return PgInbox(self._conn)


class PgInbox:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def claim(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        return await claim_many(self._conn, INBOX_CONSUMER, keys)


class PgProjections:
    def __init__(self, conn: Conn, rules: ProjectionRules) -> None:
        self._conn = conn
        self._rules = rules

    async def apply(self, deltas: ProjectionDeltas) -> None:
        await apply(self._conn, deltas, self._rules)


async def hold_projection_lock(conn: Conn) -> None:
    """Let a rebuild's swap wait for this transaction, and this one wait for the swap."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", PROJECTION_LOCK)


async def apply(conn: Conn, deltas: ProjectionDeltas, rules: ProjectionRules) -> None:
    """Apply already-claimed events; call inside the claim's transaction (steps in `ProjectionState.apply` order)."""
    tz = rules.month_timezone
    if deltas.registrations:
        await conn.execute(_UPSERT_REGISTRATIONS, *columns(deltas.registrations, 5), tz)
    seen = deltas.educators_seen()
    if seen:
        await conn.execute(_INSERT_PLACEHOLDERS, *columns(seen, 2))
    if deltas.completions:
        ids, insts, courses, times, languages = columns(deltas.completions, 5)
        await conn.execute(_UPSERT_EDUCATOR_COURSES, ids, courses, times, languages)
        await conn.execute(_ADD_COMPLETION_COUNTS, insts, courses, times, tz)
    if deltas.issued:
        await conn.execute(_UPSERT_ISSUED, *columns(deltas.issued, 6), tz)
    if deltas.revoked:
        await conn.execute(_UPSERT_REVOKED, *columns(deltas.revoked, 4), tz)
    if deltas.recognitions:
        await conn.execute(_INSERT_RECOGNITIONS, *columns(deltas.recognitions, 7), tz)
    await _apply_v11(conn, deltas, tz)
    if progressed := deltas.educators_with_new_completions():
        courses = sorted(rules.course_set)
        await conn.execute(_RECOMPUTE_PROGRESS, progressed, courses, len(courses), tz)
    if certified := deltas.educators_with_certificate_changes():
        await conn.execute(_RECOMPUTE_CERTIFIED, certified, rules.programme_id)
    if roles := deltas.educators_with_role_changes():
        await conn.execute(_RECOMPUTE_ROLE, roles)
    if reporters := deltas.educators_with_practice_reports():
        await conn.execute(_RECOMPUTE_INTEGRATES_AI, reporters)


async def _apply_v11(conn: Conn, deltas: ProjectionDeltas, tz: str) -> None:
    """The facts of the contract v1.1 types (in `ProjectionState._apply_v11` order)."""
    if deltas.role_changes:
        ids, _, roles, times = columns(deltas.role_changes, 4)
        await conn.execute(_INSERT_ROLE_CHANGES, ids, times, roles)
    if deltas.status_changes:
        certs, edus, insts, suspended, times = columns(deltas.status_changes, 5)
        await conn.execute(_INSERT_CERTIFICATE_PLACEHOLDERS, certs, edus, insts)
        await conn.execute(_INSERT_STATUS_CHANGES, certs, times, suspended)
        await conn.execute(_RECOMPUTE_SUSPENDED, sorted(set(certs)))
    if deltas.sessions:
        await conn.execute(_UPSERT_SESSIONS, *columns(deltas.sessions, 7))
    if deltas.attendances:
        sessions, edus, _ = columns(deltas.attendances, 3)
        await conn.execute(_INSERT_ATTENDANCE, sessions, edus)
        await conn.execute("UPDATE educators SET attended = true WHERE educator_id = ANY($1::text[])", edus)
    if deltas.practice_reports:
        ids, _, ai, days = columns(deltas.practice_reports, 4)
        await conn.execute(_INSERT_PRACTICE_REPORTS, ids, days, ai)
    if deltas.evaluations:
        await conn.execute(_UPSERT_EVALUATIONS, *columns(deltas.evaluations, 8))
    if deltas.transfer_requests:
        await conn.execute(_UPSERT_TRANSFER_REQUESTS, *columns(deltas.transfer_requests, 6))
    if deltas.transfer_decisions:
        await conn.execute(_UPSERT_TRANSFER_DECISIONS, *columns(deltas.transfer_decisions, 7))


def _month(expr: str, tz_param: str) -> str:
    return f"to_char(({expr}) AT TIME ZONE {tz_param}, 'YYYY-MM')"


# The earliest registration wins; ties are broken by (institution, role, language) so every order agrees.
_UPSERT_REGISTRATIONS = f"""
INSERT INTO educators AS e (educator_id, institution, role, registered_at, language, registered_month)
SELECT DISTINCT ON (id) id, inst, role, t, lang, {_month("t", "$6::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::text[]) AS u(id, inst, role, t, lang)
ORDER BY id, t, inst COLLATE "C", role COLLATE "C", lang COLLATE "C"
ON CONFLICT (educator_id) DO UPDATE SET
    institution = EXCLUDED.institution,
    role = EXCLUDED.role,
    registered_at = EXCLUDED.registered_at,
    language = EXCLUDED.language,
    registered_month = EXCLUDED.registered_month
WHERE e.registered_at IS NULL
   OR (EXCLUDED.registered_at, EXCLUDED.institution COLLATE "C", EXCLUDED.role COLLATE "C",
       EXCLUDED.language COLLATE "C")
    < (e.registered_at, e.institution COLLATE "C", e.role COLLATE "C", coalesce(e.language, '') COLLATE "C")
"""

# An educator known only from later events (registration not seen yet); institution from the event.
_INSERT_PLACEHOLDERS = """
INSERT INTO educators AS e (educator_id, institution)
SELECT DISTINCT ON (id) id, inst FROM unnest($1::text[], $2::text[]) AS u(id, inst) ORDER BY id, inst COLLATE "C"
ON CONFLICT (educator_id) DO UPDATE SET institution = EXCLUDED.institution
WHERE e.registered_at IS NULL AND EXCLUDED.institution COLLATE "C" < e.institution COLLATE "C"
"""

# The first completion wins, with its language (the same instant: the smaller language, none first).
_UPSERT_EDUCATOR_COURSES = """
INSERT INTO educator_courses AS c (educator_id, course_id, first_completed_at, language)
SELECT DISTINCT ON (id, course) id, course, t, lang
FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[]) AS u(id, course, t, lang)
ORDER BY id, course, t, coalesce(lang, '') COLLATE "C"
ON CONFLICT (educator_id, course_id) DO UPDATE SET
    first_completed_at = EXCLUDED.first_completed_at,
    language = EXCLUDED.language
WHERE (EXCLUDED.first_completed_at, coalesce(EXCLUDED.language, '') COLLATE "C")
    < (c.first_completed_at, coalesce(c.language, '') COLLATE "C")
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
      AND c.issued_at IS NOT NULL AND c.revoked_at IS NULL AND NOT c.suspended)
WHERE e.educator_id = ANY($1::text[])
"""

# The latest role change not older than the registration; else the registration's role.
_RECOMPUTE_ROLE = """
UPDATE educators e SET role_now = CASE
    WHEN l.changed_at IS NOT NULL AND (e.registered_at IS NULL OR l.changed_at >= e.registered_at) THEN l.role
    ELSE e.role END
FROM unnest($1::text[]) AS t(id)
LEFT JOIN LATERAL (
    SELECT r.changed_at, r.role FROM role_changes r WHERE r.educator_id = t.id
    ORDER BY r.changed_at DESC, r.role COLLATE "C" DESC LIMIT 1
) l ON true
WHERE e.educator_id = t.id
"""

_RECOMPUTE_INTEGRATES_AI = """
UPDATE educators e SET integrates_ai = (
    SELECT p.integrates_ai FROM practice_reports p WHERE p.educator_id = e.educator_id
    ORDER BY p.reported_on DESC, p.integrates_ai DESC LIMIT 1)
WHERE e.educator_id = ANY($1::text[])
"""

_INSERT_ROLE_CHANGES = """
INSERT INTO role_changes (educator_id, changed_at, role)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[]) ON CONFLICT DO NOTHING
"""

_INSERT_CERTIFICATE_PLACEHOLDERS = """
INSERT INTO certificates (certificate_id, educator_id, institution)
SELECT DISTINCT ON (id) id, edu, inst FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, edu, inst)
ON CONFLICT DO NOTHING
"""

_INSERT_STATUS_CHANGES = """
INSERT INTO certificate_status_changes (certificate_id, at, suspended)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::boolean[]) ON CONFLICT DO NOTHING
"""

# The latest change decides; at the same instant a reinstatement (false) wins.
_RECOMPUTE_SUSPENDED = """
UPDATE certificates c SET suspended = (
    SELECT s.suspended FROM certificate_status_changes s WHERE s.certificate_id = c.certificate_id
    ORDER BY s.at DESC, s.suspended ASC LIMIT 1)
WHERE c.certificate_id = ANY($1::text[])
"""

_SESSION_KEY = (
    '{t}.held_on, {t}.master_teacher_id COLLATE "C", {t}.institution COLLATE "C", {t}.region COLLATE "C",'
    ' {t}.mode COLLATE "C", {t}.language COLLATE "C"'
)

_UPSERT_SESSIONS = f"""
INSERT INTO training_sessions AS s (session_id, institution, master_teacher_id, region, mode, held_on, language)
SELECT DISTINCT ON (session_id) *
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[], $7::text[])
    AS u(session_id, institution, master_teacher_id, region, mode, held_on, language)
ORDER BY session_id, {_SESSION_KEY.format(t="u")}
ON CONFLICT (session_id) DO UPDATE SET
    institution = EXCLUDED.institution,
    master_teacher_id = EXCLUDED.master_teacher_id,
    region = EXCLUDED.region,
    mode = EXCLUDED.mode,
    held_on = EXCLUDED.held_on,
    language = EXCLUDED.language
WHERE ({_SESSION_KEY.format(t="EXCLUDED")}) < ({_SESSION_KEY.format(t="s")})
"""

_INSERT_ATTENDANCE = """
INSERT INTO session_attendance (session_id, educator_id)
SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING
"""

_INSERT_PRACTICE_REPORTS = """
INSERT INTO practice_reports (educator_id, reported_on, integrates_ai)
SELECT * FROM unnest($1::text[], $2::date[], $3::boolean[]) ON CONFLICT DO NOTHING
"""

# The latest evaluation by CloudEvent time wins (ties: the greater event id).
_UPSERT_EVALUATIONS = """
INSERT INTO course_evaluations AS c (educator_id, institution, course_id, language, content_rating,
                                     usefulness_rating, evaluated_at, event_id)
SELECT DISTINCT ON (edu, course) *
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::smallint[],
            $7::timestamptz[], $8::text[]) AS u(edu, inst, course, lang, content, usefulness, t, event_id)
ORDER BY edu, course, t DESC, event_id COLLATE "C" DESC
ON CONFLICT (educator_id, course_id) DO UPDATE SET
    institution = EXCLUDED.institution,
    language = EXCLUDED.language,
    content_rating = EXCLUDED.content_rating,
    usefulness_rating = EXCLUDED.usefulness_rating,
    evaluated_at = EXCLUDED.evaluated_at,
    event_id = EXCLUDED.event_id
WHERE (EXCLUDED.evaluated_at, EXCLUDED.event_id COLLATE "C") > (c.evaluated_at, c.event_id COLLATE "C")
"""

_UPSERT_TRANSFER_REQUESTS = """
INSERT INTO credit_transfer_requests AS r (request_id, educator_id, institution, certificate_id,
                                           receiving_institution, requested_at)
SELECT DISTINCT ON (id) *
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[])
    AS u(id, edu, inst, cert, recv, t)
ORDER BY id, t, recv COLLATE "C"
ON CONFLICT (request_id) DO UPDATE SET
    educator_id = EXCLUDED.educator_id,
    institution = EXCLUDED.institution,
    certificate_id = EXCLUDED.certificate_id,
    receiving_institution = EXCLUDED.receiving_institution,
    requested_at = EXCLUDED.requested_at
WHERE (EXCLUDED.requested_at, EXCLUDED.receiving_institution COLLATE "C")
    < (r.requested_at, r.receiving_institution COLLATE "C")
"""

# The latest decision wins (ties: the greater decision, receiving institution, credits).
_UPSERT_TRANSFER_DECISIONS = """
INSERT INTO credit_transfer_decisions AS d (request_id, educator_id, institution, receiving_institution,
                                            decision, credits, decided_at)
SELECT DISTINCT ON (id) *
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::timestamptz[])
    AS u(id, edu, inst, recv, decision, credits, t)
ORDER BY id, t DESC, decision COLLATE "C" DESC, recv COLLATE "C" DESC, coalesce(credits, -1) DESC
ON CONFLICT (request_id) DO UPDATE SET
    educator_id = EXCLUDED.educator_id,
    institution = EXCLUDED.institution,
    receiving_institution = EXCLUDED.receiving_institution,
    decision = EXCLUDED.decision,
    credits = EXCLUDED.credits,
    decided_at = EXCLUDED.decided_at
WHERE (EXCLUDED.decided_at, EXCLUDED.decision COLLATE "C", EXCLUDED.receiving_institution COLLATE "C",
       coalesce(EXCLUDED.credits, -1))
    > (d.decided_at, d.decision COLLATE "C", d.receiving_institution COLLATE "C", coalesce(d.credits, -1))
"""
