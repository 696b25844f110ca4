"""The portfolio unit of work in memory, over the same state as a `FakeUnitOfWork` (so certificates issued by
`Certification` on the fake show up in portfolios). All-or-nothing and serialized like the fake it wraps."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime

from services.certification.portfolio import PortfolioEntry, PortfolioShare, PracticeReport
from services.certification.tests.fakes import (
    FakeCertificates,
    FakeProgress,
    FakeSigningKeys,
    FakeState,
    FakeUnitOfWork,
)


@dataclass
class PortfolioState:
    entries: dict[tuple[str, str], PortfolioEntry] = field(default_factory=dict)
    reports: dict[tuple[str, str], PracticeReport] = field(default_factory=dict)
    shares: dict[str, PortfolioShare] = field(default_factory=dict)
    inbox: set[tuple[str, str]] = field(default_factory=set)
    seq: int = 0


class FakePortfolio:
    def __init__(self, state: PortfolioState) -> None:
        self._s = state

    async def entry(self, educator_id: str, entry_id: str) -> PortfolioEntry | None:
        return self._s.entries.get((educator_id, entry_id))

    async def save_entry(self, entry: PortfolioEntry) -> None:
        self._s.entries[(entry.educator_id, entry.entry_id)] = entry

    async def entries_of(self, educator_id: str) -> list[PortfolioEntry]:
        return [e for (educator, _), e in self._s.entries.items() if educator == educator_id]

    async def add_report(self, report: PracticeReport) -> None:
        key = (report.source, report.event_id)
        if key not in self._s.reports:
            self._s.seq += 1
            self._s.reports[key] = replace(report, received_seq=self._s.seq)

    async def reports_of(self, educator_id: str) -> list[PracticeReport]:
        return [r for r in self._s.reports.values() if r.educator_id == educator_id]

    async def lock_shares(self, educator_id: str) -> None:
        return None

    async def active_share(self, educator_id: str) -> PortfolioShare | None:
        active = [s for s in self._s.shares.values() if s.educator_id == educator_id and s.active]
        assert len(active) <= 1, "one active share per educator (unique index)"
        return active[0] if active else None

    async def get_share(self, share_id: str) -> PortfolioShare | None:
        return self._s.shares.get(share_id)

    async def add_share(self, share: PortfolioShare) -> None:
        assert share.share_id not in self._s.shares, "share ids are unique (primary key)"
        self._s.shares[share.share_id] = share

    async def revoke_share(self, share_id: str, at: datetime) -> None:
        share = self._s.shares[share_id]
        if share.active:
            self._s.shares[share_id] = replace(share, revoked_at=at)


class FakeEventInbox:
    def __init__(self, state: PortfolioState) -> None:
        self._s = state

    async def claim_event(self, source: str, event_id: str) -> bool:
        if (source, event_id) in self._s.inbox:
            return False
        self._s.inbox.add((source, event_id))
        return True


class FakePortfolioRepositories:
    def __init__(self, state: FakeState, portfolio: PortfolioState) -> None:
        self.portfolio = FakePortfolio(portfolio)
        self.inbox = FakeEventInbox(portfolio)
        self.progress = FakeProgress(state)
        self.certificates = FakeCertificates(state)
        self.keys = FakeSigningKeys(state)


class FakePortfolioUnitOfWork:
    """`portfolio_ports.PortfolioUnitOfWork` in memory; shares `uow`'s committed state and its lock."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        self.uow = uow
        self.state = PortfolioState()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakePortfolioRepositories]:
        async with self.uow._lock:
            working, portfolio = copy.deepcopy(self.uow.state), copy.deepcopy(self.state)
            yield FakePortfolioRepositories(working, portfolio)
            self.uow.state, self.state = working, portfolio  # reached only if the block did not raise: commit
            self.uow.commits += 1
