"""The ports of the registration use cases: what they need from storage, as protocols.

`store.py` implements them on PostgreSQL, `tests/fakes.py` in memory (the reference semantics).
"""

from __future__ import annotations

import contextvars
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel

from iioe.events.common import Role
from services.registration.domain import Educator


@dataclass(frozen=True)
class EducatorQuery:
    """Filters of `GET /v1/educators`: `institution` None means every one (operators only)."""

    institution: str | None = None
    q: str | None = None
    """A substring of the name or the e-mail, case-insensitive."""
    role: Role | None = None
    offset: int = 0
    limit: int | None = 50


class Educators(Protocol):
    """The educators repository, unique per (institution, e-mail key)."""

    async def add(self, educator: Educator) -> bool:
        """Store `educator`; False (and nothing stored) when its e-mail is already registered there."""
        ...

    async def id_for_email(self, institution: str, email_key: str) -> str | None: ...

    async def get(self, educator_id: str, *, lock: bool = False) -> Educator | None:
        """The educator; `lock` holds it until the transaction ends (concurrent changes queue up)."""
        ...

    async def update(self, educator: Educator) -> None:
        """Store the educator's role, name, e-mail and erasure as given."""
        ...

    async def search(self, query: EducatorQuery) -> tuple[int, list[Educator]]:
        """(total matches, one page) of the educators that are not erased, oldest first."""
        ...


class Records(Protocol):
    """Cascade and portfolio records, unique per (kind, record id): what makes their intake idempotent."""

    async def add(self, kind: str, record_id: str, *, institution: str, data: dict[str, Any], actor: str) -> bool:
        """Store the record; False (nothing stored) when (kind, record_id) exists."""
        ...

    async def get(self, kind: str, record_id: str) -> dict[str, Any] | None: ...


class Audit(Protocol):
    async def record(self, educator_id: str, action: str, *, actor: str, detail: dict[str, Any]) -> None:
        """Who did what to an educator (never personal data in `detail`)."""
        ...


class Outbox(Protocol):
    """Events staged here are published after, and only if, the transaction commits."""

    async def enqueue_event(
        self, event: BaseModel, *, source: str, subject: str, event_id: str | None = None, actor: str | None = None
    ) -> None:
        """Stage `event`; a given `event_id` already staged is ignored (staged once, published once).
        `actor` becomes the CloudEvent's `actor` extension attribute."""
        ...

    async def forget_contacts(self, educator_id: str) -> int:
        """Delete the educator's contact messages kept in the outbox (sent or not); how many."""
        ...


@dataclass(frozen=True)
class NewRegistration:
    """An educator to store with the events its registration stages (`Transaction.register_all`)."""

    educator: Educator
    events: tuple[BaseModel, ...]
    context: contextvars.Context
    """The registering command's own context: its events are built in it, so they carry its trace."""


class Transaction(Protocol):
    @property
    def educators(self) -> Educators: ...

    @property
    def records(self) -> Records: ...

    @property
    def audit(self) -> Audit: ...

    @property
    def outbox(self) -> Outbox: ...

    async def register_all(self, registrations: Sequence[NewRegistration], *, source: str) -> list[str | None]:
        """Per registration, what `educators.add` + `outbox.enqueue_event` of each event would do, for
        many at once: None when the educator was stored and its events staged; else the id already
        registered for its (institution, e-mail), nothing staged. Within the batch the first one wins."""
        ...


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Commits when the block exits normally, rolls back when it raises."""
        ...

    def statements(self) -> AbstractAsyncContextManager[Transaction]:
        """Each statement commits on its own: only for work that is one atomic statement (a batch of
        registrations), which then saves the BEGIN and COMMIT round trips."""
        ...
