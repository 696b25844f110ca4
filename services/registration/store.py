"""PostgreSQL repository of educators (schema `registration`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from services.registration.domain import ValidRegistration


async def insert_educator(conn: asyncpg.Connection, educator_id: str, reg: ValidRegistration) -> str | None:
    """Insert unless (institution, e-mail) exists; returns the new id, or None if already registered."""
    inserted: str | None = await conn.fetchval(
        "INSERT INTO educators (educator_id, institution, email_key, email, full_name, language, role, registered_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (institution, email_key) DO NOTHING"
        " RETURNING educator_id",
        educator_id,
        reg.institution,
        reg.email_key,
        reg.email,
        reg.full_name,
        reg.language,
        reg.role,
        reg.registered_at,
    )
    return inserted


async def find_by_email(conn: asyncpg.Connection, institution: str, email_key: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT educator_id FROM educators WHERE institution = $1 AND email_key = $2", institution, email_key
    )
    return found


async def get_educator(pool: asyncpg.Pool, educator_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT educator_id, institution, full_name, email, language, role, registered_at"
        " FROM educators WHERE educator_id = $1",
        educator_id,
    )
    return dict(row) if row else None


async def count_by_institution(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT institution, count(*) AS n FROM educators GROUP BY institution")
    return {r["institution"]: r["n"] for r in rows}
