"""An in-memory unit of work (cosmicpython's FakeUnitOfWork): stateful, transactional, no servers.

A transaction works on a copy of the committed state; only a block that exits normally commits it,
together with the events it staged, so tests see exactly what a real commit would publish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg
from pydantic import BaseModel

from services.registration.domain import Educator
from services.registration.ports import EducatorQuery, NewRegistration


class FakeEducators:
    def __init__(self, rows: dict[str, Educator]) -> None:
        self.rows = rows

    async def add(self, educator: Educator) -> bool:
        key = educator.email_key
        if key is not None and await self.id_for_email(educator.institution, key) is not None:
            return False
        self.rows[educator.educator_id] = educator
        return True

    async def id_for_email(self, institution: str, email_key: str) -> str | None:
        return next(
            (e.educator_id for e in self.rows.values() if (e.institution, e.email_key) == (institution, email_key)),
            None,
        )

    async def get(self, educator_id: str, *, lock: bool = False) -> Educator | None:
        return self.rows.get(educator_id)

    async def update(self, educator: Educator) -> None:
        self.rows[educator.educator_id] = educator

    async def search(self, query: EducatorQuery) -> tuple[int, list[Educator]]:
        def matches(e: Educator) -> bool:
            needle = (query.q or "").lower()
            return (
                not e.erased
                and query.institution in (None, e.institution)
                and query.role in (None, e.role)
                and (not needle or needle in (e.full_name or "").lower() or needle in (e.email or "").lower())
            )

        found = sorted((e for e in self.rows.values() if matches(e)), key=lambda e: (e.registered_at, e.educator_id))
        end = None if query.limit is None else query.offset + query.limit
        return len(found), found[query.offset : end]


@dataclass
class FakeRecords:
    rows: dict[tuple[str, str], dict[str, Any]]
    actors: dict[tuple[str, str], str]

    async def add(self, kind: str, record_id: str, *, institution: str, data: dict[str, Any], actor: str) -> bool:
        if (kind, record_id) in self.rows:
            return False
        self.rows[kind, record_id] = data
        self.actors[kind, record_id] = actor
        return True

    async def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        return self.rows.get((kind, record_id))


@dataclass(frozen=True)
class AuditEntry:
    educator_id: str
    action: str
    actor: str
    detail: dict[str, Any]


@dataclass
class FakeAudit:
    entries: list[AuditEntry]

    async def record(self, educator_id: str, action: str, *, actor: str, detail: dict[str, Any]) -> None:
        self.entries.append(AuditEntry(educator_id, action, actor, detail))


@dataclass(frozen=True)
class StagedEvent:
    event: BaseModel
    source: str
    subject: str
    event_id: str | None = None
    actor: str | None = None


@dataclass
class FakeOutbox:
    staged: list[StagedEvent] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    known_ids: set[str] = field(default_factory=set)

    async def enqueue_event(
        self, event: BaseModel, *, source: str, subject: str, event_id: str | None = None, actor: str | None = None
    ) -> None:
        """Like the outbox table: an `event_id` staged before (committed or in this transaction) is ignored."""
        if event_id is not None and event_id in self.known_ids:
            return
        if event_id is not None:
            self.known_ids.add(event_id)
        self.staged.append(StagedEvent(event, source, subject, event_id, actor))

    async def forget_contacts(self, educator_id: str) -> int:
        self.forgotten.append(educator_id)
        return 1


@dataclass
class FakeTransaction:
    educators: FakeEducators
    records: FakeRecords
    audit: FakeAudit
    outbox: FakeOutbox

    async def register_all(self, registrations: Sequence[NewRegistration], *, source: str) -> list[str | None]:
        """The port's meaning, spelled out: each in turn, as `Registrations` alone would do it."""
        found: list[str | None] = []
        for new in registrations:
            educator = new.educator
            if not await self.educators.add(educator):
                assert educator.email_key is not None
                found.append(await self.educators.id_for_email(educator.institution, educator.email_key))
                continue
            for event in new.events:
                await self.outbox.enqueue_event(event, source=source, subject=educator.educator_id)
            found.append(None)
        return found


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.educators: dict[str, Educator] = {}
        self.records: dict[tuple[str, str], dict[str, Any]] = {}
        self.record_actors: dict[tuple[str, str], str] = {}
        self.audit: list[AuditEntry] = []
        self.events: list[StagedEvent] = []
        """Events of committed transactions, in commit order (what the relay would publish)."""
        self.forgotten_contacts: list[str] = []
        self.commits = 0

    def statements(self) -> AbstractAsyncContextManager[FakeTransaction]:
        return self.transaction()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        tx = FakeTransaction(
            FakeEducators(dict(self.educators)),
            FakeRecords(dict(self.records), dict(self.record_actors)),
            FakeAudit(list(self.audit)),
            FakeOutbox(known_ids={s.event_id for s in self.events if s.event_id is not None}),
        )
        yield tx
        self.educators = tx.educators.rows
        self.records, self.record_actors = tx.records.rows, tx.records.actors
        self.audit = tx.audit.entries
        self.events.extend(tx.outbox.staged)
        self.forgotten_contacts.extend(tx.outbox.forgotten)
        self.commits += 1

    def events_of(self, kind: type[BaseModel]) -> list[BaseModel]:
        return [s.event for s in self.events if isinstance(s.event, kind)]


class GatedUnitOfWork(FakeUnitOfWork):
    """Transactions wait at `gate` and count how many are open at once (for concurrency tests)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.open = 0
        self.most_open = 0

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.gate.wait()
            async with super().transaction() as tx:
                yield tx
        finally:
            self.open -= 1


@dataclass
class FakeSubscription:
    subject: str
    queue: str
    cb: Callable[[Msg], Awaitable[None]]
    drained: bool = False

    async def drain(self) -> None:
        self.drained = True


@dataclass
class Published:
    subject: str
    payload: bytes
    headers: dict[str, str] | None


@dataclass
class FakeNats:
    """Records subscriptions and publishes; a test delivers messages by calling a subscription's `cb`."""

    subscriptions: list[FakeSubscription] = field(default_factory=list)
    published: list[Published] = field(default_factory=list)
    flushes: int = 0

    async def subscribe(self, subject: str, queue: str = "", cb: Any = None) -> FakeSubscription:
        self.subscriptions.append(FakeSubscription(subject, queue, cb))
        return self.subscriptions[-1]

    async def flush(self) -> None:
        self.flushes += 1

    async def publish(self, subject: str, payload: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.published.append(Published(subject, payload, headers))

    def request(self, subject: str, data: bytes, reply: str) -> Msg:
        return Msg(_client=self, subject=subject, reply=reply, data=data)  # type: ignore[arg-type]
