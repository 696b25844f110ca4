"""What a batch transaction issues, written at its end: status entries, certificates and outbox rows, one
statement per kind (`BatchRepositories.flush`).

One at a time, a certificate costs four round trips to PostgreSQL — two status-list entries, the certificate,
its CertificateIssued row — and a consumer waiting on its socket issues few certificates per second, however
idle the CPU. In a batch they are kept in memory and written together just before commit.

What the database would have refused on the spot must still be refused: a certificate that already exists (it
cannot, under the educator's lock) or a status index another writer took meanwhile. Those writes then fail at
flush with `BatchConflict`; the whole batch rolls back and the consumer retries its events one at a time,
where each write asks PostgreSQL itself. To draw indexes without asking, a process keeps the indexes already
taken in the newest lists (`TakenIndexes`), learned once per list and kept current with what it commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import asyncpg

from iioe.runtime.outbox import OutboxMessage, outbox_message, stage_many
from services.certification.domain import StatusEntry
from services.certification.store_conn import Conn

if TYPE_CHECKING:  # store.py builds these repositories; only the types are needed here
    from pydantic import BaseModel

    from services.certification.domain import PendingCompletion
    from services.certification.store import PostgresOutbox
    from services.certification.store_status_lists import PostgresStatusLists

_ENTRIES_SQL = "INSERT INTO status_entries (list_id, status_index, certificate_id, purpose) VALUES ($1, $2, $3, $4)"


class BatchConflict(RuntimeError):
    """A deferred write clashed with the database: the batch rolls back and is retried one event at a time."""


class TakenIndexes:
    """Indexes already taken in the status lists a process allocates from, so a batch can draw without a
    round trip per draw. Kept for the few newest lists only; forgotten after a conflict (another replica, or
    this process's one-at-a-time path, allocated meanwhile) and learned again from the database."""

    def __init__(self, max_lists: int = 4) -> None:
        self._max_lists = max_lists
        self._taken: dict[str, set[int]] = {}

    async def of(self, conn: Conn, list_id: str) -> set[int]:
        taken = self._taken.get(list_id)
        if taken is None:
            rows = await conn.fetch("SELECT status_index FROM status_entries WHERE list_id = $1", list_id)
            taken = {r["status_index"] for r in rows}
            while len(self._taken) >= self._max_lists:  # the oldest list learned goes first
                del self._taken[next(iter(self._taken))]
            self._taken[list_id] = taken
        return taken

    def committed(self, keys: Iterable[tuple[str, int]]) -> None:
        """(list, index) pairs a committed transaction took."""
        for list_id, index in keys:
            if list_id in self._taken:
                self._taken[list_id].add(index)

    def forget(self) -> None:
        self._taken.clear()


class BatchStatusLists:
    """Allocates from memory (`TakenIndexes` + this batch's own draws); the entries are inserted at flush."""

    def __init__(self, inner: PostgresStatusLists, taken: TakenIndexes) -> None:
        self._inner = inner
        self._taken = taken
        self._drawn: dict[tuple[str, int], StatusEntry] = {}
        self.written: set[tuple[str, int]] = set()
        """(list, index) of the entries flushed in this transaction: `TakenIndexes` learns them once it commits."""

    async def allocate(self, entry: StatusEntry) -> bool:
        key = (entry.list_id, entry.index)
        if (
            key in self._drawn
            or key in self.written
            or entry.index in await self._taken.of(self._inner.conn, entry.list_id)
        ):
            return False
        self._drawn[key] = entry
        return True

    async def entries_of(self, certificate_id: str) -> list[StatusEntry]:
        await self.flush()
        return await self._inner.entries_of(certificate_id)

    async def allocated(self, list_id: str) -> int:
        await self.flush()
        return await self._inner.allocated(list_id)

    async def flush(self) -> None:
        if not self._drawn:
            return
        entries = list(self._drawn.values())
        try:
            await self._inner.conn.executemany(
                _ENTRIES_SQL, [(e.list_id, e.index, e.certificate_id, e.purpose) for e in entries]
            )
        except asyncpg.UniqueViolationError as exc:
            self._taken.forget()
            raise BatchConflict(f"a status index was taken meanwhile: {exc}") from exc
        self.written.update(self._drawn)
        self._drawn.clear()

    def __getattr__(self, name: str) -> Any:  # newest, create, get: reads of lists, not of entries
        return getattr(self._inner, name)


class BatchOutbox:
    """Events staged in memory, written in one statement at flush, in the order they were added."""

    def __init__(self, inner: PostgresOutbox) -> None:
        self._inner = inner
        self._messages: list[OutboxMessage] = []

    async def add_event(
        self, data: BaseModel, *, subject: str, event_id: str, time: Any, actor: str | None = None
    ) -> None:
        # built now, in the event's own trace context, like `enqueue_event`
        self._messages.append(
            outbox_message(data, source=self._inner.source, subject=subject, event_id=event_id, time=time, actor=actor)
        )

    async def add_dead_letter(self, pending: PendingCompletion, reason: str, detail: str, failed_at: Any) -> None:
        await self.flush()  # keeps the outbox in the order things happened
        await self._inner.add_dead_letter(pending, reason, detail, failed_at)

    async def flush(self) -> None:
        if self._messages:
            await stage_many(self._inner.conn, self._messages)
            self._inner.staged += len(self._messages)
            self._messages.clear()
