"""PostgreSQL repository of the status lists and the entries certificates hold in them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from services.certification.domain import StatusEntry, StatusList, StatusPurpose
from services.certification.store_conn import Conn

_LIST_SELECT = "SELECT list_id, purpose, seq, size, updated_at FROM status_lists"


@dataclass(frozen=True)
class PostgresStatusLists:
    conn: Conn

    async def newest(self, purpose: StatusPurpose) -> StatusList | None:
        row = await self.conn.fetchrow(_LIST_SELECT + " WHERE purpose = $1 ORDER BY seq DESC LIMIT 1", purpose)
        return StatusList(**dict(row)) if row else None

    async def create(self, status_list: StatusList) -> StatusList:
        await self.conn.execute(
            "INSERT INTO status_lists (list_id, purpose, seq, size, updated_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT DO NOTHING",
            status_list.list_id,
            status_list.purpose,
            status_list.seq,
            status_list.size,
            status_list.updated_at,
        )
        row = await self.conn.fetchrow(
            _LIST_SELECT + " WHERE purpose = $1 AND seq = $2", status_list.purpose, status_list.seq
        )
        assert row is not None, "inserted or already there"
        return StatusList(**dict(row))

    async def get(self, list_id: str) -> StatusList | None:
        row = await self.conn.fetchrow(_LIST_SELECT + " WHERE list_id = $1", list_id)
        return StatusList(**dict(row)) if row else None

    async def allocated(self, list_id: str) -> int:
        count: int = await self.conn.fetchval("SELECT count(*) FROM status_entries WHERE list_id = $1", list_id)
        return count

    async def allocate(self, entry: StatusEntry) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO status_entries (list_id, status_index, certificate_id, purpose) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            entry.list_id,
            entry.index,
            entry.certificate_id,
            entry.purpose,
        )
        return inserted is not None

    async def entries_of(self, certificate_id: str) -> list[StatusEntry]:
        rows = await self.conn.fetch(
            "SELECT certificate_id, purpose, list_id, status_index AS index FROM status_entries"
            " WHERE certificate_id = $1 ORDER BY purpose",
            certificate_id,
        )
        return [StatusEntry(**dict(r)) for r in rows]

    async def set_bits(self, certificate_id: str, bits: Mapping[StatusPurpose, bool], at: datetime) -> None:
        for purpose, value in bits.items():
            await self.conn.execute(
                "WITH flipped AS (UPDATE status_entries SET is_set = $3 WHERE certificate_id = $1 AND purpose = $2"
                " AND is_set <> $3 RETURNING list_id)"
                " UPDATE status_lists SET updated_at = $4 WHERE list_id IN (SELECT list_id FROM flipped)",
                certificate_id,
                purpose,
                value,
                at,
            )

    async def set_indexes(self, list_id: str) -> list[int]:
        rows = await self.conn.fetch(
            "SELECT status_index FROM status_entries WHERE list_id = $1 AND is_set ORDER BY status_index", list_id
        )
        return [r["status_index"] for r in rows]
