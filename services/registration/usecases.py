"""The registration application service: commands in, replies out, one transaction per command.

It sees only a unit-of-work port (below), so the same code runs on PostgreSQL (`store.py`) and on
the in-memory fake of the unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel

from iioe.commands import RegisterEducatorReply
from iioe.runtime.logging import get_logger
from services.registration.domain import Educator, RegisterEducator, new_educator, new_educator_id

log = get_logger(__name__)


class Educators(Protocol):
    """The educators repository, unique per (institution, e-mail key)."""

    async def add(self, educator: Educator) -> bool:
        """Store `educator`; False (and nothing stored) when its e-mail is already registered there."""
        ...

    async def id_for_email(self, institution: str, email_key: str) -> str | None: ...

    async def get(self, educator_id: str) -> Educator | None: ...


class Outbox(Protocol):
    """Events staged here are published after, and only if, the transaction commits."""

    async def enqueue_event(self, event: BaseModel, *, source: str, subject: str) -> None: ...


class Transaction(Protocol):
    @property
    def educators(self) -> Educators: ...

    @property
    def outbox(self) -> Outbox: ...


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """Commits when the block exits normally, rolls back when it raises."""
        ...


def utc_now() -> datetime:
    return datetime.now(UTC)


class Registrations:
    """Registers educators idempotently per (institution, e-mail)."""

    def __init__(
        self,
        uow: UnitOfWork,
        institutions: Container[str],
        *,
        source: str,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_educator_id,
    ) -> None:
        self._uow = uow
        self._institutions = institutions
        self._source = source
        self._clock = clock
        self._new_id = new_id

    async def register(self, command: RegisterEducator) -> RegisterEducatorReply:
        """Store the educator and stage EducatorRegistered + EducatorContact — or return the first id."""
        educator = new_educator(command, self._institutions, now=self._clock(), educator_id=self._new_id())
        async with self._uow.transaction() as tx:
            if not await tx.educators.add(educator):
                existing = await tx.educators.id_for_email(educator.institution, educator.email_key)
                assert existing is not None, "add() refused but no educator has this e-mail"
                log.info("already registered", educator_id=existing, institution=educator.institution)
                return RegisterEducatorReply(educator_id=existing, status="already_registered")
            for event in educator.events():
                await tx.outbox.enqueue_event(event, source=self._source, subject=educator.educator_id)
        log.info("educator registered", educator_id=educator.educator_id, institution=educator.institution)
        return RegisterEducatorReply(educator_id=educator.educator_id, status="registered")

    async def educator(self, educator_id: str) -> Educator | None:
        async with self._uow.transaction() as tx:
            return await tx.educators.get(educator_id)
