"""PostgreSQL repository of the notifications service (schema `notifications`).

The two queues (`notifications` for e-mail, `webhook_deliveries` for partners) are claimed with
`FOR UPDATE SKIP LOCKED`, so any number of workers and replicas share them without sending a row
twice; a claim carries a random token and a lease, and only the holder of the token may finish it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from iioe.events import EducatorContact

Conn = asyncpg.Connection | asyncpg.Pool


@dataclass(frozen=True)
class Contact:
    educator_id: str
    institution: str
    full_name: str
    email: str
    language: str


@dataclass(frozen=True)
class NewNotification:
    notification_id: str
    event_id: str
    event_type: str
    kind: str
    channel: str
    educator_id: str
    context: dict[str, Any]


@dataclass(frozen=True)
class ClaimedNotification:
    notification_id: str
    kind: str
    educator_id: str
    language: str | None
    context: dict[str, Any]
    attempts: int
    claim_token: uuid.UUID


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: str
    webhook_id: str
    url: str
    secret: str
    event_id: str
    event_subject: str
    body: bytes
    attempts: int
    claim_token: uuid.UUID


# -- contacts ---------------------------------------------------------------------------------


async def lock_educator(conn: asyncpg.Connection, educator_id: str) -> None:
    """Serialise the contact handler and the event handler for one educator (no lost hand-over)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('notifications:' || $1))", educator_id)


async def upsert_contact(conn: asyncpg.Connection, contact: EducatorContact, event_time: datetime) -> bool:
    """Store the newest contact; an older one arriving late (a redelivery) does not overwrite it."""
    updated = await conn.fetchval(
        "INSERT INTO contacts (educator_id, institution, full_name, email, language, event_time)"
        " VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (educator_id) DO UPDATE SET institution = EXCLUDED.institution,"
        "  full_name = EXCLUDED.full_name, email = EXCLUDED.email, language = EXCLUDED.language,"
        "  event_time = EXCLUDED.event_time, updated_at = now()"
        " WHERE contacts.event_time <= EXCLUDED.event_time"
        " RETURNING 1",
        contact.educator_id,
        contact.institution,
        contact.full_name,
        contact.email,
        contact.language,
        event_time,
    )
    return updated is not None


async def get_contacts(conn: Conn, educator_ids: list[str]) -> dict[str, Contact]:
    rows = await conn.fetch(
        "SELECT educator_id, institution, full_name, email, language FROM contacts WHERE educator_id = ANY($1)",
        educator_ids,
    )
    return {r["educator_id"]: Contact(**dict(r)) for r in rows}


async def release_awaiting(conn: asyncpg.Connection, contact: Contact) -> int:
    """Notifications that waited for this educator's address become sendable."""
    result: str = await conn.execute(
        "UPDATE notifications SET status = 'pending', recipient = $2, language = $3, next_attempt_at = now()"
        " WHERE educator_id = $1 AND status = 'awaiting_contact'",
        contact.educator_id,
        contact.email,
        contact.language,
    )
    return int(result.split()[-1])


# -- notifications (e-mail queue) -------------------------------------------------------------


async def insert_notification(conn: asyncpg.Connection, n: NewNotification, contact: Contact | None) -> bool:
    """Insert once per notification id; False when it already exists (duplicate or redelivered event)."""
    inserted = await conn.fetchval(
        "INSERT INTO notifications (notification_id, event_id, event_type, kind, channel, educator_id,"
        " recipient, language, context, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (notification_id) DO NOTHING RETURNING 1",
        n.notification_id,
        n.event_id,
        n.event_type,
        n.kind,
        n.channel,
        n.educator_id,
        contact.email if contact else None,
        contact.language if contact else None,
        n.context,
        "pending" if contact else "awaiting_contact",
    )
    return inserted is not None


