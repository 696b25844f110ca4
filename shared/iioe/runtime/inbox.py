"""The inbox: a consumer records each processed event in the same transaction as its effect.

An event is identified by `(source, id)`, as CloudEvents defines uniqueness: `id` is only unique
per `source`, so two partners may both send `evt-1` and both are applied. Rows written before the
inbox knew sources (source `''`, migration `runtime/002_inbox_source`) still match their id from
any source, so an upgrade never applies an already-processed event again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from iioe.runtime.db import Conn

LEGACY_SOURCE = ""
"""Source of inbox rows recorded before `(source, id)` keys; matches every source."""

_CLAIM = """
INSERT INTO inbox (consumer, source, event_id)
SELECT $1, $2, $3
WHERE $2 = '' OR NOT EXISTS (SELECT 1 FROM inbox WHERE consumer = $1 AND source = '' AND event_id = $3)
ON CONFLICT DO NOTHING
RETURNING 1
"""

_CLAIM_MANY = """
INSERT INTO inbox (consumer, source, event_id)
SELECT $1, s, i FROM unnest($2::text[], $3::text[]) AS t(s, i)
WHERE s = '' OR NOT EXISTS (SELECT 1 FROM inbox l WHERE l.consumer = $1 AND l.source = '' AND l.event_id = i)
ON CONFLICT DO NOTHING
RETURNING source, event_id
"""


class _Identified(Protocol):
    @property
    def source(self) -> str: ...

    @property
    def id(self) -> str: ...


async def claim(conn: Conn, consumer: str, event_id: str, *, source: str = LEGACY_SOURCE) -> bool:
    """True the first time `(consumer, source, event_id)` is seen; call inside the effect's transaction.

    A rollback of the effect also removes the claim, so a failed attempt is retried in full. Pass the
    CloudEvent's `source` (or use `claim_event`); without it the id alone is the key, as before.
    """
    row = await conn.fetchval(_CLAIM, consumer, source, event_id)
    return row is not None


async def claim_event(conn: Conn, consumer: str, event: _Identified) -> bool:
    """`claim` keyed on a CloudEvent's `(source, id)`."""
    return await claim(conn, consumer, event.id, source=event.source)


async def claim_many(conn: Conn, consumer: str, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The inbox for a batch: the `(source, id)` keys never seen before, recorded now (caller's transaction)."""
    unique = list(dict.fromkeys(keys))
    if not unique:
        return set()
    rows = await conn.fetch(_CLAIM_MANY, consumer, [s for s, _ in unique], [i for _, i in unique])
    return {(r["source"], r["event_id"]) for r in rows}
