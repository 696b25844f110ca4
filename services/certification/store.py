"""PostgreSQL adapter of the unit-of-work port (`ports.py`): SQL only, no rules.

Every decision — best attempt, what is earned, revocation, recognition limits — is made by `domain.py` and
stored here as decided. The unique keys below (one certificate per educator and programme, one revocation
per certificate, one recognition per receiving programme, one active key) do not decide anything: they are
the last guard should two writers ever bypass the per-educator lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

from iioe.runtime import inbox
from iioe.runtime.dlq import dead_letter_headers
from iioe.runtime.outbox import enqueue_event, enqueue_raw
from iioe.subjects import dlq_subject
from services.certification.credentials import KeyRecord, PublicKeyRecord
from services.certification.domain import (
    Certificate,
    Completion,
    Educator,
    PendingCompletion,
    Recognition,
    Revocation,
    StatusChange,
    StatusEntry,
    StatusList,
    StatusPurpose,
)
from services.certification.key_vault import KeyVault, KeyVaultError, SealedKey
from services.certification.store_transfers import PostgresTransfers

Conn = asyncpg.Connection | PoolConnectionProxy
"""A connection, inside the caller's transaction."""
INBOX_CONSUMER = "certification"
"""Inbox key shared by every durable of this service, so a replay under a new consumer name is still skipped."""


