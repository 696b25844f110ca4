"""PostgreSQL adapter of the notifications service, part 2: the notifications and the e-mail queue.

The `notifications` table is the one shared `LeaseQueue` (`MAIL_QUEUE`): claimed with
`FOR UPDATE SKIP LOCKED`, a lease and a claim token, finished only by the token's holder.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from iioe.runtime.db import Conn
from iioe.runtime.lease_queue import Claim, LeaseQueue, QueueTable
from services.notifications.domain import ERASED, Notification, NotificationStatus
from services.notifications.ports import ClaimedNotification

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

    async def add_many(self, notifications: Sequence[Notification]) -> set[str]:
        if not notifications:
            return set()
        rows = await self.conn.fetch(
            "INSERT INTO notifications (notification_id, event_id, event_type, kind, channel, educator_id,"
            " recipient, language, context, status, institution, certificate_id)"
            " SELECT i, e, t, k, ch, ed, r, l, c::jsonb, st, inst, cert FROM unnest($1::text[], $2::text[],"
            "  $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],"
            "  $11::text[], $12::text[]) AS n(i, e, t, k, ch, ed, r, l, c, st, inst, cert)"
            " ON CONFLICT (notification_id) DO NOTHING RETURNING notification_id",
            [n.notification_id for n in notifications],
            [n.event_id for n in notifications],
            [n.event_type for n in notifications],
            [n.kind for n in notifications],
            [n.channel for n in notifications],
            [n.educator_id for n in notifications],
            [n.recipient for n in notifications],
            [n.language for n in notifications],
            [json.dumps(dict(n.context)) for n in notifications],  # what the pool's jsonb codec writes
            [str(n.status) for n in notifications],
            [n.institution for n in notifications],
            [n.certificate_id for n in notifications],
        )
        return {r["notification_id"] for r in rows}

    async def awaiting_contact_many(self, educator_ids: Sequence[str]) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_COLUMNS} FROM notifications WHERE educator_id = ANY($1::text[])"
            " AND status = 'awaiting_contact' ORDER BY created_at, notification_id",
            list(educator_ids),
        )
        return [_notification(r) for r in rows]

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

    async def with_held(self, certificate_ids: Sequence[str]) -> set[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT certificate_id FROM notifications WHERE certificate_id = ANY($1::text[])"
            " AND status = 'held'",
            list(certificate_ids),
        )
        return {r["certificate_id"] for r in rows}

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
        claim = held_claim(n.notification_id, claimed.token, n.attempts)
        if outcome.status is NotificationStatus.SENT:
            return await MAIL_QUEUE.done(self.conn, claim, recipient=outcome.recipient, last_error=None)
        if outcome.status is NotificationStatus.PENDING:
            return await MAIL_QUEUE.retry(
                self.conn, claim, outcome.retry_after_seconds or 0.0, last_error=outcome.last_error
            )
        if outcome.status is NotificationStatus.FAILED:
            return await MAIL_QUEUE.dead(self.conn, claim, last_error=outcome.last_error)
        raise ValueError(f"a claimed notification cannot end as {outcome.status}")

    async def finish_many(self, outcomes: Sequence[tuple[ClaimedNotification, Notification]]) -> list[bool]:
        """The sent ones in one UPDATE (what `MAIL_QUEUE.done` does, for many claims); the rest one by one."""
        sent = [(c, o) for c, o in outcomes if o.status is NotificationStatus.SENT]
        done: set[str] = set()
        if sent:
            rows = await self.conn.fetch(
                "UPDATE notifications q SET status = 'sent', claim_token = NULL, lease_until = NULL,"
                " sent_at = now(), recipient = c.recipient, last_error = NULL"
                " FROM unnest($1::text[], $2::uuid[], $3::text[]) AS c(key, token, recipient)"
                " WHERE q.notification_id = c.key AND q.claim_token = c.token"
                " RETURNING q.notification_id",
                [c.notification.notification_id for c, _ in sent],
                [c.token for c, _ in sent],
                [o.recipient for _, o in sent],
            )
            done = {r["notification_id"] for r in rows}
        results: list[bool] = []
        for claimed, outcome in outcomes:
            if outcome.status is NotificationStatus.SENT:
                results.append(claimed.notification.notification_id in done)
            else:
                results.append(await self.finish(claimed, outcome))
        return results

    async def extend(self, claimed: Sequence[ClaimedNotification], lease_seconds: float) -> int:
        claims = [held_claim(c.notification.notification_id, c.token, c.notification.attempts) for c in claimed]
        return await MAIL_QUEUE.extend(self.conn, claims, lease_seconds)


def held_claim(key: str, token: uuid.UUID, attempts: int) -> Claim:
    """The queue's view of a claim the worker still holds (its key and token are what count)."""
    return Claim(key=key, token=token, attempts=attempts, row={})
