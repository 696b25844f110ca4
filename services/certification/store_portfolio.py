"""PostgreSQL adapter of the portfolio unit-of-work port (`portfolio_ports.py`): SQL only, no rules.

It shares the service's pool and database: one transaction covers the portfolio tables (`010_portfolio.sql`),
the inbox and the certification repositories of `store.py`, reused as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from iioe.runtime import inbox
from services.certification.key_vault import KeyVault
from services.certification.portfolio import PortfolioEntry, PortfolioShare, PracticeReport
from services.certification.store import (
    INBOX_CONSUMER,
    Conn,
    PostgresCertificates,
    PostgresProgress,
    PostgresSigningKeys,
)


class PostgresPortfolioUnitOfWork:
    """`portfolio_ports.PortfolioUnitOfWork` on PostgreSQL (`pool` is called once the runtime has opened it)."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], vault: KeyVault | None = None) -> None:
        self._pool = pool
        self._vault = vault

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresPortfolioRepositories]:
        async with self._pool().acquire() as conn, conn.transaction():
            yield PostgresPortfolioRepositories(conn, self._vault)


class PostgresPortfolioRepositories:
    def __init__(self, conn: Conn, vault: KeyVault | None = None) -> None:
        self.portfolio = PostgresPortfolio(conn)
        self.inbox = PostgresEventInbox(conn)
        self.progress = PostgresProgress(conn)
        self.certificates = PostgresCertificates(conn)
        self.keys = PostgresSigningKeys(conn, vault)


@dataclass(frozen=True)
class PostgresEventInbox:
    conn: Conn

    async def claim_event(self, source: str, event_id: str) -> bool:
        return await inbox.claim(self.conn, INBOX_CONSUMER, event_id, source=source)


_ENTRY_SELECT = (
    "SELECT educator_id, entry_id, institution, kind, title, link, added_on, source, event_id FROM portfolio_entries"
)
_REPORT_SELECT = (
    "SELECT source, event_id, educator_id, institution, integrates_ai, disciplines, reported_on, received_seq"
    " FROM practice_reports"
)
_SHARE_SELECT = "SELECT share_id, educator_id, created_at, revoked_at FROM portfolio_shares"


def _report(row: asyncpg.Record) -> PracticeReport:
    return PracticeReport(**{**dict(row), "disciplines": tuple(row["disciplines"])})


@dataclass(frozen=True)
class PostgresPortfolio:
    conn: Conn

    async def entry(self, educator_id: str, entry_id: str) -> PortfolioEntry | None:
        row = await self.conn.fetchrow(
            _ENTRY_SELECT + " WHERE educator_id = $1 AND entry_id = $2", educator_id, entry_id
        )
        return PortfolioEntry(**dict(row)) if row else None

    async def save_entry(self, entry: PortfolioEntry) -> None:
        await self.conn.execute(
            "INSERT INTO portfolio_entries (educator_id, entry_id, institution, kind, title, link, added_on, source,"
            " event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (educator_id, entry_id) DO UPDATE SET institution = EXCLUDED.institution,"
            " kind = EXCLUDED.kind, title = EXCLUDED.title, link = EXCLUDED.link, added_on = EXCLUDED.added_on,"
            " source = EXCLUDED.source, event_id = EXCLUDED.event_id, updated_at = now()",
            entry.educator_id,
            entry.entry_id,
            entry.institution,
            entry.kind,
            entry.title,
            entry.link,
            entry.added_on,
            entry.source,
            entry.event_id,
        )

    async def entries_of(self, educator_id: str) -> list[PortfolioEntry]:
        rows = await self.conn.fetch(
            _ENTRY_SELECT + " WHERE educator_id = $1 ORDER BY added_on DESC, entry_id", educator_id
        )
        return [PortfolioEntry(**dict(r)) for r in rows]

    async def add_report(self, report: PracticeReport) -> None:
        await self.conn.execute(
            "INSERT INTO practice_reports (source, event_id, educator_id, institution, integrates_ai, disciplines,"
            " reported_on) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            report.source,
            report.event_id,
            report.educator_id,
            report.institution,
            report.integrates_ai,
            list(report.disciplines),
            report.reported_on,
        )

    async def reports_of(self, educator_id: str) -> list[PracticeReport]:
        rows = await self.conn.fetch(
            _REPORT_SELECT + " WHERE educator_id = $1 ORDER BY reported_on DESC, received_seq DESC", educator_id
        )
        return [_report(r) for r in rows]

    async def lock_shares(self, educator_id: str) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"certification:portfolio-share:{educator_id}"
        )

    async def active_share(self, educator_id: str) -> PortfolioShare | None:
        row = await self.conn.fetchrow(_SHARE_SELECT + " WHERE educator_id = $1 AND revoked_at IS NULL", educator_id)
        return PortfolioShare(**dict(row)) if row else None

    async def get_share(self, share_id: str) -> PortfolioShare | None:
        row = await self.conn.fetchrow(_SHARE_SELECT + " WHERE share_id = $1", share_id)
        return PortfolioShare(**dict(row)) if row else None

    async def add_share(self, share: PortfolioShare) -> None:
        await self.conn.execute(
            "INSERT INTO portfolio_shares (share_id, educator_id, created_at, revoked_at) VALUES ($1, $2, $3, $4)",
            share.share_id,
            share.educator_id,
            share.created_at,
            share.revoked_at,
        )

    async def revoke_share(self, share_id: str, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE portfolio_shares SET revoked_at = $2 WHERE share_id = $1 AND revoked_at IS NULL", share_id, at
        )
