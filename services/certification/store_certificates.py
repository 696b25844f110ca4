"""PostgreSQL repository of certificates with their revocations, status changes and recognitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.certification.domain import Certificate, Recognition, Revocation, StatusChange
from services.certification.store_conn import Conn

_CERTIFICATE_SELECT = (
    "SELECT c.certificate_id, c.educator_id, c.institution, c.programme_id, c.course_ids, c.credits, c.issued_at,"
    " c.kid, c.credential, r.reason AS revocation_reason, r.revoked_at, r.actor AS revocation_actor,"
    " s.seq AS change_seq, s.action AS change_action, s.reason AS change_reason, s.at AS change_at,"
    " s.actor AS change_actor"
    " FROM certificates c LEFT JOIN revocations r USING (certificate_id)"
    " LEFT JOIN LATERAL (SELECT seq, action, reason, at, actor FROM status_changes sc"
    " WHERE sc.certificate_id = c.certificate_id ORDER BY seq DESC LIMIT 1) s ON true"
)
_RECOGNITION_SELECT = (
    "SELECT recognition_id, certificate_id, receiving_institution, receiving_programme, credits, recognized_at"
    " FROM recognitions"
)


_CERTIFICATE_INSERT = (
    "INSERT INTO certificates (certificate_id, educator_id, institution, programme_id, course_ids, credits,"
    " issued_at, kid, credential) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)


def _certificate_row(c: Certificate) -> tuple[Any, ...]:
    """`_CERTIFICATE_INSERT`'s arguments."""
    return (
        c.certificate_id,
        c.educator_id,
        c.institution,
        c.programme_id,
        list(c.course_ids),
        c.credits,
        c.issued_at,
        c.kid,
        c.credential,
    )


def _certificate(row: asyncpg.Record) -> Certificate:
    certificate_id = row["certificate_id"]
    revocation = (
        Revocation(certificate_id, row["revocation_reason"], row["revoked_at"], row["revocation_actor"])
        if row["revoked_at"]
        else None
    )
    change = (
        StatusChange(
            certificate_id,
            row["change_seq"],
            row["change_action"],
            row["change_reason"],
            row["change_at"],
            row["change_actor"],
        )
        if row["change_seq"] is not None
        else None
    )
    return Certificate(
        certificate_id=row["certificate_id"],
        educator_id=row["educator_id"],
        institution=row["institution"],
        programme_id=row["programme_id"],
        course_ids=tuple(row["course_ids"]),
        credits=row["credits"],
        issued_at=row["issued_at"],
        kid=row["kid"],
        credential=row["credential"],
        revocation=revocation,
        last_change=change,
    )


@dataclass(frozen=True)
class PostgresCertificates:
    conn: Conn

    async def add(self, certificate: Certificate) -> bool:
        inserted = await self.conn.fetchval(
            _CERTIFICATE_INSERT + " ON CONFLICT DO NOTHING RETURNING 1", *_certificate_row(certificate)
        )
        return inserted is not None

    async def add_all(self, certificates: Sequence[Certificate]) -> None:
        """Insert new certificates in one pipelined statement; raises `UniqueViolationError` if one exists."""
        await self.conn.executemany(_CERTIFICATE_INSERT, [_certificate_row(c) for c in certificates])

    async def get(self, certificate_id: str, *, for_update: bool = False) -> Certificate | None:
        sql = _CERTIFICATE_SELECT + " WHERE c.certificate_id = $1" + (" FOR UPDATE OF c" if for_update else "")
        row = await self.conn.fetchrow(sql, certificate_id)
        return _certificate(row) if row else None

    async def of_educator(self, educator_id: str) -> list[Certificate]:
        rows = await self.conn.fetch(
            _CERTIFICATE_SELECT + " WHERE c.educator_id = $1 ORDER BY c.issued_at, c.certificate_id", educator_id
        )
        return [_certificate(r) for r in rows]

    async def add_revocation(self, revocation: Revocation) -> None:
        await self.conn.execute(
            "INSERT INTO revocations (certificate_id, reason, revoked_at, actor) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (certificate_id) DO NOTHING",
            revocation.certificate_id,
            revocation.reason,
            revocation.revoked_at,
            revocation.actor,
        )

    async def add_status_change(self, change: StatusChange) -> None:
        await self.conn.execute(
            "INSERT INTO status_changes (certificate_id, seq, action, reason, at, actor)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            change.certificate_id,
            change.seq,
            change.action,
            change.reason,
            change.at,
            change.actor,
        )

    async def add_recognition(self, recognition: Recognition) -> None:
        await self.conn.execute(
            "INSERT INTO recognitions (recognition_id, certificate_id, receiving_institution, receiving_programme,"
            " credits, recognized_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            recognition.recognition_id,
            recognition.certificate_id,
            recognition.receiving_institution,
            recognition.receiving_programme,
            recognition.credits,
            recognition.recognized_at,
        )

    async def get_recognition(self, recognition_id: str) -> Recognition | None:
        row = await self.conn.fetchrow(_RECOGNITION_SELECT + " WHERE recognition_id = $1", recognition_id)
        return Recognition(**dict(row)) if row else None

    async def recognitions_of(self, certificate_id: str) -> list[Recognition]:
        rows = await self.conn.fetch(
            _RECOGNITION_SELECT + " WHERE certificate_id = $1 ORDER BY recognized_at, recognition_id", certificate_id
        )
        return [Recognition(**dict(r)) for r in rows]