async def claim_notifications(pool: asyncpg.Pool, limit: int, lease_seconds: float) -> list[ClaimedNotification]:
    """Take due rows (and `sending` rows whose worker's lease ran out, e.g. after a crash)."""
    token = uuid.uuid4()
    rows = await pool.fetch(
        "WITH due AS ("
        "  SELECT notification_id FROM notifications"
        "  WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()"
        "    AND (status = 'pending' OR lease_until < now())"
        "  ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, claim_token = $2,"
        "  lease_until = now() + make_interval(secs => $3)"
        " FROM due WHERE n.notification_id = due.notification_id"
        " RETURNING n.notification_id, n.kind, n.educator_id, n.language, n.context, n.attempts, n.claim_token",
        limit,
        token,
        lease_seconds,
    )
    return [ClaimedNotification(**dict(r)) for r in rows]


async def mark_sent(pool: asyncpg.Pool, n: ClaimedNotification, recipient: str) -> bool:
    result: str = await pool.execute(
        "UPDATE notifications SET status = 'sent', sent_at = now(), recipient = $3, last_error = NULL,"
        " claim_token = NULL, lease_until = NULL WHERE notification_id = $1 AND claim_token = $2",
        n.notification_id,
        n.claim_token,
        recipient,
    )
    return result.endswith(" 1")


async def mark_retry(pool: asyncpg.Pool, n: ClaimedNotification, error: str, delay_seconds: float) -> None:
    await pool.execute(
        "UPDATE notifications SET status = 'pending', last_error = $3, claim_token = NULL, lease_until = NULL,"
        " next_attempt_at = now() + make_interval(secs => $4) WHERE notification_id = $1 AND claim_token = $2",
        n.notification_id,
        n.claim_token,
        error,
        delay_seconds,
    )


async def mark_failed(pool: asyncpg.Pool, n: ClaimedNotification, error: str) -> None:
    await pool.execute(
        "UPDATE notifications SET status = 'failed', last_error = $3, claim_token = NULL, lease_until = NULL"
        " WHERE notification_id = $1 AND claim_token = $2",
        n.notification_id,
        n.claim_token,
        error,
    )


async def expire_awaiting(pool: asyncpg.Pool, older_than_seconds: float) -> int:
    """Give up on notifications whose contact never came (the contact stream has expired it)."""
    result: str = await pool.execute(
        "UPDATE notifications SET status = 'expired', last_error = 'no contact details received'"
        " WHERE status = 'awaiting_contact' AND created_at < now() - make_interval(secs => $1)",
        older_than_seconds,
    )
    return int(result.split()[-1])


async def list_notifications(
    pool: asyncpg.Pool, educator_id: str | None, status: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT notification_id, event_id, event_type, kind, channel, educator_id, recipient, language, status,"
        " attempts, last_error, created_at, sent_at, next_attempt_at FROM notifications"
        " WHERE ($1::text IS NULL OR educator_id = $1) AND ($2::text IS NULL OR status = $2)"
        " ORDER BY created_at, notification_id LIMIT $3",
        educator_id,
        status,
        limit,
    )
    return [dict(r) for r in rows]


# -- webhooks ---------------------------------------------------------------------------------


async def create_webhook(
    pool: asyncpg.Pool, webhook_id: str, url: str, institution: str, event_types: list[str], secret: str
) -> dict[str, Any]:
    row = await pool.fetchrow(
        "INSERT INTO webhooks (webhook_id, url, institution, event_types, secret) VALUES ($1, $2, $3, $4, $5)"
        " RETURNING webhook_id, url, institution, event_types, created_at",
        webhook_id,
        url,
        institution,
        event_types,
        secret,
    )
    assert row is not None
    return dict(row)


async def list_webhooks(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT webhook_id, url, institution, event_types, created_at FROM webhooks"
        " WHERE deleted_at IS NULL ORDER BY created_at, webhook_id"
    )
    return [dict(r) for r in rows]


async def delete_webhook(pool: asyncpg.Pool, webhook_id: str) -> bool:
    """Soft delete (history stays queryable); its queued deliveries are cancelled."""
    async with pool.acquire() as conn, conn.transaction():
        result: str = await conn.execute(
            "UPDATE webhooks SET deleted_at = now() WHERE webhook_id = $1 AND deleted_at IS NULL", webhook_id
        )
        if not result.endswith(" 1"):
            return False
        await conn.execute(
            "UPDATE webhook_deliveries SET status = 'cancelled', claim_token = NULL"
            " WHERE webhook_id = $1 AND status = 'pending'",
            webhook_id,
        )
    return True


