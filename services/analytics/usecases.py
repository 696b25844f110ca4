"""Use case of the analytics service: project events into the projections, each exactly once.

The inbox is keyed by CloudEvent id (not stream sequence): the same event may reach the stream
twice — a partner re-sending after the duplicate window, a dead letter re-driven — and must still
count once. The claim and the projection share one transaction, so a failed attempt leaves no
claim behind and its retry applies the event in full.

The use case sees only the unit-of-work port below; the composition root (`main.py`), the
rebuild (`rebuild.py`) and the unit tests (`tests/fakes.py`) each hand it their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from services.analytics.domain import ProjectionDeltas, ProjectionEvent, split_events, unique_by_id


class ProjectionRepository(Protocol):
    async def apply(self, deltas: ProjectionDeltas) -> None:
        """Apply the facts of events already claimed in the same transaction."""


class Inbox(Protocol):
    async def claim(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Record the `(source, id)` keys; return those never seen before (the ones to project)."""


class ProjectionTransaction(Protocol):
    @property
    def projections(self) -> ProjectionRepository: ...

    @property
    def inbox(self) -> Inbox: ...


class ProjectionUnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[ProjectionTransaction]:
        """One atomic change: everything done through the yielded repositories commits together."""


@dataclass(frozen=True)
class Outcome:
    applied: int
    duplicates: int


class Projector:
    """Projects batches (the fast path: one transaction per fetched batch) or single events."""

    def __init__(self, uow: ProjectionUnitOfWork, on_change: Callable[[], None] = lambda: None) -> None:
        self._uow = uow
        self._on_change = on_change
        self.applied = 0
        self.duplicates = 0

    async def project(self, event: ProjectionEvent) -> bool:
        """Project one event; False when it was projected before (a duplicate)."""
        return (await self._project([event])).applied == 1

    async def project_batch(self, events: Sequence[ProjectionEvent]) -> Outcome:
        """Project a batch in one transaction; duplicates within it and from before count once."""
        return await self._project(events)

    async def _project(self, events: Sequence[ProjectionEvent]) -> Outcome:
        unique = unique_by_id(events)
        async with self._uow.transaction() as tx:
            fresh = await tx.inbox.claim([e.key for e in unique])
            new_events = [e for e in unique if e.key in fresh]
            if new_events:
                await tx.projections.apply(split_events(new_events))
        outcome = Outcome(applied=len(new_events), duplicates=len(events) - len(new_events))
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        if outcome.applied:
            self._on_change()
        return outcome
