"""PostgreSQL adapter of `listing.ListingReader`: read-only queries for the certificate listing and exports.

Each call is one short read on its own pooled connection (no transaction kept open while a download streams).
The status filter mirrors `domain.Certificate.status`: revoked once revoked, else suspended while the latest
status change is a suspension, else active.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from services.certification.domain import Certificate, Completion, Educator
from services.certification.listing import CertificateKey, CertificateQuery
from services.certification.store import _CERTIFICATE_SELECT, _certificate

_STATUS = (
    "CASE WHEN c.revoked_at IS NOT NULL THEN 'revoked'"
    " WHEN c.change_action = 'suspended' THEN 'suspended' ELSE 'active' END"
)
_LISTED = f"SELECT * FROM ({_CERTIFICATE_SELECT}) c"


def _where(query: CertificateQuery, after: CertificateKey | None = None) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        placeholders = [f"${len(args) + i + 1}" for i in range(len(values))]
        clauses.append(sql.format(*placeholders))
        args.extend(values)

    if query.institution is not None:
        add("c.institution = {}", query.institution)
    if query.programme_id is not None:
        add("c.programme_id = {}", query.programme_id)
    if query.status is not None:
        add(f"({_STATUS}) = {{}}", query.status)
    if query.issued_since is not None:
        add("c.issued_at >= {}", query.issued_since)
    if query.issued_before is not None:
        add("c.issued_at < {}", query.issued_before)
    if after is not None:
        add("(c.issued_at, c.certificate_id) > ({}, {})", *after)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


class PostgresListingReader:
    """`pool` is a callable because the runtime opens its pool only when it starts."""

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    async def count_certificates(self, query: CertificateQuery) -> int:
        where, args = _where(query)
        async with self._pool().acquire() as conn:
            count: int = await conn.fetchval(f"SELECT count(*) FROM ({_CERTIFICATE_SELECT}) c{where}", *args)
        return count

    async def certificates(
        self, query: CertificateQuery, *, after: CertificateKey | None = None, offset: int = 0, limit: int
    ) -> list[Certificate]:
        where, args = _where(query, after)
        sql = f"{_LISTED}{where} ORDER BY c.issued_at, c.certificate_id LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}"
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(sql, *args, limit, offset)
        return [_certificate(r) for r in rows]

    async def educators(self, institution: str | None, *, after: str | None, limit: int) -> list[Educator]:
        async with self._pool().acquire() as conn:
            rows = await conn.fetch(
                "SELECT educator_id, institution, language, role, registered_at FROM educators"
                " WHERE ($1::text IS NULL OR institution = $1) AND ($2::text IS NULL OR educator_id > $2)"
                " ORDER BY educator_id LIMIT $3",
                institution,
                after,
                limit,
            )
        return [Educator(**dict(r)) for r in rows]

    async def records_of(
        self, educator_ids: Sequence[str]
    ) -> tuple[dict[str, dict[str, Completion]], dict[str, list[Certificate]]]:
        ids = list(educator_ids)
        async with self._pool().acquire() as conn:
            completion_rows = await conn.fetch(
                "SELECT educator_id, course_id, best_score, attempts, first_completed_at, best_completed_at"
                " FROM completions WHERE educator_id = ANY($1::text[])",
                ids,
            )
            certificate_rows = await conn.fetch(
                f"{_LISTED} WHERE c.educator_id = ANY($1::text[]) ORDER BY c.issued_at, c.certificate_id", ids
            )
        completions: dict[str, dict[str, Completion]] = {}
        for r in completion_rows:
            record = dict(r)
            educator_id = record.pop("educator_id")
            completions.setdefault(educator_id, {})[r["course_id"]] = Completion(**record)
        certificates: dict[str, list[Certificate]] = {}
        for r in certificate_rows:
            certificates.setdefault(r["educator_id"], []).append(_certificate(r))
        return completions, certificates
