"""PostgreSQL adapter of the notifications service, part 3: partner webhooks and their deliveries.

The `webhook_deliveries` table is the one shared `LeaseQueue` (`DELIVERY_QUEUE`), like the e-mail queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iioe.runtime.db import Conn
from iioe.runtime.lease_queue import LeaseQueue, QueueTable
from services.notifications.ports import ClaimedDelivery, NewDelivery, NewWebhook
from services.notifications.store_mail import held_claim

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
        claim = held_claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.done(self.conn, claim, last_status_code=status_code, last_error=None)

    async def extend(self, d: ClaimedDelivery, lease_seconds: float) -> bool:
        claim = held_claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.extend(self.conn, [claim], lease_seconds) == 1

    async def retry(self, d: ClaimedDelivery, status_code: int | None, error: str | None, after: float) -> bool:
        claim = held_claim(d.delivery_id, d.token, d.attempts)
        return await DELIVERY_QUEUE.retry(self.conn, claim, after, last_status_code=status_code, last_error=error)

    async def dead(self, d: ClaimedDelivery, status_code: int | None, error: str | None) -> bool:
        claim = held_claim(d.delivery_id, d.token, d.attempts)
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
