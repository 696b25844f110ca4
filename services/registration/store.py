"""PostgreSQL adapter of the registration unit of work (schema `registration`): SQL only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from iioe.runtime.db import Conn
from iioe.runtime.outbox import enqueue_event
from services.registration.domain import Educator
from services.registration.ports import EducatorQuery

_COLUMNS = "educator_id, institution, full_name, email, language, role, registered_at, erased_at"


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


class PostgresUnitOfWork:
    """Built on the runtime's `transaction()`, which wakes the outbox relay after each commit."""

    def __init__(self, begin: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._begin = begin

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._begin() as conn:
            yield PostgresTransaction(
                PostgresEducators(conn), PostgresRecords(conn), PostgresAudit(conn), PostgresOutbox(conn)
            )
