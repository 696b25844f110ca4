"""PostgreSQL adapter of the unit-of-work port (`ports.py`): SQL only, no rules.

Every decision — best attempt, what is earned, revocation, recognition limits — is made by `domain.py` and
stored here as decided. The unique keys (one certificate per educator and programme, one revocation
per certificate, one recognition per receiving programme, one active key) do not decide anything: they are
the last guard should two writers ever bypass the per-educator lock.

The unit of work, the inbox and the outbox are here; the repositories per aggregate are in
`store_progress.py`, `store_certificates.py`, `store_status_lists.py`, `store_keys.py` (and
`store_transfers.py`), and stay importable from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from pydantic import BaseModel

from iioe.runtime import inbox
from iioe.runtime.dlq import dead_letter_headers
from iioe.runtime.outbox import enqueue_event, enqueue_raw
from iioe.subjects import dlq_subject
from services.certification.domain import PendingCompletion
from services.certification.key_vault import KeyVault
from services.certification.store_batch import BatchRepositories
from services.certification.store_batch_writes import TakenIndexes
from services.certification.store_certificates import (
    _CERTIFICATE_SELECT,
    _RECOGNITION_SELECT,
    PostgresCertificates,
    _certificate,
)
from services.certification.store_conn import Conn
from services.certification.store_keys import PostgresSigningKeys
from services.certification.store_progress import PostgresProgress
from services.certification.store_status_lists import _LIST_SELECT, PostgresStatusLists
from services.certification.store_transfers import PostgresTransfers

__all__ = [
    "INBOX_CONSUMER",
    "_CERTIFICATE_SELECT",
    "_LIST_SELECT",
    "_RECOGNITION_SELECT",
    "Conn",
    "PostgresCertificates",
    "PostgresInbox",
    "PostgresOutbox",
    "PostgresProgress",
    "PostgresRepositories",
    "PostgresSigningKeys",
    "PostgresStatusLists",
    "PostgresTransfers",
    "PostgresUnitOfWork",
    "_certificate",
]

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
        self._taken = TakenIndexes()
        """Status indexes taken, for batches to draw from memory (`store_batch_writes.py`)."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresRepositories]:
        async with self._pool().acquire() as conn, conn.transaction():
            repositories = PostgresRepositories(conn, self._source, self._vault)
            yield repositories
        if repositories.outbox.staged and self._after_outbox is not None:
            self._after_outbox()

    @contextlib.asynccontextmanager
    async def batch(
        self, educator_ids: Sequence[str], event_keys: Sequence[tuple[str, str]]
    ) -> AsyncIterator[BatchRepositories]:
        """One transaction for a batch of events: its educators locked (sorted), what they need read up front,
        course records written back before commit (`store_batch.py`)."""
        educators = list(dict.fromkeys(educator_ids))
        async with self._pool().acquire() as conn, conn.transaction():
            inner = PostgresRepositories(conn, self._source, self._vault)
            await inner.progress.lock_all(educators)
            repositories = await BatchRepositories.load(inner, educators, event_keys, self._taken)
            yield repositories
            await repositories.flush()
        self._taken.committed(repositories.status_lists.written)
        if inner.outbox.staged and self._after_outbox is not None:
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

    async def claim_many(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """`claim` for many `(source, id)` keys in one statement: the keys claimed now."""
        return await inbox.claim_many(self.conn, INBOX_CONSUMER, keys)

    async def release(self, event_id: str, *, source: str = "") -> None:
        await self.conn.execute(
            "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2 AND source IN ($3, '')",
            INBOX_CONSUMER,
            event_id,
            source,
        )


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
