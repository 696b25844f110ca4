"""`listing.ListingReader` in memory, over the committed state of a `FakeUnitOfWork`: filters in Python what
`store_listing.PostgresListingReader` filters in SQL (`tests/integration/test_certification_listing.py` holds
the two to the same answers)."""

from __future__ import annotations

from collections.abc import Sequence

from services.certification.domain import Certificate, Completion, Educator
from services.certification.listing import CertificateKey, CertificateQuery
from services.certification.tests.fakes import FakeUnitOfWork


def matches(cert: Certificate, query: CertificateQuery) -> bool:
    since, before = query.issued_since, query.issued_before
    return (
        (query.institution is None or cert.institution == query.institution)
        and (query.programme_id is None or cert.programme_id == query.programme_id)
        and (query.status is None or cert.status == query.status)
        and (since is None or cert.issued_at >= since)
        and (before is None or cert.issued_at < before)
    )


class FakeListingReader:
    def __init__(self, uow: FakeUnitOfWork) -> None:
        self._uow = uow

    def _matching(self, query: CertificateQuery) -> list[Certificate]:
        found = [c for c in self._uow.state.certificates.values() if matches(c, query)]
        return sorted(found, key=lambda c: (c.issued_at, c.certificate_id))

    async def count_certificates(self, query: CertificateQuery) -> int:
        return len(self._matching(query))

    async def certificates(
        self, query: CertificateQuery, *, after: CertificateKey | None = None, offset: int = 0, limit: int
    ) -> list[Certificate]:
        found = [c for c in self._matching(query) if after is None or (c.issued_at, c.certificate_id) > after]
        return found[offset : offset + limit]

    async def educators(self, institution: str | None, *, after: str | None, limit: int) -> list[Educator]:
        found = sorted(self._uow.state.educators.values(), key=lambda e: e.educator_id)
        found = [e for e in found if institution in (None, e.institution) and (after is None or e.educator_id > after)]
        return found[:limit]

    async def records_of(
        self, educator_ids: Sequence[str]
    ) -> tuple[dict[str, dict[str, Completion]], dict[str, list[Certificate]]]:
        state = self._uow.state
        completions = {e: dict(state.completions[e]) for e in educator_ids if e in state.completions}
        certificates: dict[str, list[Certificate]] = {}
        for cert in sorted(state.certificates.values(), key=lambda c: (c.issued_at, c.certificate_id)):
            if cert.educator_id in educator_ids:
                certificates.setdefault(cert.educator_id, []).append(cert)
        return completions, certificates
