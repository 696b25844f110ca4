"""The unit-of-work port the use cases depend on: one transaction and the repositories inside it.

`store.PostgresUnitOfWork` implements it on PostgreSQL, `tests/fakes.FakeUnitOfWork` in memory. Everything
done through one `transaction()` commits or rolls back together — the state change, the inbox claim and
the outgoing events — which is what makes effects happen exactly once under at-least-once delivery.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime
from typing import Protocol

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


class ProgressRepository(Protocol):
    """Educators, their course records and the completions parked until their registration."""

    async def lock(self, educator_id: str) -> None:
        """Serialize every transaction about one educator (across replicas) until commit."""

    async def lock_all(self, educator_ids: Sequence[str]) -> None:
        """`lock` each educator in one step, in sorted order (two batches then never wait on each other in a
        cycle); a later `lock` of one of them in the same transaction costs nothing."""

    async def get_educator(self, educator_id: str) -> Educator | None: ...

    async def add_educator(self, educator: Educator) -> bool:
        """False when the educator is already known (the first registration stands)."""
        ...

    async def completions(self, educator_id: str) -> dict[str, Completion]: ...

    async def save_completion(self, educator_id: str, completion: Completion) -> None:
        """Store the course record as the rules computed it (insert or replace)."""

    async def park(self, pending: PendingCompletion) -> None:
        """Keep a completion until its educator registers (a second park of the same event is a no-op)."""

    async def take_pending(self, educator_id: str) -> list[PendingCompletion]:
        """Remove and return the educator's parked completions."""
        ...

    async def count_pending(self, educator_id: str) -> int: ...

    async def take_expired_pending(self, parked_before: datetime, limit: int) -> list[PendingCompletion]:
        """Remove and return up to `limit` completions parked before `parked_before` (any educator)."""
        ...


class CertificateRepository(Protocol):
    """Certificates with their revocations and credit recognitions."""

    async def add(self, certificate: Certificate) -> bool:
        """False when (educator, programme) already has a certificate: the natural key is the last guard."""
        ...

    async def get(self, certificate_id: str, *, for_update: bool = False) -> Certificate | None: ...

    async def of_educator(self, educator_id: str) -> list[Certificate]:
        """Every certificate ever issued to the educator, revoked ones included, oldest first."""
        ...

    async def add_revocation(self, revocation: Revocation) -> None: ...

    async def add_status_change(self, change: StatusChange) -> None:
        """Record a suspension or reinstatement (it becomes the certificate's `last_change`)."""

    async def add_recognition(self, recognition: Recognition) -> None: ...

    async def get_recognition(self, recognition_id: str) -> Recognition | None: ...

    async def recognitions_of(self, certificate_id: str) -> list[Recognition]: ...


class StatusListRepository(Protocol):
    """W3C Bitstring Status Lists: the lists, each certificate's entries and which bits are set."""

    async def newest(self, purpose: StatusPurpose) -> StatusList | None: ...

    async def create(self, status_list: StatusList) -> StatusList:
        """Add the list (or return the one another replica created with the same purpose and seq)."""
        ...

    async def get(self, list_id: str) -> StatusList | None: ...

    async def allocated(self, list_id: str) -> int: ...

    async def allocate(self, entry: StatusEntry) -> bool:
        """Claim `entry.index` in its list; False when the index is taken (draw another)."""
        ...

    async def entries_of(self, certificate_id: str) -> list[StatusEntry]: ...

    async def set_bits(self, certificate_id: str, bits: Mapping[StatusPurpose, bool], at: datetime) -> None:
        """Set or clear the certificate's bit in each of its lists; a list whose bit changed is `updated_at`."""

    async def set_indexes(self, list_id: str) -> list[int]:
        """Indexes whose bit is set."""
        ...


class SigningKeyRepository(Protocol):
    """Ed25519 signing keys (private JWKs): one active, retired ones kept for the JWKS."""

    async def lock(self) -> None:
        """Serialize creating and rotating keys across replicas until commit."""

    async def records(self) -> list[KeyRecord]: ...

    async def replace_active(self, record: KeyRecord) -> None:
        """Retire the active key (it stays published) and make `record` the one active key."""

    async def public_keys(self) -> list[PublicKeyRecord]:
        """The public halves (for the JWKS), read without opening any private key."""
        ...

    async def add_retired(self, record: KeyRecord) -> bool:
        """Store a key (from a backup) as retired; False when its kid is already stored."""
        ...

    async def mark_compromised(self, kid: str, since: datetime) -> bool:
        """Retire `kid` as compromised from `since` (an earlier time wins); False for an unknown kid."""
        ...

    async def seal_plaintext(self) -> int:
        """Seal keys still stored in plaintext (the upgrade path); how many were sealed."""
        ...


class Outbox(Protocol):
    """Messages to publish if and only if the transaction commits."""

    async def add_event(
        self, data: BaseModel, *, subject: str, event_id: str, time: datetime, actor: str | None = None
    ) -> None:
        """Stage a domain event; its type and NATS subject follow from `data` (the event catalogue); `actor`
        (who caused it: an operator or institution token) becomes the CloudEvents `actor` attribute."""

    async def add_dead_letter(self, pending: PendingCompletion, reason: str, detail: str, failed_at: datetime) -> None:
        """Stage the dead letter of a parked completion (its original bytes, the usual dead-letter headers)."""


class Inbox(Protocol):
    async def claim(self, event_id: str, *, source: str = "") -> bool:
        """True the first time this service processes the CloudEvent `(source, event_id)`; False for a duplicate
        or replay. `source` '' is the id-only key of rows recorded before the inbox knew sources."""
        ...

    async def release(self, event_id: str, *, source: str = "") -> None:
        """Forget a claim (its effect was handed to the DLQ instead), so a re-driven copy is processed."""


class Repositories(Protocol):
    """What one transaction offers (read-only attributes, so adapters may narrow the types)."""

    @property
    def progress(self) -> ProgressRepository: ...

    @property
    def certificates(self) -> CertificateRepository: ...

    @property
    def keys(self) -> SigningKeyRepository: ...

    @property
    def status_lists(self) -> StatusListRepository: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def inbox(self) -> Inbox: ...


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Repositories]:
        """All-or-nothing: commits when the block ends, rolls back everything if it raises."""
        ...

    def batch(
        self, educator_ids: Sequence[str], event_keys: Sequence[tuple[str, str]]
    ) -> AbstractAsyncContextManager[Repositories]:
        """A `transaction()` for a batch of events about `educator_ids` (their `(source, id)` in `event_keys`):
        every educator is locked up front (`ProgressRepository.lock_all`), and the adapter may read what the
        batch needs at once and write some of it only at the end — the repositories behave the same."""
        ...


class SharedTransaction:
    """A unit of work whose every `transaction()` is one already open: the events of a fetched batch are then
    applied under one commit (the batch path of the consumer), with the same use-case code as one by one.

    Nothing is committed or rolled back here: the owner of the open transaction does that, for all of them.
    """

    def __init__(self, tx: Repositories) -> None:
        self._tx = tx

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Repositories]:
        yield self._tx

    @asynccontextmanager
    async def batch(
        self, educator_ids: Sequence[str], event_keys: Sequence[tuple[str, str]]
    ) -> AsyncIterator[Repositories]:
        await self._tx.progress.lock_all(educator_ids)
        yield self._tx
