"""PostgreSQL adapter of the registration unit of work (schema `registration`): SQL only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from iioe.runtime.db import Conn
from iioe.runtime.outbox import NOTIFY_CHANNEL_PREFIX, OutboxMessage, enqueue_event, outbox_columns, outbox_message
from services.registration.domain import Educator
from services.registration.ports import EducatorQuery, NewRegistration

_COLUMNS = "educator_id, institution, full_name, email, language, role, registered_at, erased_at"
# Many registrations, one statement: the educators that are new, and the outbox rows of exactly those.
# Inserted in (institution, e-mail key) order, so concurrent batches take the unique index's locks in
# one order and cannot deadlock; the first of equal keys in the batch (`n`) wins.
_REGISTER_ALL_SQL = (
    "WITH new AS ("
    " INSERT INTO educators (educator_id, institution, email_key, email, full_name, language, role, registered_at)"
    " SELECT e.educator_id, e.institution, e.email_key, e.email, e.full_name, e.language, e.role, e.registered_at"
    " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
    " $8::timestamptz[]) WITH ORDINALITY"
    " AS e(educator_id, institution, email_key, email, full_name, language, role, registered_at, n)"
    " ORDER BY e.institution, e.email_key, e.n"
    " ON CONFLICT (institution, email_key) DO NOTHING RETURNING educator_id),"
    " staged AS ("
    " INSERT INTO outbox (event_id, subject, payload, headers)"
    " SELECT m.event_id, m.subject, m.payload, m.headers::jsonb"
    " FROM unnest($9::text[], $10::text[], $11::text[], $12::bytea[], $13::text[]) WITH ORDINALITY"
    " AS m(educator_id, event_id, subject, payload, headers, n)"
    " WHERE m.educator_id IN (SELECT educator_id FROM new) ORDER BY m.n"
    " ON CONFLICT (event_id) DO NOTHING RETURNING 1),"
    " notified AS ("
    f" SELECT pg_notify('{NOTIFY_CHANNEL_PREFIX}' || current_schema(), '') FROM (SELECT 1 FROM staged LIMIT 1) AS s)"
    " SELECT educator_id, (SELECT count(*) FROM notified) AS notified FROM new"
)
_REGISTERED_IDS_SQL = (
    "SELECT k.n, e.educator_id FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(institution, email_key, n)"
    " JOIN educators e ON e.institution = k.institution AND e.email_key = k.email_key"
)


class PostgresEducators:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def add(self, educator: Educator) -> bool:
        """Insert unless (institution, e-mail key) exists; a concurrent insert of it is waited for."""
        inserted = await self._conn.fetchval(
            "INSERT INTO educators (educator_id, institution, email_key, email, full_name, language, role,"
            " registered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT (institution, email_key) DO NOTHING RETURNING educator_id",
            educator.educator_id,
            educator.institution,
            educator.email_key,
            educator.email,
            educator.full_name,
            educator.language,
            educator.role,
            educator.registered_at,
        )
        return inserted is not None

    async def id_for_email(self, institution: str, email_key: str) -> str | None:
        found: str | None = await self._conn.fetchval(
            "SELECT educator_id FROM educators WHERE institution = $1 AND email_key = $2", institution, email_key
        )
        return found

    async def get(self, educator_id: str, *, lock: bool = False) -> Educator | None:
        lock_clause = " FOR UPDATE" if lock else ""
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM educators WHERE educator_id = $1{lock_clause}", educator_id
        )
        return Educator(**dict(row)) if row else None

    async def update(self, educator: Educator) -> None:
        await self._conn.execute(
            "UPDATE educators SET role = $2, full_name = $3, email = $4, email_key = $5, erased_at = $6"
            " WHERE educator_id = $1",
            educator.educator_id,
            educator.role,
            educator.full_name,
            educator.email,
            educator.email_key,
            educator.erased_at,
        )

    async def search(self, query: EducatorQuery) -> tuple[int, list[Educator]]:
        where = ["erased_at IS NULL"]
        args: list[Any] = []
        if query.institution is not None:
            args.append(query.institution)
            where.append(f"institution = ${len(args)}")
        if query.role is not None:
            args.append(query.role)
            where.append(f"role = ${len(args)}")
        if query.q:
            args.append("%" + query.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            where.append(f"(full_name ILIKE ${len(args)} OR email ILIKE ${len(args)})")
        condition = " AND ".join(where)
        total: int = await self._conn.fetchval(f"SELECT count(*) FROM educators WHERE {condition}", *args)
        args += [query.limit, query.offset]
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM educators WHERE {condition}"
            f" ORDER BY registered_at, educator_id LIMIT ${len(args) - 1} OFFSET ${len(args)}",
            *args,
        )
        return total, [Educator(**dict(row)) for row in rows]


class PostgresRecords:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def add(self, kind: str, record_id: str, *, institution: str, data: dict[str, Any], actor: str) -> bool:
        inserted = await self._conn.fetchval(
            "INSERT INTO records (kind, record_id, institution, data, recorded_by) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (kind, record_id) DO NOTHING RETURNING record_id",
            kind,
            record_id,
            institution,
            data,
            actor,
        )
        return inserted is not None

    async def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        data: dict[str, Any] | None = await self._conn.fetchval(
            "SELECT data FROM records WHERE kind = $1 AND record_id = $2", kind, record_id
        )
        return data


class PostgresAudit:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def record(self, educator_id: str, action: str, *, actor: str, detail: dict[str, Any]) -> None:
        await self._conn.execute(
            "INSERT INTO educator_audit (educator_id, action, actor, detail) VALUES ($1, $2, $3, $4)",
            educator_id,
            action,
            actor,
            detail,
        )


class PostgresOutbox:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def enqueue_event(
        self, event: BaseModel, *, source: str, subject: str, event_id: str | None = None, actor: str | None = None
    ) -> None:
        await enqueue_event(self._conn, event, source=source, subject=subject, event_id=event_id, actor=actor)

    async def forget_contacts(self, educator_id: str) -> int:
        """Contact messages carry the name and e-mail: delete the educator's rows, sent or not."""
        deleted: int = await self._conn.fetchval(
            "WITH gone AS (DELETE FROM outbox WHERE subject LIKE 'iioe.contacts.%'"
            " AND convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'educator_id' = $1 RETURNING 1)"
            " SELECT count(*) FROM gone",
            educator_id,
        )
        return deleted


