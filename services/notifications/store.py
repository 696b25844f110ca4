"""PostgreSQL adapter of the notifications service (schema `notifications`): SQL only.

Implements the unit-of-work port of `ports.py`. Both queues (`notifications` for e-mail,
`webhook_deliveries` for partners) are the one shared `LeaseQueue`: claimed with
`FOR UPDATE SKIP LOCKED`, a lease and a claim token, finished only by the token's holder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from iioe.runtime import inbox
from iioe.runtime.db import Conn
from iioe.runtime.lease_queue import Claim, LeaseQueue, QueueTable
from services.notifications.domain import ERASED, Contact, Notification, NotificationStatus, Session
from services.notifications.ports import (
    ClaimedDelivery,
    ClaimedNotification,
    NewDelivery,
    NewWebhook,
)

MAIL_QUEUE = LeaseQueue(
    QueueTable(
        table="notifications",
        key="notification_id",
        columns=("event_id", "event_type", "kind", "channel", "educator_id", "recipient", "language", "context"),
        pending="pending",
        claimed="sending",
        done="sent",
        dead="failed",
        done_at="sent_at",
        writable=frozenset({"recipient", "last_error"}),
    )
)
DELIVERY_QUEUE = LeaseQueue(
    QueueTable(
        table="webhook_deliveries",
        key="delivery_id",
        columns=("webhook_id", "event_id", "event_subject", "body"),
        pending="pending",
        claimed="sending",
        done="delivered",
        dead="dead",
        done_at="delivered_at",
        eligible="EXISTS (SELECT 1 FROM webhooks w WHERE w.webhook_id = q.webhook_id AND w.deleted_at IS NULL)",
        writable=frozenset({"last_status_code", "last_error"}),
    )
)
_NOTIFICATION_COLUMNS = (
    "notification_id, event_id, event_type, kind, channel, educator_id, recipient, language, context, status,"
    " attempts, last_error"
)


def _notification(row: Any) -> Notification:
    context = row["context"]
    return Notification(
        notification_id=row["notification_id"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        kind=row["kind"],
        educator_id=row["educator_id"],
        context=json.loads(context) if isinstance(context, str) else dict(context),
        status=NotificationStatus(row["status"]),
        channel=row["channel"],
        recipient=row["recipient"],
        language=row["language"],
        attempts=row["attempts"],
        last_error=row["last_error"],
    )


@dataclass(frozen=True)
class PgInbox:
    conn: Conn

    async def claim(self, consumer: str, event_id: str) -> bool:
        return await inbox.claim(self.conn, consumer, event_id)


@dataclass(frozen=True)
class PgContacts:
    conn: Conn

    async def lock(self, educator_id: str) -> None:
        await self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('notifications:' || $1))", educator_id)

    async def upsert(self, contact: Contact, event_time: datetime) -> bool:
        updated = await self.conn.fetchval(
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

    async def get(self, educator_id: str) -> Contact | None:
        row = await self.conn.fetchrow(
            "SELECT educator_id, institution, full_name, email, language FROM contacts WHERE educator_id = $1",
            educator_id,
        )
        return Contact(**dict(row)) if row else None

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


@dataclass(frozen=True)
class PgNotifications:
    conn: Conn

    async def add(self, n: Notification) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO notifications (notification_id, event_id, event_type, kind, channel, educator_id,"
            " recipient, language, context, status, institution, certificate_id)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            " ON CONFLICT (notification_id) DO NOTHING RETURNING 1",
            n.notification_id,
            n.event_id,
            n.event_type,
            n.kind,
            n.channel,
            n.educator_id,
            n.recipient,
            n.language,
            dict(n.context),
            str(n.status),
            n.institution,
            n.certificate_id,
        )
        return inserted is not None

    async def awaiting_contact(self, educator_id: str) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE educator_id = $1 AND status = 'awaiting_contact'"
            " ORDER BY created_at, notification_id",
            educator_id,
        )
        return [_notification(r) for r in rows]

    async def overdue(self, created_before: datetime, limit: int) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE status IN ('awaiting_contact', 'held')"
            " AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            created_before,
            limit,
        )
        return [_notification(r) for r in rows]

    async def of_certificate(self, certificate_id: str, kind: str) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE certificate_id = $1 AND kind = $2",
            certificate_id,
            kind,
        )
        return [_notification(r) for r in rows]

    async def held(self, certificate_id: str) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE certificate_id = $1 AND status = 'held'"
            " ORDER BY created_at, notification_id",
            certificate_id,
        )
        return [_notification(r) for r in rows]

    async def erase(self, educator_id: str) -> int:
        stopped = await self.conn.fetchval(
            "WITH stopped AS (UPDATE notifications SET status = 'expired', last_error = $2, claim_token = NULL,"
            "  lease_until = NULL WHERE educator_id = $1"
            "  AND status IN ('held', 'awaiting_contact', 'pending', 'sending')"
            "  RETURNING 1) SELECT count(*) FROM stopped",
            educator_id,
            ERASED,
        )
        await self.conn.execute("UPDATE notifications SET recipient = NULL WHERE educator_id = $1", educator_id)
        return int(stopped or 0)

    async def save(self, n: Notification, expected: NotificationStatus) -> bool:
        """A transition outside the send queue (contact arrived, expired); pending rows are due now."""
        result: str = await self.conn.execute(
            "UPDATE notifications SET status = $3, recipient = $4, language = $5, last_error = $6,"
            " next_attempt_at = CASE WHEN $3 = 'pending' THEN now() ELSE next_attempt_at END"
            " WHERE notification_id = $1 AND status = $2",
            n.notification_id,
            str(expected),
            str(n.status),
            n.recipient,
            n.language,
            n.last_error,
        )
        return result.endswith(" 1")

    async def find(
        self, educator_id: str | None, status: str | None, institution: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT notification_id, event_id, event_type, kind, channel, educator_id, institution, recipient,"
            " language, status, attempts, last_error, created_at, sent_at, next_attempt_at FROM notifications"
            " WHERE ($1::text IS NULL OR educator_id = $1) AND ($2::text IS NULL OR status = $2)"
            " AND ($3::text IS NULL OR institution = $3)"
            " ORDER BY created_at, notification_id LIMIT $4",
            educator_id,
            status,
            institution,
            limit,
        )
        return [dict(r) for r in rows]


@dataclass(frozen=True)
class PgMailQueue:
    conn: Conn

    async def claim(self, limit: int, lease_seconds: float) -> list[ClaimedNotification]:
        claims = await MAIL_QUEUE.claim(self.conn, limit, lease_seconds)
        return [
            ClaimedNotification(
                _notification(
                    {**c.row, "notification_id": c.key, "status": "sending", "attempts": c.attempts, "last_error": None}
                ),
                c.token,
            )
            for c in claims
        ]

    async def finish(self, claimed: ClaimedNotification, outcome: Notification) -> bool:
        n = claimed.notification
        claim = _claim(n.notification_id, claimed.token, n.attempts)
        if outcome.status is NotificationStatus.SENT:
            return await MAIL_QUEUE.done(self.conn, claim, recipient=outcome.recipient, last_error=None)
        if outcome.status is NotificationStatus.PENDING:
            return await MAIL_QUEUE.retry(
                self.conn, claim, outcome.retry_after_seconds or 0.0, last_error=outcome.last_error
            )
        if outcome.status is NotificationStatus.FAILED:
            return await MAIL_QUEUE.dead(self.conn, claim, last_error=outcome.last_error)
        raise ValueError(f"a claimed notification cannot end as {outcome.status}")

    async def extend(self, claimed: Sequence[ClaimedNotification], lease_seconds: float) -> int:
        claims = [_claim(c.notification.notification_id, c.token, c.notification.attempts) for c in claimed]
        return await MAIL_QUEUE.extend(self.conn, claims, lease_seconds)


def _claim(key: str, token: uuid.UUID, attempts: int) -> Claim:
    """The queue's view of a claim the worker still holds (its key and token are what count)."""
    return Claim(key=key, token=token, attempts=attempts, row={})


