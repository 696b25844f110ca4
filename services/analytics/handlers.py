"""The live consumer of `iioe.events.>`: each event is projected exactly once.

The inbox is keyed by CloudEvent id (not stream sequence): the same event may reach the
stream twice — a partner re-sending after the duplicate window, a dead letter re-driven —
and must still count once. Claim and projection share one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from iioe.runtime.consumer import ReceivedEvent
from iioe.runtime.inbox import claim
from iioe.runtime.logging import get_logger
from iioe.runtime.service import ServiceRuntime
from services.analytics import store
from services.analytics.projections import ProjectionRules, split_events, unique_by_id

log = get_logger(__name__)


class Projector:
    """Handlers for the runtime's consumer: a batch fast path and a per-message fallback."""

    def __init__(self, runtime: ServiceRuntime, rules: ProjectionRules, on_change: Callable[[], None]) -> None:
        self._runtime = runtime
        self._rules = rules
        self._on_change = on_change
        self.applied = 0
        self.duplicates = 0

    async def on_event(self, received: ReceivedEvent) -> None:
        """Fallback path (a batch failed, or a batch of one): the runtime retries/dead-letters this one."""
        async with self._runtime.transaction() as conn:
            await store.hold_projection_lock(conn)
            if not await claim(conn, store.INBOX_CONSUMER, received.id):
                self.duplicates += 1
                log.debug("duplicate event skipped")
                return
            await store.apply(conn, split_events([received.event]), self._rules)
        self.applied += 1
        self._on_change()

    async def on_batch(self, batch: Sequence[ReceivedEvent]) -> None:
        """Fast path: one transaction for the whole fetched batch (inbox claim included)."""
        events = unique_by_id(r.event for r in batch)
        async with self._runtime.transaction() as conn:
            await store.hold_projection_lock(conn)
            fresh = await store.claim_many(conn, store.INBOX_CONSUMER, [e.id for e in events])
            new_events = [e for e in events if e.id in fresh]
            if new_events:
                await store.apply(conn, split_events(new_events), self._rules)
        skipped = len(batch) - len(new_events)
        self.applied += len(new_events)
        self.duplicates += skipped
        log.info("batch projected", received=len(batch), applied=len(new_events), duplicates=skipped)
        if new_events:
            self._on_change()
