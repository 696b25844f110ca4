"""The unit-of-work port of the portfolio use cases: one transaction over the portfolio read model, the
event inbox keyed on `(source, id)`, and the certification repositories it reads (educator, progress,
certificates, signing keys).

`store_portfolio.PostgresPortfolioUnitOfWork` implements it on PostgreSQL (same database and transaction as
the rest of the service), `tests/fake_portfolio.FakePortfolioUnitOfWork` in memory.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from services.certification.portfolio import PortfolioEntry, PortfolioShare, PracticeReport
from services.certification.ports import CertificateRepository, ProgressRepository, SigningKeyRepository


class PortfolioRepository(Protocol):
    async def entry(self, educator_id: str, entry_id: str) -> PortfolioEntry | None: ...

    async def save_entry(self, entry: PortfolioEntry) -> None:
        """Insert or replace the entry (key: educator, entry id)."""

    async def entries_of(self, educator_id: str) -> list[PortfolioEntry]: ...

    async def add_report(self, report: PracticeReport) -> None:
        """Keep the report (a second add of the same (source, event id) is a no-op)."""

    async def reports_of(self, educator_id: str) -> list[PracticeReport]: ...

    async def lock_shares(self, educator_id: str) -> None:
        """Serialize share/unshare of one educator (across replicas) until commit."""

    async def active_share(self, educator_id: str) -> PortfolioShare | None: ...

    async def get_share(self, share_id: str) -> PortfolioShare | None: ...

    async def add_share(self, share: PortfolioShare) -> None: ...

    async def revoke_share(self, share_id: str, at: datetime) -> None: ...


class EventInbox(Protocol):
    async def claim_event(self, source: str, event_id: str) -> bool:
        """True the first time this service processes the CloudEvent `(source, id)`; False for a duplicate."""
        ...


class PortfolioRepositories(Protocol):
    @property
    def portfolio(self) -> PortfolioRepository: ...

    @property
    def inbox(self) -> EventInbox: ...

    @property
    def progress(self) -> ProgressRepository: ...

    @property
    def certificates(self) -> CertificateRepository: ...

    @property
    def keys(self) -> SigningKeyRepository: ...


class PortfolioUnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[PortfolioRepositories]:
        """All-or-nothing: commits when the block ends, rolls back everything if it raises."""
        ...