class PostgresUnitOfWork:
    """`ports.UnitOfWork` on PostgreSQL: each `transaction()` is one database transaction.

    `pool` is a callable because the runtime opens its pool only when it starts. `after_outbox` runs after a
    commit that staged outgoing messages (the runtime's relay wake-up), and only then: reads must not wake
    the relay.
    """

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        *,
        source: str,
        after_outbox: Callable[[], None] | None = None,
        vault: KeyVault | None = None,
    ) -> None:
        self._pool = pool
        self._source = source
        self._after_outbox = after_outbox
        self._vault = vault
        """Seals signing keys at rest; without one, signing keys can be neither read nor written."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresRepositories]:
        async with self._pool().acquire() as conn, conn.transaction():
            repositories = PostgresRepositories(conn, self._source, self._vault)
            yield repositories
        if repositories.outbox.staged and self._after_outbox is not None:
            self._after_outbox()


class PostgresRepositories:
    def __init__(self, conn: Conn, source: str, vault: KeyVault | None = None) -> None:
        self.progress = PostgresProgress(conn)
        self.certificates = PostgresCertificates(conn)
        self.keys = PostgresSigningKeys(conn, vault)
        self.status_lists = PostgresStatusLists(conn)
        self.transfers = PostgresTransfers(conn)  # credit transfers (store_transfers.py)
        self.outbox = PostgresOutbox(conn, source)
        self.inbox = PostgresInbox(conn)


@dataclass(frozen=True)
class PostgresInbox:
    conn: Conn

    async def claim(self, event_id: str, *, source: str = "") -> bool:
        return await inbox.claim(self.conn, INBOX_CONSUMER, event_id, source=source)

    async def release(self, event_id: str, *, source: str = "") -> None:
        await self.conn.execute(
            "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2 AND source IN ($3, '')",
            INBOX_CONSUMER,
            event_id,
            source,
        )


# --- educators and completions -----------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresProgress:
    conn: Conn

    async def lock(self, educator_id: str) -> None:
        """An advisory lock rather than `SELECT … FOR UPDATE`: a completion may arrive before the educator row
        exists, and a registration racing it must still see the parked completion afterwards."""
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"certification:educator:{educator_id}"
        )

    async def add_educator(self, educator: Educator) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO educators (educator_id, institution, language, role, registered_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (educator_id) DO NOTHING RETURNING 1",
            educator.educator_id,
            educator.institution,
            educator.language,
            educator.role,
            educator.registered_at,
        )
        return inserted is not None

    async def get_educator(self, educator_id: str) -> Educator | None:
        row = await self.conn.fetchrow(
            "SELECT educator_id, institution, language, role, registered_at FROM educators WHERE educator_id = $1",
            educator_id,
        )
        return Educator(**dict(row)) if row else None

    async def completions(self, educator_id: str) -> dict[str, Completion]:
        rows = await self.conn.fetch(
            "SELECT course_id, best_score, attempts, first_completed_at, best_completed_at FROM completions"
            " WHERE educator_id = $1",
            educator_id,
        )
        return {r["course_id"]: Completion(**dict(r)) for r in rows}

    async def save_completion(self, educator_id: str, completion: Completion) -> None:
        await self.conn.execute(
            "INSERT INTO completions (educator_id, course_id, best_score, attempts, first_completed_at,"
            " best_completed_at) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (educator_id, course_id) DO UPDATE SET best_score = EXCLUDED.best_score,"
            " attempts = EXCLUDED.attempts, first_completed_at = EXCLUDED.first_completed_at,"
            " best_completed_at = EXCLUDED.best_completed_at, updated_at = now()",
            educator_id,
            completion.course_id,
            completion.best_score,
            completion.attempts,
            completion.first_completed_at,
            completion.best_completed_at,
        )

    async def park(self, pending: PendingCompletion) -> None:
        await self.conn.execute(
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

    async def take_pending(self, educator_id: str) -> list[PendingCompletion]:
        rows = await self.conn.fetch(
            "DELETE FROM pending_completions WHERE educator_id = $1 RETURNING event_id, educator_id, institution,"
            " course_id, score, completed_at, subject, raw, durable, stream, stream_seq",
            educator_id,
        )
        return [PendingCompletion(**{**dict(r), "raw": bytes(r["raw"])}) for r in rows]

    async def take_expired_pending(self, parked_before: datetime, limit: int) -> list[PendingCompletion]:
        rows = await self.conn.fetch(
            "DELETE FROM pending_completions WHERE event_id IN (SELECT event_id FROM pending_completions"
            " WHERE received_at < $1 ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
            " RETURNING event_id, educator_id, institution, course_id, score, completed_at, subject, raw, durable,"
            " stream, stream_seq",
            parked_before,
            limit,
        )
        return [PendingCompletion(**{**dict(r), "raw": bytes(r["raw"])}) for r in rows]

    async def count_pending(self, educator_id: str) -> int:
        count: int = await self.conn.fetchval(
            "SELECT count(*) FROM pending_completions WHERE educator_id = $1", educator_id
        )
        return count


# --- certificates, revocations, recognitions ---------------------------------------------------------

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
            "INSERT INTO certificates (certificate_id, educator_id, institution, programme_id, course_ids, credits,"
            " issued_at, kid, credential) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            certificate.certificate_id,
            certificate.educator_id,
            certificate.institution,
            certificate.programme_id,
            list(certificate.course_ids),
            certificate.credits,
            certificate.issued_at,
            certificate.kid,
            certificate.credential,
        )
        return inserted is not None

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


# --- status lists ------------------------------------------------------------------------------------

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


# --- signing keys ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresSigningKeys:
    """Private JWKs sealed with the key vault's KEK (`key_vault.py`); public halves stored beside them."""

    conn: Conn
    vault: KeyVault | None = None

    def _vault(self) -> KeyVault:
        if self.vault is None:
            raise KeyVaultError("no key-encryption key configured: signing keys cannot be read or written")
        return self.vault

    async def lock(self) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('certification:signing-keys', 0))")

    async def records(self) -> list[KeyRecord]:
        rows = await self.conn.fetch(
            "SELECT kid, private_jwk, sealed_private, kek_id, created_at, active, compromised_at FROM signing_keys"
            " ORDER BY created_at"
        )
        return [
            KeyRecord(
                r["kid"],
                self._vault().open(r["kid"], SealedKey(bytes(r["sealed_private"]), r["kek_id"]))
                if r["sealed_private"] is not None
                else dict(r["private_jwk"]),
                r["created_at"],
                r["active"],
                r["compromised_at"],
            )
            for r in rows
        ]

    async def public_keys(self) -> list[PublicKeyRecord]:
        rows = await self.conn.fetch(
            "SELECT kid, public_jwk, created_at, active, compromised_at FROM signing_keys ORDER BY created_at"
        )
        return [
            PublicKeyRecord(r["kid"], dict(r["public_jwk"]), r["created_at"], r["active"], r["compromised_at"])
            for r in rows
        ]

    async def _insert(self, record: KeyRecord, *, active: bool) -> bool:
        sealed = self._vault().seal(record.kid, record.private_jwk)
        public = {k: record.private_jwk[k] for k in ("kty", "crv", "x")}
        inserted = await self.conn.fetchval(
            "INSERT INTO signing_keys (kid, public_jwk, sealed_private, kek_id, created_at, active, compromised_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (kid) DO NOTHING RETURNING 1",
            record.kid,
            public,
            sealed.ciphertext,
            sealed.kek_id,
            record.created_at,
            active,
            record.compromised_at,
        )
        return inserted is not None

    async def replace_active(self, record: KeyRecord) -> None:
        await self.conn.execute("UPDATE signing_keys SET active = false WHERE active")
        await self._insert(record, active=True)

    async def add_retired(self, record: KeyRecord) -> bool:
        return await self._insert(record, active=False)

    async def mark_compromised(self, kid: str, since: datetime) -> bool:
        updated = await self.conn.fetchval(
            "UPDATE signing_keys SET compromised_at = LEAST(coalesce(compromised_at, $2), $2), active = false"
            " WHERE kid = $1 RETURNING 1",
            kid,
            since,
        )
        return updated is not None

    async def seal_plaintext(self) -> int:
        """The migration path: seal every key still stored in plaintext, and erase the plaintext."""
        rows = await self.conn.fetch(
            "SELECT kid, private_jwk FROM signing_keys WHERE sealed_private IS NULL ORDER BY kid FOR UPDATE"
        )
        for row in rows:
            sealed = self._vault().seal(row["kid"], dict(row["private_jwk"]))
            await self.conn.execute(
                "UPDATE signing_keys SET sealed_private = $2, kek_id = $3, private_jwk = NULL WHERE kid = $1",
                row["kid"],
                sealed.ciphertext,
                sealed.kek_id,
            )
        return len(rows)


# --- the outbox ---------------------------------------------------------------------------------------


@dataclass
class PostgresOutbox:
    conn: Conn
    source: str
    staged: int = 0
    """Messages staged in this transaction."""

    async def add_event(
        self, data: BaseModel, *, subject: str, event_id: str, time: datetime, actor: str | None = None
    ) -> None:
        await enqueue_event(
            self.conn, data, source=self.source, subject=subject, event_id=event_id, time=time, actor=actor
        )
        self.staged += 1

    async def add_dead_letter(self, pending: PendingCompletion, reason: str, detail: str, failed_at: datetime) -> None:
        """Same body, headers and `Nats-Msg-Id` as a dead letter the consumer publishes itself."""
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
        await enqueue_raw(self.conn, message_id, dlq_subject(pending.durable, reason), pending.raw, headers)
        self.staged += 1
