"""PostgreSQL adapter of the credit-transfer repository (`transfer_service.TransferRepository`): SQL only."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.certification.transfers import CreditTransfer

_SELECT = (
    "SELECT request_id, educator_id, institution, certificate_id, receiving_institution, receiving_programme,"
    " requested_at, decision, credits, reason, decided_at FROM credit_transfers"
)


@dataclass(frozen=True)
class PostgresTransfers:
    conn: asyncpg.Connection | PoolConnectionProxy

    async def get(self, request_id: str, *, for_update: bool = False) -> CreditTransfer | None:
        sql = _SELECT + " WHERE request_id = $1" + (" FOR UPDATE" if for_update else "")
        row = await self.conn.fetchrow(sql, request_id)
        return CreditTransfer(**dict(row)) if row else None

    async def add(self, transfer: CreditTransfer) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO credit_transfers (request_id, educator_id, institution, certificate_id, receiving_institution,"
            " receiving_programme, requested_at, decision, credits, reason, decided_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING 1",
            transfer.request_id,
            transfer.educator_id,
            transfer.institution,
            transfer.certificate_id,
            transfer.receiving_institution,
            transfer.receiving_programme,
            transfer.requested_at,
            transfer.decision,
            transfer.credits,
            transfer.reason,
            transfer.decided_at,
        )
        return inserted is not None

    async def record_decision(self, transfer: CreditTransfer) -> None:
        await self.conn.execute(
            "UPDATE credit_transfers SET decision = $2, credits = $3, reason = $4, decided_at = $5"
            " WHERE request_id = $1 AND decision IS NULL",
            transfer.request_id,
            transfer.decision,
            transfer.credits,
            transfer.reason,
            transfer.decided_at,
        )

    async def of_institution(self, institution: str) -> list[CreditTransfer]:
        rows = await self.conn.fetch(
            _SELECT + " WHERE institution = $1 OR receiving_institution = $1 ORDER BY requested_at, request_id",
            institution,
        )
        return [CreditTransfer(**dict(r)) for r in rows]
