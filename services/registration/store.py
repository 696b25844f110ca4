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

_COLUMNS = "educator_id, institution, full_name, email, language, role, registered_at"


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

    async def get(self, educator_id: str) -> Educator | None:
        row = await self._conn.fetchrow(f"SELECT {_COLUMNS} FROM educators WHERE educator_id = $1", educator_id)
        return Educator(**dict(row)) if row else None


class PostgresOutbox:
    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    async def enqueue_event(self, event: BaseModel, *, source: str, subject: str) -> None:
        await enqueue_event(self._conn, event, source=source, subject=subject)


@dataclass(frozen=True)
class PostgresTransaction:
    educators: PostgresEducators
    outbox: PostgresOutbox


class PostgresUnitOfWork:
    """Built on the runtime's `transaction()`, which wakes the outbox relay after each commit."""

    def __init__(self, begin: Callable[[], AbstractAsyncContextManager[Any]]) -> None:
        self._begin = begin

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._begin() as conn:
            yield PostgresTransaction(PostgresEducators(conn), PostgresOutbox(conn))
