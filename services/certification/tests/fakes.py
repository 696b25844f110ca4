"""An in-memory unit of work (cosmicpython's FakeUnitOfWork, stateful): use cases tested without servers.

It keeps the guarantees the use cases rely on from PostgreSQL: a transaction is all-or-nothing (state is
restored if the block raises), transactions do not interleave (one lock, like the per-educator lock),
and the natural keys hold (one certificate per educator and programme, one recognition per id).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pydantic import BaseModel

from services.certification.credentials import KeyRecord, PublicKeyRecord
from services.certification.domain import (
    Certificate,
    Completion,
    Educator,
    PendingCompletion,
    Recognition,
    Revocation,
    StatusChange,
    StatusEntry,
    StatusList,
    StatusPurpose,
)
from services.certification.tests.fakes_transfers import FakeTransfers
from services.certification.transfers import CreditTransfer


@dataclass(frozen=True)
class StagedEvent:
    data: BaseModel
    subject: str
    event_id: str
    time: datetime
    actor: str | None = None


@dataclass(frozen=True)
class StagedDeadLetter:
    pending: PendingCompletion
    reason: str
    detail: str


@dataclass
class FakeState:
    educators: dict[str, Educator] = field(default_factory=dict)
    completions: dict[str, dict[str, Completion]] = field(default_factory=dict)
    pending: dict[str, PendingCompletion] = field(default_factory=dict)
    parked_at: dict[str, datetime] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    recognitions: dict[str, Recognition] = field(default_factory=dict)
    status_lists: dict[str, StatusList] = field(default_factory=dict)
    status_entries: dict[tuple[str, int], StatusEntry] = field(default_factory=dict)
    set_bits: set[tuple[str, int]] = field(default_factory=set)
    keys: list[KeyRecord] = field(default_factory=list)
    events: list[StagedEvent] = field(default_factory=list)
    dead_letters: list[StagedDeadLetter] = field(default_factory=list)
    inbox: set[tuple[str, str]] = field(default_factory=set)
    transfers: dict[str, CreditTransfer] = field(default_factory=dict)
    locked_batches: list[list[str]] = field(default_factory=list)
    """The educators each `lock_all` locked, in the order it locked them."""


class FakeProgress:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def lock(self, educator_id: str) -> None:
        return None  # transactions are serialized as a whole

    async def lock_all(self, educator_ids: Sequence[str]) -> None:
        self._s.locked_batches.append(sorted(set(educator_ids)))  # as PostgreSQL takes them

    async def get_educator(self, educator_id: str) -> Educator | None:
        return self._s.educators.get(educator_id)

    async def add_educator(self, educator: Educator) -> bool:
        if educator.educator_id in self._s.educators:
            return False
        self._s.educators[educator.educator_id] = educator
        return True

    async def completions(self, educator_id: str) -> dict[str, Completion]:
        return dict(self._s.completions.get(educator_id, {}))

    async def save_completion(self, educator_id: str, completion: Completion) -> None:
        assert educator_id in self._s.educators, "completions reference a registered educator (foreign key)"
        self._s.completions.setdefault(educator_id, {})[completion.course_id] = completion

    async def park(self, pending: PendingCompletion) -> None:
        if pending.event_id not in self._s.pending:
            self._s.pending[pending.event_id] = pending
            self._s.parked_at[pending.event_id] = datetime.now(UTC)  # like the column's DEFAULT now()

    async def take_expired_pending(self, parked_before: datetime, limit: int) -> list[PendingCompletion]:
        expired = sorted((at, event_id) for event_id, at in self._s.parked_at.items() if at < parked_before)
        taken = [self._s.pending.pop(event_id) for _, event_id in expired[:limit] if event_id in self._s.pending]
        for p in taken:
            del self._s.parked_at[p.event_id]
        return taken

    async def take_pending(self, educator_id: str) -> list[PendingCompletion]:
        taken = [p for p in self._s.pending.values() if p.educator_id == educator_id]
        for p in taken:
            del self._s.pending[p.event_id]
        return taken

    async def count_pending(self, educator_id: str) -> int:
        return sum(1 for p in self._s.pending.values() if p.educator_id == educator_id)


class FakeCertificates:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def add(self, certificate: Certificate) -> bool:
        taken = any(
            c.certificate_id == certificate.certificate_id
            or (c.educator_id, c.programme_id) == (certificate.educator_id, certificate.programme_id)
            for c in self._s.certificates.values()
        )
        if taken:
            return False
        self._s.certificates[certificate.certificate_id] = certificate
        return True

    async def get(self, certificate_id: str, *, for_update: bool = False) -> Certificate | None:
        return self._s.certificates.get(certificate_id)

    async def of_educator(self, educator_id: str) -> list[Certificate]:
        mine = [c for c in self._s.certificates.values() if c.educator_id == educator_id]
        return sorted(mine, key=lambda c: (c.issued_at, c.certificate_id))

    async def add_revocation(self, revocation: Revocation) -> None:
        certificate = self._s.certificates[revocation.certificate_id]
        if certificate.revocation is None:
            self._s.certificates[revocation.certificate_id] = replace(certificate, revocation=revocation)

    async def add_status_change(self, change: StatusChange) -> None:
        certificate = self._s.certificates[change.certificate_id]
        expected = certificate.last_change.seq + 1 if certificate.last_change else 1
        assert change.seq == expected, "status changes are numbered 1, 2, … (primary key)"
        self._s.certificates[change.certificate_id] = replace(certificate, last_change=change)

    async def add_recognition(self, recognition: Recognition) -> None:
        assert recognition.certificate_id in self._s.certificates
        self._s.recognitions.setdefault(recognition.recognition_id, recognition)

    async def get_recognition(self, recognition_id: str) -> Recognition | None:
        return self._s.recognitions.get(recognition_id)

    async def recognitions_of(self, certificate_id: str) -> list[Recognition]:
        mine = [r for r in self._s.recognitions.values() if r.certificate_id == certificate_id]
        return sorted(mine, key=lambda r: (r.recognized_at, r.recognition_id))


class FakeStatusLists:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def newest(self, purpose: StatusPurpose) -> StatusList | None:
        mine = [sl for sl in self._s.status_lists.values() if sl.purpose == purpose]
        return max(mine, key=lambda sl: sl.seq, default=None)

    async def create(self, status_list: StatusList) -> StatusList:
        for existing in self._s.status_lists.values():
            if (existing.purpose, existing.seq) == (status_list.purpose, status_list.seq):
                return existing
        return self._s.status_lists.setdefault(status_list.list_id, status_list)

    async def get(self, list_id: str) -> StatusList | None:
        return self._s.status_lists.get(list_id)

    async def allocated(self, list_id: str) -> int:
        return sum(1 for key in self._s.status_entries if key[0] == list_id)

    async def allocate(self, entry: StatusEntry) -> bool:
        assert entry.list_id in self._s.status_lists, "entries reference a list (foreign key)"
        assert 0 <= entry.index < self._s.status_lists[entry.list_id].size
        key = (entry.list_id, entry.index)
        if key in self._s.status_entries:
            return False
        self._s.status_entries[key] = entry
        return True

    async def entries_of(self, certificate_id: str) -> list[StatusEntry]:
        mine = [e for e in self._s.status_entries.values() if e.certificate_id == certificate_id]
        return sorted(mine, key=lambda e: e.purpose)

    async def set_bits(self, certificate_id: str, bits: Mapping[StatusPurpose, bool], at: datetime) -> None:
        for entry in await self.entries_of(certificate_id):
            key = (entry.list_id, entry.index)
            if bits[entry.purpose] == (key in self._s.set_bits):
                continue
            if bits[entry.purpose]:
                self._s.set_bits.add(key)
            else:
                self._s.set_bits.discard(key)
            self._s.status_lists[entry.list_id] = replace(self._s.status_lists[entry.list_id], updated_at=at)

    async def set_indexes(self, list_id: str) -> list[int]:
        return sorted(index for lst, index in self._s.set_bits if lst == list_id)


class FakeSigningKeys:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def lock(self) -> None:
        return None

    async def records(self) -> list[KeyRecord]:
        return sorted(self._s.keys, key=lambda r: r.created_at)

    async def replace_active(self, record: KeyRecord) -> None:
        self._s.keys = [replace(r, active=False) for r in self._s.keys] + [replace(record, active=True)]

    async def public_keys(self) -> list[PublicKeyRecord]:
        return [
            PublicKeyRecord(
                r.kid, {k: r.private_jwk[k] for k in ("kty", "crv", "x")}, r.created_at, r.active, r.compromised_at
            )
            for r in await self.records()
        ]

    async def add_retired(self, record: KeyRecord) -> bool:
        if any(r.kid == record.kid for r in self._s.keys):
            return False
        self._s.keys.append(replace(record, active=False))
        return True

    async def mark_compromised(self, kid: str, since: datetime) -> bool:
        found = False
        for i, r in enumerate(self._s.keys):
            if r.kid == kid:
                earliest = min(since, r.compromised_at) if r.compromised_at else since
                self._s.keys[i] = replace(r, active=False, compromised_at=earliest)
                found = True
        return found

    async def seal_plaintext(self) -> int:
        return 0  # nothing is at rest in memory


class FakeOutbox:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def add_event(
        self, data: BaseModel, *, subject: str, event_id: str, time: datetime, actor: str | None = None
    ) -> None:
        if all(e.event_id != event_id for e in self._s.events):  # ON CONFLICT (event_id) DO NOTHING
            self._s.events.append(StagedEvent(data, subject, event_id, time, actor))

    async def add_dead_letter(self, pending: PendingCompletion, reason: str, detail: str, failed_at: datetime) -> None:
        self._s.dead_letters.append(StagedDeadLetter(pending, reason, detail))


class FakeInbox:
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def claim(self, event_id: str, *, source: str = "") -> bool:
        if (source, event_id) in self._s.inbox:
            return False
        self._s.inbox.add((source, event_id))
        return True

    async def release(self, event_id: str, *, source: str = "") -> None:
        self._s.inbox -= {(source, event_id), ("", event_id)}


class FakeRepositories:
    def __init__(self, state: FakeState) -> None:
        self.progress = FakeProgress(state)
        self.certificates = FakeCertificates(state)
        self.keys = FakeSigningKeys(state)
        self.status_lists = FakeStatusLists(state)
        self.transfers = FakeTransfers(state.transfers)
        self.outbox = FakeOutbox(state)
        self.inbox = FakeInbox(state)


class FakeUnitOfWork:
    """`ports.UnitOfWork` in memory; `state` is what has been committed."""

    def __init__(self) -> None:
        self.state = FakeState()
        self.commits = 0
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeRepositories]:
        async with self._lock:
            working = copy.deepcopy(self.state)
            yield FakeRepositories(working)
            self.state = working  # reached only if the block did not raise: commit
            self.commits += 1

    @contextlib.asynccontextmanager
    async def batch(
        self, educator_ids: Sequence[str], event_keys: Sequence[tuple[str, str]]
    ) -> AsyncIterator[FakeRepositories]:
        async with self.transaction() as tx:
            await tx.progress.lock_all(educator_ids)
            yield tx

    def events_of(self, model: type[BaseModel]) -> list[BaseModel]:
        return [e.data for e in self.state.events if isinstance(e.data, model)]
