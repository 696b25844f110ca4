"""Portfolio use cases: keep the read model of each educator's Faculty AI Portfolio from PortfolioEntryAdded
and PracticeIntegrationReported, read it with certificates and progress, and share it as a signed bundle.

Like `usecases.py` they take event data and plain arguments plus a unit-of-work port
(`portfolio_ports.PortfolioUnitOfWork`), never a NATS message or the runtime; the rules are in `portfolio.py`.
Events about one educator run under that educator's lock (the one registrations and completions take), with
the inbox claim — keyed on the CloudEvent's `(source, id)` — in the same transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from iioe.events import (
    PORTFOLIO_ENTRY_ADDED,
    PRACTICE_INTEGRATION_REPORTED,
    PortfolioEntryAdded,
    PracticeIntegrationReported,
)
from iioe.runtime.logging import get_logger
from services.certification import keys
from services.certification.credentials import certificate_urn, sign_credential
from services.certification.credentials.presentation import build_presentation_claims
from services.certification.domain import Certificate, CertificationError, Educator, progress_of
from services.certification.portfolio import (
    SHARE_ID_BYTES,
    PortfolioEntry,
    PortfolioShare,
    PracticeReport,
    apply_entry,
    check_event_institution,
    close_share,
    latest_report,
    open_share,
    owning_institution,
    presentable,
    shared_portfolio,
    sorted_entries,
    sorted_reports,
    visible,
)
from services.certification.portfolio_ports import PortfolioRepositories, PortfolioUnitOfWork
from services.certification.usecases import Certification, EducatorProgress, utc_now

log = get_logger(__name__)

PORTFOLIO_EVENTS = (PORTFOLIO_ENTRY_ADDED, PRACTICE_INTEGRATION_REPORTED)
"""The event types the read model is built from (the certification consumer's filter adds their subjects)."""


@dataclass(frozen=True)
class EducatorPortfolio:
    """What the owner (and, signed, a share link) sees: certificates with their status, progress (registered
    educators only), entries and practice reports newest first, and the active share link if any."""

    educator_id: str
    institution: str
    educator: Educator | None
    certificates: list[Certificate]
    progress: EducatorProgress | None
    entries: list[PortfolioEntry]
    reports: list[PracticeReport]
    share: PortfolioShare | None

    @property
    def integrates_ai(self) -> bool | None:
        latest = latest_report(self.reports)
        return latest.integrates_ai if latest else None


@dataclass(frozen=True)
class SharedBundle:
    """A share link's answer: the portfolio and the Verifiable Presentation (compact JWS) signed just now."""

    share: PortfolioShare
    portfolio: EducatorPortfolio
    presentation: str
    claims: dict[str, Any]


def new_share_id() -> str:
    return secrets.token_urlsafe(SHARE_ID_BYTES)


class Portfolios:
    """The portfolio behaviour; the consumer handler and `portfolio_http.py` only translate to and from it."""

    def __init__(
        self,
        uow: PortfolioUnitOfWork,
        certification: Certification,
        *,
        clock: Callable[[], datetime] = utc_now,
        share_ids: Callable[[], str] = new_share_id,
    ) -> None:
        self._uow = uow
        self._certification = certification
        self._clock = clock
        self._share_ids = share_ids

    def share_url(self, share_id: str) -> str:
        return f"{self._certification.public_url}/portfolio/{share_id}"

    # --- events in -----------------------------------------------------------------------------------

    async def on_event(self, source: str, event_id: str, data: BaseModel) -> None:
        """Route one portfolio event (the consumer's handler calls this for both types)."""
        if isinstance(data, PortfolioEntryAdded):
            await self.on_entry_added(source, event_id, data)
        elif isinstance(data, PracticeIntegrationReported):
            await self.on_practice_reported(source, event_id, data)
        else:  # a programming error, not a bad message
            raise TypeError(f"not a portfolio event: {type(data).__name__}")

    async def on_entry_added(self, source: str, event_id: str, data: PortfolioEntryAdded) -> None:
        incoming = PortfolioEntry(
            educator_id=data.educator_id,
            entry_id=data.entry_id,
            institution=data.institution,
            kind=data.kind,
            title=data.title,
            link=data.link,
            added_on=data.added_on,
            source=source,
            event_id=event_id,
        )
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim_event(source, event_id):
                return
            check_event_institution(
                await tx.progress.get_educator(data.educator_id), data.institution, data.educator_id
            )
            existing = await tx.portfolio.entry(data.educator_id, data.entry_id)
            if existing is not None and existing.institution != incoming.institution:
                raise CertificationError(
                    "institution_mismatch", f"entry {data.entry_id!r} belongs to {existing.institution!r}"
                )
            to_store = apply_entry(existing, incoming)
            if to_store is not None:
                await tx.portfolio.save_entry(to_store)
        log.debug("portfolio entry recorded", educator_id=data.educator_id, entry_id=data.entry_id)

    async def on_practice_reported(self, source: str, event_id: str, data: PracticeIntegrationReported) -> None:
        report = PracticeReport(
            source=source,
            event_id=event_id,
            educator_id=data.educator_id,
            institution=data.institution,
            integrates_ai=data.integrates_ai,
            disciplines=tuple(data.disciplines or ()),
            reported_on=data.reported_on,
        )
        async with self._uow.transaction() as tx:
            await tx.progress.lock(data.educator_id)
            if not await tx.inbox.claim_event(source, event_id):
                return
            check_event_institution(
                await tx.progress.get_educator(data.educator_id), data.institution, data.educator_id
            )
            await tx.portfolio.add_report(report)
        log.debug("practice report recorded", educator_id=data.educator_id)

    # --- reads ---------------------------------------------------------------------------------------

    async def portfolio(self, educator_id: str) -> EducatorPortfolio:
        """The whole portfolio; `educator_not_found` when neither registration nor any record knows them."""
        async with self._uow.transaction() as tx:
            return await self._read(tx, educator_id)

    async def owner(self, educator_id: str) -> str:
        """The institution whose token may read, share and unshare this portfolio."""
        return (await self.portfolio(educator_id)).institution

    async def _read(self, tx: PortfolioRepositories, educator_id: str) -> EducatorPortfolio:
        educator = await tx.progress.get_educator(educator_id)
        entries = await tx.portfolio.entries_of(educator_id)
        reports = await tx.portfolio.reports_of(educator_id)
        institution = owning_institution(educator, entries, reports)
        if institution is None:
            raise CertificationError("educator_not_found", f"no registered educator {educator_id!r}")
        certificates = await tx.certificates.of_educator(educator_id)
        progress = None
        if educator is not None:
            completions = await tx.progress.completions(educator_id)
            programmes = progress_of(self._certification.catalogue, completions, certificates)
            pending = await tx.progress.count_pending(educator_id)
            progress = EducatorProgress(educator, completions, certificates, programmes, pending)
        return EducatorPortfolio(
            educator_id=educator_id,
            institution=institution,
            educator=educator,
            certificates=certificates,
            progress=progress,
            entries=sorted_entries(visible(institution, entries)),
            reports=sorted_reports(visible(institution, reports)),
            share=await tx.portfolio.active_share(educator_id),
        )

    # --- sharing -------------------------------------------------------------------------------------

    async def share(self, educator_id: str) -> tuple[PortfolioShare, bool]:
        """The active public link, made now if there is none (True: new)."""
        async with self._uow.transaction() as tx:
            await tx.portfolio.lock_shares(educator_id)
            await self._read(tx, educator_id)  # unknown educator: nothing to share
            share, created = open_share(
                await tx.portfolio.active_share(educator_id), self._share_ids(), educator_id, self._clock()
            )
            if created:
                await tx.portfolio.add_share(share)
        if created:
            log.info("portfolio shared", educator_id=educator_id)
        return share, created

    async def unshare(self, educator_id: str) -> PortfolioShare | None:
        """Switch the active link off (it then answers 410); None when there was none."""
        async with self._uow.transaction() as tx:
            await tx.portfolio.lock_shares(educator_id)
            closed = close_share(await tx.portfolio.active_share(educator_id), self._clock())
            if closed is not None and closed.revoked_at is not None:
                await tx.portfolio.revoke_share(closed.share_id, closed.revoked_at)
        if closed is not None:
            log.info("portfolio share switched off", educator_id=educator_id)
        return closed

    async def shared(self, share_id: str) -> SharedBundle:
        """What a public link serves: the portfolio and its Verifiable Presentation, signed now with the active
        key (statuses are current). `portfolio_share_not_found` (404) or `portfolio_share_revoked` (410)."""
        async with self._uow.transaction() as tx:
            share = shared_portfolio(await tx.portfolio.get_share(share_id), share_id)
            portfolio = await self._read(tx, share.educator_id)
            keyring = await keys.ensure_keyring(tx.keys)
        claims = build_presentation_claims(
            share_id=share.share_id,
            educator_id=share.educator_id,
            credentials=[c.credential for c in presentable(portfolio.certificates)],
            portfolio=self.portfolio_claim(portfolio, share),
            issued_at=self._clock(),
            issuer=self._certification.issuer,
        )
        return SharedBundle(share, portfolio, sign_credential(claims, keyring), claims)

    def portfolio_claim(self, portfolio: EducatorPortfolio, share: PortfolioShare) -> dict[str, Any]:
        """The presentation's `portfolio` claim: ids, titles, links, dates, statuses — no personal data."""
        return {
            "url": self.share_url(share.share_id),
            "institution": portfolio.institution,
            "certificates": [
                {
                    "id": certificate_urn(c.certificate_id),
                    "certificateId": c.certificate_id,
                    "programmeId": c.programme_id,
                    "status": c.status,
                    "issuedAt": c.issued_at.isoformat(),
                    "verificationUrl": self._certification.verification_url(c.certificate_id),
                }
                for c in portfolio.certificates
            ],
            "entries": [
                {
                    "entryId": e.entry_id,
                    "kind": e.kind,
                    "title": e.title,
                    **({"link": e.link} if e.link else {}),
                    "addedOn": e.added_on.isoformat(),
                }
                for e in portfolio.entries
            ],
            "practiceReports": [
                {
                    "integratesAi": r.integrates_ai,
                    "disciplines": list(r.disciplines),
                    "reportedOn": r.reported_on.isoformat(),
                }
                for r in portfolio.reports
            ],
            "integratesAi": portfolio.integrates_ai,
        }
