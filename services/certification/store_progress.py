"""PostgreSQL repository of educators, their course records and the completions parked until registration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.certification.domain import Completion, Educator, PendingCompletion
from services.certification.store_conn import Conn


@dataclass(frozen=True)
class PostgresProgress:
    conn: Conn
    _locked: set[str] = field(default_factory=set)
    """Educators locked in this transaction (transaction-level advisory locks are held until its end)."""

    async def lock(self, educator_id: str) -> None:
        """An advisory lock rather than `SELECT … FOR UPDATE`: a completion may arrive before the educator row
        exists, and a registration racing it must still see the parked completion afterwards."""
        if educator_id in self._locked:
            return
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", _lock_key(educator_id))
        self._locked.add(educator_id)

    async def lock_all(self, educator_ids: Sequence[str]) -> None:
        todo = sorted(set(educator_ids) - self._locked)
        if not todo:
            return
        # WITH ORDINALITY + ORDER BY: the locks are taken in the sorted order of the array, one after another
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))"
            " FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            [_lock_key(e) for e in todo],
        )
        self._locked.update(todo)

    async def add_educator(self, educator: Educator) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO educators (educator_id, institution, language, role, registered_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (educator_id) DO NOTHING RETURNING 1",
            educator.educator_id,
            educator.institution,
            educator.language,
            educator.role,
            educator.registered_at,
        )
        return inserted is not None

    async def get_educator(self, educator_id: str) -> Educator | None:
        row = await self.conn.fetchrow(
            "SELECT educator_id, institution, language, role, registered_at FROM educators WHERE educator_id = $1",
            educator_id,
        )
        return Educator(**dict(row)) if row else None

    async def completions(self, educator_id: str) -> dict[str, Completion]:
        rows = await self.conn.fetch(
            "SELECT course_id, best_score, attempts, first_completed_at, best_completed_at FROM completions"
            " WHERE educator_id = $1",
            educator_id,
        )
        return {r["course_id"]: Completion(**dict(r)) for r in rows}

    async def save_completion(self, educator_id: str, completion: Completion) -> None:
        await self.save_completions([(educator_id, completion)])

    async def save_completions(self, records: Sequence[tuple[str, Completion]]) -> None:
        """Store course records as decided (insert or replace), pipelined in one `executemany`."""
        await self.conn.executemany(
            _SAVE_COMPLETION,
            [(e, c.course_id, c.best_score, c.attempts, c.first_completed_at, c.best_completed_at) for e, c in records],
        )

    async def park(self, pending: PendingCompletion) -> None:
        await self.conn.execute(
            "INSERT INTO pending_completions (event_id, educator_id, institution, course_id, score, completed_at,"
            " subject, raw, durable, stream, stream_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            " ON CONFLICT (event_id) DO NOTHING",
            pending.event_id,
            pending.educator_id,
            pending.institution,
            pending.course_id,
            pending.score,
            pending.completed_at,
            pending.subject,
            pending.raw,
            pending.durable,
            pending.stream,
            pending.stream_seq,
        )

    async def take_pending(self, educator_id: str) -> list[PendingCompletion]:
        rows = await self.conn.fetch(
            "DELETE FROM pending_completions WHERE educator_id = $1 RETURNING event_id, educator_id, institution,"
            " course_id, score, completed_at, subject, raw, durable, stream, stream_seq",
            educator_id,
        )
        return [PendingCompletion(**{**dict(r), "raw": bytes(r["raw"])}) for r in rows]

    async def take_expired_pending(self, parked_before: datetime, limit: int) -> list[PendingCompletion]:
        rows = await self.conn.fetch(
            "DELETE FROM pending_completions WHERE event_id IN (SELECT event_id FROM pending_completions"
            " WHERE received_at < $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING event_id, educator_id, institution, course_id, score, completed_at, subject, raw, durable,"
            " stream, stream_seq",
            parked_before,
            limit,
        )
        return [PendingCompletion(**{**dict(r), "raw": bytes(r["raw"])}) for r in rows]

    async def count_pending(self, educator_id: str) -> int:
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM pending_completions WHERE educator_id = $1", educator_id
        )
        return count


_SAVE_COMPLETION = (
    "INSERT INTO completions (educator_id, course_id, best_score, attempts, first_completed_at,"
    " best_completed_at) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (educator_id, course_id) DO UPDATE SET best_score = EXCLUDED.best_score,"
    " attempts = EXCLUDED.attempts, first_completed_at = EXCLUDED.first_completed_at,"
    " best_completed_at = EXCLUDED.best_completed_at, updated_at = now()"
)


def _lock_key(educator_id: str) -> str:
    return f"certification:educator:{educator_id}"