@dataclass(frozen=True)
class PostgresTransaction:
    educators: PostgresEducators
    records: PostgresRecords
    audit: PostgresAudit
    outbox: PostgresOutbox
    conn: Conn

    async def register_all(self, registrations: Sequence[NewRegistration], *, source: str) -> list[str | None]:
        """Two round trips for the whole batch (one when every educator is new), instead of 3–4 each."""
        educators = [r.educator for r in registrations]
        messages: list[tuple[str, OutboxMessage]] = []
        for r in registrations:
            subject = r.educator.educator_id
            for event in r.events:  # built in the command's own context: its trace reaches the row
                messages.append((subject, r.context.run(outbox_message, event, source=source, subject=subject)))
        ids, subjects, payloads, headers = outbox_columns([m for _, m in messages])
        rows = await self.conn.fetch(
            _REGISTER_ALL_SQL,
            [e.educator_id for e in educators],
            [e.institution for e in educators],
            [e.email_key for e in educators],
            [e.email for e in educators],
            [e.full_name for e in educators],
            [e.language for e in educators],
            [e.role for e in educators],
            [e.registered_at for e in educators],
            [educator_id for educator_id, _ in messages],
            ids,
            subjects,
            payloads,
            headers,
        )
        stored = {row["educator_id"] for row in rows}
        refused = [i for i, e in enumerate(educators) if e.educator_id not in stored]
        found: list[str | None] = [None] * len(educators)
        if refused:
            known = await self.conn.fetch(
                _REGISTERED_IDS_SQL,
                [educators[i].institution for i in refused],
                [educators[i].email_key for i in refused],
            )
            by_position = {row["n"]: row["educator_id"] for row in known}
            for position, i in enumerate(refused, start=1):
                existing = by_position.get(position)
                if existing is None:  # erased since the insert saw it: let the caller retry alone
                    raise LookupError(f"no educator holds the e-mail of {educators[i].educator_id}")
                found[i] = existing
        return found


class PostgresUnitOfWork:
    """Built on the runtime's `transaction()`, which wakes the outbox relay after each commit."""

    def __init__(
        self,
        begin: Callable[[], AbstractAsyncContextManager[Any]],
        autocommit: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        self._begin = begin
        self._autocommit = autocommit or begin

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._begin() as conn:
            yield _repositories(conn)

    @asynccontextmanager
    async def statements(self) -> AsyncIterator[PostgresTransaction]:
        async with self._autocommit() as conn:
            yield _repositories(conn)


def _repositories(conn: Any) -> PostgresTransaction:
    return PostgresTransaction(
        PostgresEducators(conn), PostgresRecords(conn), PostgresAudit(conn), PostgresOutbox(conn), conn
    )
