"""PostgreSQL side of rebuilding from the log (`restore.py`): is the database empty, and remembering it was refilled.

One replica restores at a time (a session advisory lock); the others wait, then find the marker row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg

from services.certification.restore import RestoreReport

RESTORE_LOCK = "certification:log-restore"


async def restore_if_empty(pool: asyncpg.Pool, restore: Callable[[], Awaitable[RestoreReport]]) -> RestoreReport | None:
    """Run `restore` if this database has never held certification data nor been restored; None otherwise."""
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", RESTORE_LOCK)
        try:
            empty = await conn.fetchval(
                "SELECT NOT EXISTS (SELECT 1 FROM log_restores) AND NOT EXISTS (SELECT 1 FROM educators)"
                " AND NOT EXISTS (SELECT 1 FROM certificates)"
            )
            if not empty:
                return None
            report = await restore()
            await conn.execute(
                "INSERT INTO log_restores (last_seq, events_read, certificates, educators) VALUES ($1, $2, $3, $4)",
                report.last_seq,
                report.events_read,
                report.certificates,
                report.educators,
            )
            return report
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", RESTORE_LOCK)
