"""The repositories of one batch transaction (the consumer's fast path, `Certification.batch`).

One event at a time, a completion costs five or six round trips to PostgreSQL (claim, educator, course
records, certificates, save) and the process mostly waits on its socket. For a fetched batch, what its
events will read is loaded up front in four set-based queries — the inbox claims of every event, the
educators, their course records and their certificates — and course records are written back in one
`executemany` just before commit. The use cases and rules are unchanged: they see the same repository
port, and `tests/integration/test_certification_batch.py` checks a batch decides what single events decide.

Only educators named by the batch are served from memory; anything else goes to the wrapped repository.
Every educator of the batch is locked (advisory locks, sorted) before anything is read, so what was read
stays true until commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import asyncpg

from services.certification.domain import Certificate, Completion, Educator
from services.certification.store_batch_writes import BatchConflict, BatchOutbox, BatchStatusLists, TakenIndexes
from services.certification.store_certificates import _CERTIFICATE_SELECT, PostgresCertificates, _certificate
from services.certification.store_progress import PostgresProgress

if TYPE_CHECKING:  # store.py builds these repositories; only the types are needed here
    from services.certification.store import PostgresInbox, PostgresRepositories


class BatchProgress:
    """Educators and course records of the batch's educators from memory; course records saved at flush."""

    def __init__(self, inner: PostgresProgress) -> None:
        self._inner = inner
        self._educators: dict[str, Educator | None] = {}
        self._completions: dict[str, dict[str, Completion]] = {}
        self._dirty: dict[tuple[str, str], Completion] = {}

    async def load(self, educator_ids: Sequence[str]) -> None:
        conn = self._inner.conn
        self._educators = dict.fromkeys(educator_ids)
        self._completions = {e: {} for e in educator_ids}
        for row in await conn.fetch(
            "SELECT educator_id, institution, language, role, registered_at FROM educators"
            " WHERE educator_id = ANY($1::text[])",
            list(educator_ids),
        ):
            self._educators[row["educator_id"]] = Educator(**dict(row))
        for row in await conn.fetch(
            "SELECT educator_id, course_id, best_score, attempts, first_completed_at, best_completed_at"
            " FROM completions WHERE educator_id = ANY($1::text[])",
            list(educator_ids),
        ):
            record = {k: v for k, v in dict(row).items() if k != "educator_id"}
            self._completions[row["educator_id"]][row["course_id"]] = Completion(**record)

    async def get_educator(self, educator_id: str) -> Educator | None:
        if educator_id in self._educators:
            return self._educators[educator_id]
        return await self._inner.get_educator(educator_id)

    async def add_educator(self, educator: Educator) -> bool:
        added = await self._inner.add_educator(educator)
        if added and educator.educator_id in self._educators:
            self._educators[educator.educator_id] = educator
        return added

    async def completions(self, educator_id: str) -> dict[str, Completion]:
        if educator_id in self._completions:
            return dict(self._completions[educator_id])
        return await self._inner.completions(educator_id)

    async def save_completion(self, educator_id: str, completion: Completion) -> None:
        if educator_id not in self._completions:
            await self._inner.save_completion(educator_id, completion)
            return
        self._completions[educator_id][completion.course_id] = completion
        self._dirty[(educator_id, completion.course_id)] = completion

    async def flush(self) -> None:
        """Write the course records changed in the batch (educators were inserted as they came)."""
        if self._dirty:
            await self._inner.save_completions([(e, c) for (e, _), c in self._dirty.items()])
            self._dirty.clear()

    def __getattr__(self, name: str) -> Any:  # lock, park, take_pending, …: as they are
        return getattr(self._inner, name)


