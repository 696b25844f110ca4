"""PostgreSQL repository of the certification service (schema `certification`): all SQL lives here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from iioe.runtime.dlq import dead_letter_headers
from iioe.runtime.outbox import enqueue_raw
from iioe.subjects import dlq_subject
from services.certification.credentials import KeyRecord

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, inside the caller's transaction."""
Db = Conn | asyncpg.Pool
"""Reads accept a pool (HTTP) or a connection inside a transaction (consumers)."""


@dataclass(frozen=True)
class Educator:
    educator_id: str
    institution: str
    language: str
    role: str
    registered_at: datetime


@dataclass(frozen=True)
class Completion:
    course_id: str
    best_score: float
    attempts: int
    best_completed_at: datetime


@dataclass(frozen=True)
class PendingCompletion:
    """A completion held back until its educator's registration arrives, with the bytes to dead-letter."""

    event_id: str
    educator_id: str
    institution: str
    course_id: str
    score: float
    completed_at: datetime
    subject: str
    raw: bytes
    durable: str
    stream: str | None
    stream_seq: int | None


@dataclass(frozen=True)
class Revocation:
    certificate_id: str
    reason: str
    revoked_at: datetime


@dataclass(frozen=True)
class Certificate:
    certificate_id: str
    educator_id: str
    institution: str
    programme_id: str
    course_ids: tuple[str, ...]
    credits: float
    issued_at: datetime
    kid: str
    credential: str
    revocation: Revocation | None = None

    @property
    def status(self) -> str:
        return "revoked" if self.revocation else "active"


@dataclass(frozen=True)
class Recognition:
    recognition_id: str
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    credits: float
    recognized_at: datetime


# --- locks ------------------------------------------------------------------------------------------


async def lock_educator(conn: Conn, educator_id: str) -> None:
    """Serialize every transaction about one educator, across replicas, until commit.

    An advisory lock rather than `SELECT … FOR UPDATE`: a completion may arrive before the educator row
    exists, and a registration racing it must still see the pending completion afterwards.
    """
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"certification:educator:{educator_id}")


async def lock_signing_keys(conn: Conn) -> None:
    """Two replicas starting together (or rotating together) must end up with one active key."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('certification:signing-keys', 0))")


# --- educators and completions -----------------------------------------------------------------------


async def insert_educator(conn: Conn, educator: Educator) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO educators (educator_id, institution, language, role, registered_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (educator_id) DO NOTHING RETURNING 1",
        educator.educator_id,
        educator.institution,
        educator.language,
        educator.role,
        educator.registered_at,
    )
    return inserted is not None


async def get_educator(db: Db, educator_id: str) -> Educator | None:
    row = await db.fetchrow(
        "SELECT educator_id, institution, language, role, registered_at FROM educators WHERE educator_id = $1",
        educator_id,
    )
    return Educator(**dict(row)) if row else None


async def record_completion(conn: Conn, educator_id: str, course_id: str, score: float, completed_at: datetime) -> None:
    """Count the attempt and keep the best score (a worse retake never lowers it)."""
    await conn.execute(
        "INSERT INTO completions AS c (educator_id, course_id, best_score, attempts, first_completed_at,"
        " best_completed_at) VALUES ($1, $2, $3, 1, $4, $4)"
        " ON CONFLICT (educator_id, course_id) DO UPDATE SET"
        " attempts = c.attempts + 1,"
        " best_completed_at = CASE WHEN EXCLUDED.best_score > c.best_score"
        "   THEN EXCLUDED.best_completed_at ELSE c.best_completed_at END,"
        " best_score = greatest(c.best_score, EXCLUDED.best_score),"
        " first_completed_at = least(c.first_completed_at, EXCLUDED.first_completed_at),"
        " updated_at = now()",
        educator_id,
        course_id,
        score,
        completed_at,
    )


async def completions(db: Db, educator_id: str) -> dict[str, Completion]:
    rows = await db.fetch(
        "SELECT course_id, best_score, attempts, best_completed_at FROM completions WHERE educator_id = $1",
        educator_id,
    )
    return {r["course_id"]: Completion(**dict(r)) for r in rows}


async def add_pending(conn: Conn, pending: PendingCompletion) -> None:
    await conn.execute(
        "INSERT INTO pending_completions (event_id, educator_id, institution, course_id, score, completed_at,"
        " subject, raw, durable, stream, stream_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        " ON CONFLICT (event_id) DO NOTHING",
        pending.event_id,
        pending.educator_id,
        pending.institution,
        pending.course_id,
        pending.score,
        pending.completed_at,
        pending.subject,
        pending.raw,
        pending.durable,
        pending.stream,
        pending.stream_seq,
    )


async def take_pending(conn: Conn, educator_id: str) -> list[PendingCompletion]:
    """Remove and return an educator's pending completions, in stream order."""
    rows = await conn.fetch(
        "DELETE FROM pending_completions WHERE educator_id = $1 RETURNING event_id, educator_id, institution,"
        " course_id, score, completed_at, subject, raw, durable, stream, stream_seq",
        educator_id,
    )
    pending = [PendingCompletion(**{**dict(r), "raw": bytes(r["raw"])}) for r in rows]
    return sorted(pending, key=lambda p: (p.stream_seq or 0, p.event_id))


