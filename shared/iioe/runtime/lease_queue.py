"""A PostgreSQL table used as a work queue with leases: written once, used by every queue of rows.

Why leases and tokens: a worker claims due rows with `FOR UPDATE SKIP LOCKED` (so any number of
workers and replicas share the table without taking the same row), marks them `claimed` with a
random claim token and a lease, and does the slow work (SMTP, HTTP) *outside* any transaction. If it
dies, its rows come back once the lease has expired; if it was merely slow and another worker took
over, its late `done`/`retry`/`dead` finds a different token and changes nothing.

The table needs: a text key, `status`, `attempts integer`, `next_attempt_at timestamptz`,
`claim_token uuid`, `lease_until timestamptz` (names fixed here, table and statuses configurable).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iioe.runtime.db import Conn

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    """Table, column and status names are spliced into SQL, so only plain identifiers are accepted."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not a plain lower-case identifier")
    return name


@dataclass(frozen=True)
class QueueTable:
    """Where a queue lives and what its statuses are called."""

    table: str
    key: str
    columns: Sequence[str] = ()
    """Further columns of the row handed to the worker with its claim."""
    pending: str = "pending"
    claimed: str = "sending"
    done: str = "done"
    dead: str = "dead"
    done_at: str | None = None
    """A timestamp column set to `now()` when a row is done (e.g. `sent_at`)."""
    eligible: str = ""
    """Extra SQL condition on the row (alias `q`) for it to be claimable, e.g. its webhook still exists."""
    writable: frozenset[str] = field(default_factory=frozenset)
    """Columns that `done`/`retry`/`dead` may set besides the queue's own (e.g. `last_error`)."""

    def __post_init__(self) -> None:
        for name in (self.table, self.key, *self.columns, self.pending, self.claimed, self.done, self.dead):
            _ident(name)
        for name in self.writable:
            _ident(name)
        if self.done_at is not None:
            _ident(self.done_at)


@dataclass(frozen=True)
class Claim:
    """One claimed row: only the holder of `token` can finish it; `attempts` includes this one."""

    key: str
    token: uuid.UUID
    attempts: int
    row: Mapping[str, Any]


class LeaseQueue:
    """Claim due rows; finish each as done, retry after a delay, or dead (no more attempts)."""

    def __init__(self, spec: QueueTable) -> None:
        self.spec = spec
        s = spec
        extra = f" AND ({s.eligible})" if s.eligible else ""
        returning = ", ".join(f"q.{c}" for c in (s.key, "attempts", "claim_token", *s.columns))
        # statuses are literals (validated identifiers) so the partial "due" indexes can be used
        self._claim_sql = (
            f"WITH due AS ("
            f"  SELECT q.{s.key} FROM {s.table} q"
            f"  WHERE q.status IN ('{s.pending}', '{s.claimed}') AND q.next_attempt_at <= now()"
            f"    AND (q.status = '{s.pending}' OR greatest(q.lease_until,"
            f"      pg_postmaster_start_time() + make_interval(secs => $3)) < now()){extra}"
            f"  ORDER BY q.next_attempt_at LIMIT $1 FOR UPDATE OF q SKIP LOCKED)"
            f" UPDATE {s.table} q SET status = '{s.claimed}', attempts = q.attempts + 1, claim_token = $2,"
            f"  lease_until = now() + make_interval(secs => $3)"
            f" FROM due WHERE q.{s.key} = due.{s.key}"
            f" RETURNING {returning}"
        )

    async def claim(self, conn: Conn, limit: int, lease_seconds: float) -> list[Claim]:
        """Take up to `limit` due rows (and claimed rows whose lease ran out, e.g. after a crash).

        A lease that ran out while PostgreSQL was down proves nothing about its holder, who could not
        renew it: for `lease_seconds` after the server (re)started, no expired lease is taken over, so a
        live holder gets back to the database and records its outcome first."""
        rows = await conn.fetch(self._claim_sql, limit, uuid.uuid4(), lease_seconds)
        key = self.spec.key
        return [
            Claim(key=r[key], token=r["claim_token"], attempts=r["attempts"], row={c: r[c] for c in self.spec.columns})
            for r in rows
        ]

    async def extend(self, conn: Conn, claims: Sequence[Claim], lease_seconds: float) -> int:
        """Renew the lease of claims still held (`lease_until = now() + lease_seconds`); returns how many.

        A worker heartbeats while it holds rows (a slow call, a row waiting for a slot, an outcome
        waiting for the database), so nobody takes over a row whose effect may already have happened."""
        if not claims:
            return 0
        s = self.spec
        result: str = await conn.execute(
            f"UPDATE {s.table} q SET lease_until = now() + make_interval(secs => $3)"
            f" FROM unnest($1::text[], $2::uuid[]) AS c(key, token)"
            f" WHERE q.{s.key} = c.key AND q.claim_token = c.token AND q.status = '{s.claimed}'",
            [c.key for c in claims],
            [c.token for c in claims],
            lease_seconds,
        )
        return int(result.split()[-1])

    async def done(self, conn: Conn, claim: Claim, **values: Any) -> bool:
        """Finished for good; False when the lease was lost (someone else holds the row now)."""
        stamp = {self.spec.done_at: _Now} if self.spec.done_at else {}
        return await self._finish(conn, claim, self.spec.done, {**stamp, **values})

    async def retry(self, conn: Conn, claim: Claim, after_seconds: float, **values: Any) -> bool:
        """Back to the queue, due again `after_seconds` from now (database clock)."""
        return await self._finish(conn, claim, self.spec.pending, values, after_seconds=after_seconds)

    async def dead(self, conn: Conn, claim: Claim, **values: Any) -> bool:
        """No more attempts; the row stays for operators to inspect or re-drive."""
        return await self._finish(conn, claim, self.spec.dead, values)

    async def _finish(
        self, conn: Conn, claim: Claim, status: str, values: Mapping[str, Any], *, after_seconds: float | None = None
    ) -> bool:
        s = self.spec
        sets = [f"status = '{status}'", "claim_token = NULL", "lease_until = NULL"]
        params: list[Any] = [claim.key, claim.token]
        if after_seconds is not None:
            params.append(after_seconds)
            sets.append(f"next_attempt_at = now() + make_interval(secs => ${len(params)})")
        for column, value in values.items():
            if column not in s.writable and column != s.done_at:
                raise ValueError(f"column {column!r} of {s.table} is not writable by the queue")
            if value is _Now:
                sets.append(f"{column} = now()")
            else:
                params.append(value)
                sets.append(f"{column} = ${len(params)}")
        result: str = await conn.execute(
            f"UPDATE {s.table} SET {', '.join(sets)} WHERE {s.key} = $1 AND claim_token = $2", *params
        )
        return result.endswith(" 1")


class _Now:
    """Marker: set the column to the database's `now()`."""