class BatchCertificates:
    """The batch's educators' certificates from memory (kept current as certificates are added); the new ones
    are inserted at flush (`store_batch_writes.py`)."""

    def __init__(self, inner: PostgresCertificates) -> None:
        self._inner = inner
        self._of: dict[str, list[Certificate]] = {}
        self._by_id: dict[str, Certificate] = {}
        self._new: list[Certificate] = []

    async def load(self, educator_ids: Sequence[str]) -> None:
        self._of = {e: [] for e in educator_ids}
        rows = await self._inner.conn.fetch(
            _CERTIFICATE_SELECT + " WHERE c.educator_id = ANY($1::text[]) ORDER BY c.issued_at, c.certificate_id",
            list(educator_ids),
        )
        for row in rows:
            certificate = _certificate(row)
            self._of[certificate.educator_id].append(certificate)
            self._by_id[certificate.certificate_id] = certificate

    async def of_educator(self, educator_id: str) -> list[Certificate]:
        if educator_id in self._of:
            return list(self._of[educator_id])
        return await self._inner.of_educator(educator_id)

    async def get(self, certificate_id: str, *, for_update: bool = False) -> Certificate | None:
        if not for_update and certificate_id in self._by_id:
            return self._by_id[certificate_id]
        await self.flush()
        return await self._inner.get(certificate_id, for_update=for_update)

    async def add(self, certificate: Certificate) -> bool:
        if certificate.educator_id not in self._of:
            return await self._inner.add(certificate)
        if certificate.certificate_id in self._by_id:
            return False
        self._new.append(certificate)
        held = [*self._of[certificate.educator_id], certificate]
        self._of[certificate.educator_id] = sorted(held, key=lambda c: (c.issued_at, c.certificate_id))
        self._by_id[certificate.certificate_id] = certificate
        return True

    async def flush(self) -> None:
        """Insert the certificates issued in the batch; one that exists after all fails the batch."""
        if not self._new:
            return
        try:
            await self._inner.add_all(self._new)
        except asyncpg.UniqueViolationError as exc:
            raise BatchConflict(f"a certificate of the batch exists already: {exc}") from exc
        self._new.clear()

    def __getattr__(self, name: str) -> Any:  # revocations, status changes, recognitions: as they are
        return getattr(self._inner, name)


class BatchInbox:
    """Every event of the batch claimed in one statement; `claim` then answers from that result."""

    def __init__(self, inner: PostgresInbox) -> None:
        self._inner = inner
        self._asked: set[tuple[str, str]] = set()
        self._fresh: set[tuple[str, str]] = set()

    async def load(self, event_keys: Sequence[tuple[str, str]]) -> None:
        self._asked = set(event_keys)
        self._fresh = await self._inner.claim_many(event_keys)

    async def claim(self, event_id: str, *, source: str = "") -> bool:
        key = (source, event_id)
        if key not in self._asked:
            return await self._inner.claim(event_id, source=source)
        if key in self._fresh:
            self._fresh.discard(key)  # the same event twice in one batch: the second is a duplicate
            return True
        return False

    async def release(self, event_id: str, *, source: str = "") -> None:
        await self._inner.release(event_id, source=source)


class BatchRepositories:
    """`ports.Repositories` for one batch transaction (see the module docstring)."""

    def __init__(self, inner: PostgresRepositories, taken: TakenIndexes) -> None:
        self.progress = BatchProgress(inner.progress)
        self.certificates = BatchCertificates(inner.certificates)
        self.inbox = BatchInbox(inner.inbox)
        self.keys = inner.keys
        self.status_lists = BatchStatusLists(inner.status_lists, taken)
        self.transfers = inner.transfers
        self.outbox = BatchOutbox(inner.outbox)

    @classmethod
    async def load(
        cls,
        inner: PostgresRepositories,
        educator_ids: Sequence[str],
        event_keys: Sequence[tuple[str, str]],
        taken: TakenIndexes,
    ) -> BatchRepositories:
        batch = cls(inner, taken)
        await batch.inbox.load(event_keys)
        await batch.progress.load(educator_ids)
        await batch.certificates.load(educator_ids)
        return batch

    async def flush(self) -> None:
        """The deferred writes, before commit: what certificates point at first, their events last."""
        await self.status_lists.flush()
        await self.certificates.flush()
        await self.outbox.flush()
        await self.progress.flush()