async def count_pending(db: Db, educator_id: str) -> int:
    count: int = await db.fetchval("SELECT count(*) FROM pending_completions WHERE educator_id = $1", educator_id)
    return count


# --- certificates ------------------------------------------------------------------------------------

_CERTIFICATE_SELECT = (
    "SELECT c.certificate_id, c.educator_id, c.institution, c.programme_id, c.course_ids, c.credits, c.issued_at,"
    " c.kid, c.credential, r.reason AS revocation_reason, r.revoked_at"
    " FROM certificates c LEFT JOIN revocations r USING (certificate_id)"
)


def _certificate(row: asyncpg.Record) -> Certificate:
    revocation = (
        Revocation(row["certificate_id"], row["revocation_reason"], row["revoked_at"]) if row["revoked_at"] else None
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
    )


async def insert_certificate(conn: Conn, cert: Certificate) -> bool:
    """False when (educator, programme) already has a certificate: the natural key decides, not the caller."""
    inserted = await conn.fetchval(
        "INSERT INTO certificates (certificate_id, educator_id, institution, programme_id, course_ids, credits,"
        " issued_at, kid, credential) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING 1",
        cert.certificate_id,
        cert.educator_id,
        cert.institution,
        cert.programme_id,
        list(cert.course_ids),
        cert.credits,
        cert.issued_at,
        cert.kid,
        cert.credential,
    )
    return inserted is not None


async def get_certificate(db: Db, certificate_id: str, *, for_update: bool = False) -> Certificate | None:
    sql = _CERTIFICATE_SELECT + " WHERE c.certificate_id = $1" + (" FOR UPDATE OF c" if for_update else "")
    row = await db.fetchrow(sql, certificate_id)
    return _certificate(row) if row else None


async def certificates_of(db: Db, educator_id: str) -> list[Certificate]:
    rows = await db.fetch(_CERTIFICATE_SELECT + " WHERE c.educator_id = $1 ORDER BY c.issued_at", educator_id)
    return [_certificate(r) for r in rows]


async def insert_revocation(conn: Conn, revocation: Revocation) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO revocations (certificate_id, reason, revoked_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (certificate_id) DO NOTHING RETURNING 1",
        revocation.certificate_id,
        revocation.reason,
        revocation.revoked_at,
    )
    return inserted is not None


async def insert_recognition(conn: Conn, recognition: Recognition) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO recognitions (recognition_id, certificate_id, receiving_institution, receiving_programme,"
        " credits, recognized_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING 1",
        recognition.recognition_id,
        recognition.certificate_id,
        recognition.receiving_institution,
        recognition.receiving_programme,
        recognition.credits,
        recognition.recognized_at,
    )
    return inserted is not None


async def get_recognition(db: Db, recognition_id: str) -> Recognition | None:
    row = await db.fetchrow(
        "SELECT recognition_id, certificate_id, receiving_institution, receiving_programme, credits, recognized_at"
        " FROM recognitions WHERE recognition_id = $1",
        recognition_id,
    )
    return Recognition(**dict(row)) if row else None


async def recognitions_of(db: Db, certificate_id: str) -> list[Recognition]:
    rows = await db.fetch(
        "SELECT recognition_id, certificate_id, receiving_institution, receiving_programme, credits, recognized_at"
        " FROM recognitions WHERE certificate_id = $1 ORDER BY recognized_at",
        certificate_id,
    )
    return [Recognition(**dict(r)) for r in rows]


# --- signing keys ------------------------------------------------------------------------------------


async def key_records(db: Db) -> list[KeyRecord]:
    rows = await db.fetch("SELECT kid, private_jwk, created_at, active FROM signing_keys ORDER BY created_at")
    return [KeyRecord(r["kid"], dict(r["private_jwk"]), r["created_at"], r["active"]) for r in rows]


async def replace_active_key(conn: Conn, record: KeyRecord) -> None:
    """Retire the active key (it stays published) and make `record` the one active key."""
    await conn.execute("UPDATE signing_keys SET active = false WHERE active")
    await conn.execute(
        "INSERT INTO signing_keys (kid, private_jwk, created_at, active) VALUES ($1, $2, $3, true)",
        record.kid,
        dict(record.private_jwk),
        record.created_at,
    )


# --- dead letters staged in the outbox --------------------------------------------------------------


async def stage_dead_letter(
    conn: Conn, pending: PendingCompletion, reason: str, detail: str, failed_at: datetime
) -> None:
    """Dead-letter a stored completion through the outbox, so it reaches IIOE_DLQ if and only if we commit.

    Same body, headers and `Nats-Msg-Id` as a dead letter the consumer publishes itself.
    """
    headers = dead_letter_headers(
        original_subject=pending.subject,
        consumer=pending.durable,
        reason=reason,
        detail=detail,
        original_stream=pending.stream,
        original_seq=pending.stream_seq,
        failed_at=failed_at,
    )
    message_id = f"dead-letter:{pending.durable}:{pending.stream}:{pending.stream_seq}:{pending.event_id}"
    await enqueue_raw(conn, message_id, dlq_subject(pending.durable, reason), pending.raw, headers)
