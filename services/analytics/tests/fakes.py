"""In-memory adapters for the analytics use cases (cosmicpython's FakeUnitOfWork): stateful, no servers.

The projections are the pure `ProjectionState` of the domain (the SQL store is checked against it in
`test_store_matches_domain.py`); the inbox is a set of ids. A transaction works on copies and only
publishes them when its block ends without an exception, so a failure rolls back like PostgreSQL.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from services.analytics.domain import ProjectionDeltas, ProjectionRules, ProjectionState


class FakeProjections:
    def __init__(self, state: ProjectionState, fail: bool = False) -> None:
        self.state = state
        self._fail = fail

    async def apply(self, deltas: ProjectionDeltas) -> None:
        if self._fail:
            raise ConnectionError("fake database went away")
        self.state.apply(deltas)


class FakeInbox:
    def __init__(self, seen: set[tuple[str, str]]) -> None:
        self.seen = seen

    async def claim(self, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        fresh = {k for k in keys if k not in self.seen}
        self.seen |= fresh
        return fresh


class FakeTransaction:
    def __init__(self, projections: FakeProjections, inbox: FakeInbox) -> None:
        self.projections = projections
        self.inbox = inbox


class FakeQueries:
    """The reports' queries answered from the state (async, like the store's)."""

    def __init__(self, state: ProjectionState) -> None:
        self._state = state

    async def institution_counts(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        return self._state.institution_counts(institution)

    async def course_counts(self, institution: str | None = None) -> list[dict[str, Any]]:
        return self._state.course_counts(institution)

    async def programme_counts(self) -> list[dict[str, Any]]:
        return self._state.programme_counts()

    async def recognition_totals(self) -> tuple[int, float]:
        return self._state.recognition_totals()

    async def monthly(self, institution: str | None = None) -> dict[str, dict[str, int]]:
        return self._state.monthly(institution)

    async def registrations_in_month(self, month: str) -> list[tuple[str, int]]:
        return self._state.registrations_in_month(month)

    async def has_institution(self, code: str) -> bool:
        return self._state.has_institution(code)

    async def cascade(self) -> list[dict[str, Any]]:
        return self._state.cascade()

    async def cascade_totals(self) -> dict[str, int]:
        return self._state.cascade_totals()

    async def cascade_breakdown(self, educator_id: str) -> dict[str, list[dict[str, Any]]]:
        return self._state.cascade_breakdown(educator_id)

    async def transfer_counts(self) -> list[dict[str, Any]]:
        return self._state.transfer_counts()

    async def practice_counts(self) -> dict[str, dict[str, int]]:
        return self._state.practice_counts()

    async def feedback_counts(self) -> list[dict[str, Any]]:
        return self._state.feedback_counts()

    async def as_of_groups(self, cutoff: datetime, day: date, programme_id: str) -> list[dict[str, Any]]:
        return self._state.as_of_groups(cutoff, day, programme_id)

    async def as_of_credits(self, cutoff: datetime) -> dict[str, dict[str, Any]]:
        return self._state.as_of_credits(cutoff)

    async def as_of_course_languages(self, cutoff: datetime) -> dict[str, dict[str, int]]:
        return self._state.as_of_course_languages(cutoff)

    async def as_of_regions(self, day: date) -> dict[str, dict[str, int]]:
        return self._state.as_of_regions(day)

    async def as_of_programmes(self, cutoff: datetime) -> dict[str, int]:
        return self._state.as_of_programmes(cutoff)

    async def as_of_cascade(self, day: date) -> dict[str, int]:
        return self._state.as_of_cascade(day)


class FakeUnitOfWork:
    """Both ports at once: `transaction()` for the Projector, `snapshot()` for the Reports."""

    def __init__(self, rules: ProjectionRules) -> None:
        self.state = ProjectionState(rules)
        self.inbox: set[tuple[str, str]] = set()
        self.commits = 0
        self.rollbacks = 0
        self.fail_next_apply = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        state, inbox = copy.deepcopy(self.state), set(self.inbox)
        fail, self.fail_next_apply = self.fail_next_apply, False
        try:
            yield FakeTransaction(FakeProjections(state, fail), FakeInbox(inbox))
        except BaseException:
            self.rollbacks += 1
            raise
        self.state, self.inbox = state, inbox
        self.commits += 1

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[FakeQueries]:
        yield FakeQueries(self.state)
