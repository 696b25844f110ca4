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

    async def claim(self, event_ids: Sequence[str]) -> set[str]:
        return await claim_many(self._conn, INBOX_CONSUMER, event_ids)


class PgProjections:
    def __init__(self, conn: Conn, rules: ProjectionRules) -> None:
        self._conn = conn
        self._rules = rules

    async def apply(self, deltas: ProjectionDeltas) -> None:
        await apply(self._conn, deltas, self._rules)


async def hold_projection_lock(conn: Conn) -> None:
    """Let a rebuild's swap wait for this transaction, and this one wait for the swap."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", PROJECTION_LOCK)


async def claim_many(conn: Conn, consumer: str, event_ids: Sequence[str]) -> set[str]:
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


async def apply(conn: Conn, deltas: ProjectionDeltas, rules: ProjectionRules) -> None:
    """Apply already-claimed events; call inside the claim's transaction (steps in `ProjectionState.apply` order)."""
    tz = rules.month_timezone
    if deltas.registrations:
        await conn.execute(_UPSERT_REGISTRATIONS, *columns(deltas.registrations, 4), tz)
    seen = deltas.educators_seen()
    if seen:
        await conn.execute(_INSERT_PLACEHOLDERS, *columns(seen, 2))
    if deltas.completions:
        ids, insts, courses, times = columns(deltas.completions, 4)
        await conn.execute(_UPSERT_EDUCATOR_COURSES, ids, courses, times)
        await conn.execute(_ADD_COMPLETION_COUNTS, insts, courses, times, tz)
    if deltas.issued:
        await conn.execute(_UPSERT_ISSUED, *columns(deltas.issued, 6), tz)
    if deltas.revoked:
        await conn.execute(_UPSERT_REVOKED, *columns(deltas.revoked, 4), tz)
    if deltas.recognitions:
        await conn.execute(_INSERT_RECOGNITIONS, *columns(deltas.recognitions, 7), tz)
    if progressed := deltas.educators_with_new_completions():
        courses = sorted(rules.course_set)
        await conn.execute(_RECOMPUTE_PROGRESS, progressed, courses, len(courses), tz)
    if certified := deltas.educators_with_certificate_changes():
        await conn.execute(_RECOMPUTE_CERTIFIED, certified, rules.programme_id)


def _month(expr: str, tz_param: str) -> str:
    return f"to_char(({expr}) AT TIME ZONE {tz_param}, 'YYYY-MM')"


# The earliest registration wins; ties are broken by (institution, role) so every order agrees.
_UPSERT_REGISTRATIONS = f"""
INSERT INTO educators AS e (educator_id, institution, role, registered_at, registered_month)
SELECT DISTINCT ON (id) id, inst, role, t, {_month("t", "$5::text")}
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, inst, role, t)
ORDER BY id, t, inst COLLATE "C", role COLLATE "C"
ON CONFLICT (educator_id) DO UPDATE SET
    institution = EXCLUDED.institution,
    role = EXCLUDED.role,
    registered_at = EXCLUDED.registered_at,
    registered_month = EXCLUDED.registered_month
WHERE e.registered_at IS NULL
   OR (EXCLUDED.registered_at, EXCLUDED.institution COLLATE "C", EXCLUDED.role COLLATE "C")
    < (e.registered_at, e.institution COLLATE "C", e.role COLLATE "C")
"""

# An educator known only from later events (registration not seen yet); institution from the event.
_INSERT_PLACEHOLDERS = """
INSERT INTO educators AS e (educator_id, institution)
SELECT DISTINCT ON (id) id, inst FROM unnest($1::text[], $2::text[]) AS u(id, inst) ORDER BY id, inst COLLATE "C"
ON CONFLICT (educator_id) DO UPDATE SET institution = EXCLUDED.institution
WHERE e.registered_at IS NULL AND EXCLUDED.institution COLLATE "C" < e.institution COLLATE "C"
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