async def matching_webhooks(conn: asyncpg.Connection, institution: str, event_type: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT webhook_id FROM webhooks WHERE deleted_at IS NULL AND institution IN ($1, '*')"
        " AND $2 = ANY(event_types) ORDER BY webhook_id",
        institution,
        event_type,
    )
    return [r["webhook_id"] for r in rows]


async def insert_delivery(
    conn: asyncpg.Connection,
    delivery_id: str,
    webhook_id: str,
    event_id: str,
    event_type: str,
    event_subject: str,
    body: bytes,
) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event_type, event_subject, body, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT DO NOTHING RETURNING 1",
        delivery_id,
        webhook_id,
        event_id,
        event_type,
        event_subject,
        body,
    )
    return inserted is not None


async def claim_delivery(pool: asyncpg.Pool, lease_seconds: float) -> ClaimedDelivery | None:
    """One due delivery for this worker, or None; replicas never get the same row."""
    token = uuid.uuid4()
    row = await pool.fetchrow(
        "WITH due AS ("
        "  SELECT d.delivery_id FROM webhook_deliveries d JOIN webhooks w USING (webhook_id)"
        "  WHERE d.status IN ('pending', 'sending') AND d.next_attempt_at <= now()"
        "    AND (d.status = 'pending' OR d.lease_until < now()) AND w.deleted_at IS NULL"
        "  ORDER BY d.next_attempt_at LIMIT 1 FOR UPDATE OF d SKIP LOCKED)"
        " UPDATE webhook_deliveries d SET status = 'sending', attempts = d.attempts + 1, claim_token = $1,"
        "  lease_until = now() + make_interval(secs => $2)"
        " FROM due, webhooks w WHERE d.delivery_id = due.delivery_id AND w.webhook_id = d.webhook_id"
        " RETURNING d.delivery_id, d.webhook_id, w.url, w.secret, d.event_id, d.event_subject, d.body,"
        "  d.attempts, d.claim_token",
        token,
        lease_seconds,
    )
    return ClaimedDelivery(**dict(row)) if row else None


async def finish_delivery(
    pool: asyncpg.Pool,
    d: ClaimedDelivery,
    *,
    status: str,
    status_code: int | None,
    error: str | None,
    delay_seconds: float = 0.0,
) -> None:
    """Record an attempt: `delivered`, `pending` again after `delay_seconds`, or `dead`."""
    await pool.execute(
        "UPDATE webhook_deliveries SET status = $3, last_status_code = $4, last_error = $5,"
        " claim_token = NULL, lease_until = NULL,"
        " next_attempt_at = now() + make_interval(secs => $6),"
        " delivered_at = CASE WHEN $3 = 'delivered' THEN now() END"
        " WHERE delivery_id = $1 AND claim_token = $2",
        d.delivery_id,
        d.claim_token,
        status,
        status_code,
        error,
        delay_seconds,
    )


async def list_deliveries(
    pool: asyncpg.Pool, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT delivery_id, webhook_id, event_id, event_type, status, attempts, last_status_code, last_error,"
        " next_attempt_at, created_at, delivered_at FROM webhook_deliveries"
        " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR webhook_id = $2)"
        " AND ($3::text IS NULL OR event_id = $3) ORDER BY created_at, delivery_id LIMIT $4",
        status,
        webhook_id,
        event_id,
        limit,
    )
    return [dict(r) for r in rows]


async def retry_delivery(pool: asyncpg.Pool, delivery_id: str) -> bool:
    """Operator re-drive of a dead delivery: a fresh retry budget, due now."""
    result: str = await pool.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()"
        " WHERE delivery_id = $1 AND status = 'dead'",
        delivery_id,
    )
    return result.endswith(" 1")
