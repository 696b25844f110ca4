"""PostgreSQL adapter of the notifications service (schema `notifications`): SQL only.

Implements the unit-of-work port of `ports.py`. Both queues (`notifications` for e-mail,
`webhook_deliveries` for partners) are the one shared `LeaseQueue`: claimed with
`FOR UPDATE SKIP LOCKED`, a lease and a claim token, finished only by the token's holder.

The notifications and the e-mail queue are in `store_mail.py`, the webhooks and their
deliveries in `store_webhooks.py`, the cascade facts in `store_cascade.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from iioe.runtime import inbox
from iioe.runtime.db import Conn
from services.notifications.domain import Contact
from services.notifications.store_cascade import PgCascade
from services.notifications.store_mail import MAIL_QUEUE, PgMailQueue, PgNotifications
from services.notifications.store_webhooks import DELIVERY_QUEUE, PgDeliveries, PgWebhooks

__all__ = [
    "DELIVERY_QUEUE",
    "MAIL_QUEUE",
    "PgCascade",
    "PgContacts",
    "PgDeliveries",
    "PgErasures",
    "PgInbox",
    "PgMailQueue",
    "PgNotifications",
    "PgRepositories",
    "PgWebhooks",
    "PostgresUnitOfWork",
]


@dataclass(frozen=True)
class PgInbox:
    conn: Conn

    async def claim(self, consumer: str, event_id: str) -> bool:
        return await inbox.claim(self.conn, consumer, event_id)

    async def claim_many(self, consumer: str, event_ids: Sequence[str]) -> set[str]:
        claimed = await inbox.claim_many(self.conn, consumer, [(inbox.LEGACY_SOURCE, i) for i in event_ids])
        return {event_id for _, event_id in claimed}


_UPSERT = (
    "INSERT INTO contacts (educator_id, institution, full_name, email, language, event_time)"
    " VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (educator_id) DO UPDATE SET institution = EXCLUDED.institution,"
    "  full_name = EXCLUDED.full_name, email = EXCLUDED.email, language = EXCLUDED.language,"
    "  event_time = EXCLUDED.event_time, updated_at = now()"
    " WHERE contacts.event_time <= EXCLUDED.event_time"
)
"""The newest contact wins: a late redelivery of an older one changes nothing."""


@dataclass(frozen=True)
class PgContacts:
    conn: Conn

    async def lock(self, educator_id: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('notifications:' || $1))", educator_id)

    async def lock_many(self, educator_ids: Sequence[str]) -> None:
        await self.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('notifications:' || e.id))"
            " FROM (SELECT id FROM unnest($1::text[]) AS id ORDER BY id) AS e",
            sorted(set(educator_ids)),
        )

    async def upsert(self, contact: Contact, event_time: datetime) -> bool:
        updated = await self.conn.fetchval(
            _UPSERT + " RETURNING 1",
            contact.educator_id,
            contact.institution,
            contact.full_name,
            contact.email,
            contact.language,
            event_time,
        )
        return updated is not None

    async def upsert_many(self, contacts: Sequence[tuple[Contact, datetime]]) -> None:
        await self.conn.executemany(
            _UPSERT,
            [(c.educator_id, c.institution, c.full_name, c.email, c.language, t) for c, t in contacts],
        )

    async def get(self, educator_id: str) -> Contact | None:
        row = await self.conn.fetchrow(
            "SELECT educator_id, institution, full_name, email, language FROM contacts WHERE educator_id = $1",
            educator_id,
        )
        return Contact(**dict(row)) if row else None

    async def get_many(self, educator_ids: Sequence[str]) -> dict[str, Contact]:
        rows = await self.conn.fetch(
            "SELECT educator_id, institution, full_name, email, language FROM contacts"
            " WHERE educator_id = ANY($1::text[])",
            list(educator_ids),
        )
        return {r["educator_id"]: Contact(**dict(r)) for r in rows}

    async def delete(self, educator_id: str) -> bool:
        result: str = await self.conn.execute("DELETE FROM contacts WHERE educator_id = $1", educator_id)
        return result.endswith(" 1")


@dataclass(frozen=True)
class PgErasures:
    conn: Conn

    async def add(self, educator_id: str, erased_at: datetime) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO erasures (educator_id, erased_at) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            educator_id,
            erased_at,
        )
        return inserted is not None

    async def erased(self, educator_id: str) -> bool:
        found = await self.conn.fetchval("SELECT 1 FROM erasures WHERE educator_id = $1", educator_id)
        return found is not None

    async def erased_many(self, educator_ids: Sequence[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT educator_id FROM erasures WHERE educator_id = ANY($1::text[])", list(educator_ids)
        )
        return {r["educator_id"] for r in rows}


@dataclass(frozen=True)
class PgRepositories:
    inbox: PgInbox
    contacts: PgContacts
    notifications: PgNotifications
    mail: PgMailQueue
    webhooks: PgWebhooks
    deliveries: PgDeliveries
    erasures: PgErasures
    cascade: PgCascade


class PostgresUnitOfWork:
    """The unit of work on the service's database.

    Its transactions do not wake the outbox relay (`ServiceRuntime.transaction` does): this service
    writes no outbox rows, and its senders open a transaction every poll, which would keep the relay
    querying an empty outbox many times a second.
    """

    def __init__(self, pool: Callable[[], asyncpg.Pool]) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgRepositories]:
        async with self._pool().acquire() as conn, conn.transaction():
            yield PgRepositories(
                PgInbox(conn),
                PgContacts(conn),
                PgNotifications(conn),
                PgMailQueue(conn),
                PgWebhooks(conn),
                PgDeliveries(conn),
                PgErasures(conn),
                PgCascade(conn),
            )
