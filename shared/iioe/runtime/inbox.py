"""The inbox: a consumer records each processed event id in the same transaction as its effect."""

from __future__ import annotations

from iioe.runtime.db import Conn


async def claim(conn: Conn, consumer: str, event_id: str) -> bool:
    """True the first time `(consumer, event_id)` is seen; call inside the effect's transaction.

    A rollback of the effect also removes the claim, so a failed attempt is retried in full.
    """
    row = await conn.fetchval(
        "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
        consumer,
        event_id,
    )
    return row is not None