@dataclass(frozen=True)
class PgWebhooks:
    conn: Conn

    async def create(self, w: NewWebhook) -> dict[str, Any]:
        row = await self.conn.fetchrow(
            "INSERT INTO webhooks (webhook_id, url, institution, event_types, secret) VALUES ($1, $2, $3, $4, $5)"
            " RETURNING webhook_id, url, institution, event_types, created_at",
            w.webhook_id,
            w.url,
            w.institution,
            w.event_types,
            w.secret,
        )
        assert row is not None
        return dict(row)

    async def live(self) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
            "SELECT webhook_id, url, institution, event_types, created_at FROM webhooks"
            " WHERE deleted_at IS NULL ORDER BY created_at, webhook_id"
        )
        return [dict(r) for r in rows]

    async def delete(self, webhook_id: str) -> bool:
        result: str = await self.conn.execute(
            "UPDATE webhooks SET deleted_at = now() WHERE webhook_id = $1 AND deleted_at IS NULL", webhook_id
        )
        return result.endswith(" 1")

    async def matching(self, institution: str, event_type: str) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT webhook_id FROM webhooks WHERE deleted_at IS NULL AND institution IN ($1, '*')"
            " AND $2 = ANY(event_types) ORDER BY webhook_id",
            institution,
            event_type,
        )
        return [r["webhook_id"] for r in rows]


@dataclass(frozen=True)
class PgDeliveries:
    conn: Conn

    async def add(self, d: NewDelivery) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, event_type, event_subject, body,"
            " status) VALUES ($1, $2, $3, $4, $5, $6, 'pending') ON CONFLICT DO NOTHING RETURNING 1",
            d.delivery_id,
            d.webhook_id,
            d.event_id,
            d.event_type,
            d.event_subject,
            d.body,
        )
        return inserted is not None

    async def claim(self, lease_seconds: float) -> ClaimedDelivery | None:
        claims = await DELIVERY_QUEUE.claim(self.conn, 1, lease_seconds)
        if not claims:
            return None
        c = claims[0]
        hook = await self.conn.fetchrow("SELECT url, secret FROM webhooks WHERE webhook_id = $1", c.row["webhook_id"])
        assert hook is not None  # the queue only hands out deliveries of existing webhooks
        return ClaimedDelivery(
            delivery_id=c.key,
            webhook_id=c.row["webhook_id"],
            url=hook["url"],
            secret=hook["secret"],
            event_id=c.row["event_id"],
            event_subject=c.row["event_subject"],
            body=c.row["body"],
            attempts=c.attempts,
            token=c.token,
        )

    async def delivered(self, d: ClaimedDelivery, status_code: int | None) -> bool:
        claim = _claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.done(self.conn, claim, last_status_code=status_code, last_error=None)

    async def extend(self, d: ClaimedDelivery, lease_seconds: float) -> bool:
        claim = _claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.extend(self.conn, [claim], lease_seconds) == 1

    async def retry(self, d: ClaimedDelivery, status_code: int | None, error: str | None, after: float) -> bool:
        claim = _claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.retry(self.conn, claim, after, last_status_code=status_code, last_error=error)

    async def dead(self, d: ClaimedDelivery, status_code: int | None, error: str | None) -> bool:
        claim = _claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.dead(self.conn, claim, last_status_code=status_code, last_error=error)

    async def cancel_pending(self, webhook_id: str) -> int:
        result: str = await self.conn.execute(
            "UPDATE webhook_deliveries SET status = 'cancelled', claim_token = NULL"
            " WHERE webhook_id = $1 AND status = 'pending'",
            webhook_id,
        )
        return int(result.split()[-1])

    async def redrive(self, delivery_id: str) -> bool:
        result: str = await self.conn.execute(
            "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()"
            " WHERE delivery_id = $1 AND status = 'dead'",
            delivery_id,
        )
        return result.endswith(" 1")

    async def find(
        self, status: str | None, webhook_id: str | None, event_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self.conn.fetch(
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


@dataclass(frozen=True)
class PgCascade:
    conn: Conn

    async def add_session(self, s: Session) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO training_sessions"
            " (session_id, institution, master_teacher_id, region, mode, held_on, language)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING 1",
            s.session_id,
            s.institution,
            s.master_teacher_id,
            s.region,
            s.mode,
            s.held_on,
            s.language,
        )
        return inserted is not None

    async def session(self, session_id: str) -> Session | None:
        row = await self.conn.fetchrow(
            "SELECT session_id, institution, master_teacher_id, region, mode, held_on, language"
            " FROM training_sessions WHERE session_id = $1",
            session_id,
        )
        return Session(**dict(row)) if row else None

    async def add_attendance(self, session_id: str, educator_id: str, institution: str, event_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO attendances (session_id, educator_id, institution, event_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            session_id,
            educator_id,
            institution,
            event_id,
        )
        return inserted is not None

    async def attendances(self, session_id: str) -> list[tuple[str, str, str]]:
        rows = await self.conn.fetch(
            "SELECT educator_id, institution, event_id FROM attendances WHERE session_id = $1 ORDER BY educator_id",
            session_id,
        )
        return [(r["educator_id"], r["institution"], r["event_id"]) for r in rows]

    async def add_completion(self, educator_id: str, course_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO course_completions (educator_id, course_id) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            educator_id,
            course_id,
        )
        return inserted is not None

    async def add_certified(self, educator_id: str, certificate_id: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO certified (educator_id, certificate_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            educator_id,
            certificate_id,
        )
        return inserted is not None

    async def master_teachers(self, held_until: date) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT s.master_teacher_id FROM training_sessions s"
            " JOIN attendances a ON a.session_id = s.session_id WHERE s.held_on <= $1 ORDER BY 1",
            held_until,
        )
        return [r["master_teacher_id"] for r in rows]

    async def digest_facts(self, master_teacher_id: str, first: date, last: date) -> dict[str, int]:
        row = await self.conn.fetchrow(
            "WITH mine AS (SELECT a.educator_id, s.session_id, s.held_on FROM training_sessions s"
            "  JOIN attendances a ON a.session_id = s.session_id WHERE s.master_teacher_id = $1 AND s.held_on <= $3),"
            " trainees AS (SELECT DISTINCT educator_id FROM mine)"
            " SELECT (SELECT count(*) FROM trainees) AS trainees,"
            "  (SELECT count(DISTINCT educator_id) FROM mine WHERE held_on >= $2) AS new_trainees,"
            "  (SELECT count(*) FROM training_sessions WHERE master_teacher_id = $1 AND held_on BETWEEN $2 AND $3)"
            "   AS sessions,"
            "  (SELECT count(*) FROM trainees t WHERE EXISTS"
            "   (SELECT 1 FROM course_completions c WHERE c.educator_id = t.educator_id)) AS trainees_completing,"
            "  (SELECT count(*) FROM trainees t WHERE EXISTS"
            "   (SELECT 1 FROM certified c WHERE c.educator_id = t.educator_id)) AS trainees_certified",
            master_teacher_id,
            first,
            last,
        )
        assert row is not None
        return {key: int(value) for key, value in dict(row).items()}

    async def claim_digest(self, master_teacher_id: str, month: str) -> bool:
        inserted = await self.conn.fetchval(
            "INSERT INTO digests (educator_id, month) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
            master_teacher_id,
            month,
        )
        return inserted is not None

    async def forget(self, educator_id: str) -> None:
        for table in ("attendances", "course_completions", "certified"):
            await self.conn.execute(f"DELETE FROM {table} WHERE educator_id = $1", educator_id)


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
