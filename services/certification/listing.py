"""Reading for institution staff: certificates by institution, status, programme and issue date, and every
educator's progress as export rows.

A read-only port (`ListingReader`) and the use case over it; `store_listing.py` implements the port on
PostgreSQL, `tests/fake_listing.py` in memory. Exports are produced in batches (keyset pagination), so an
institution's whole history streams without being held in memory or in one long transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from services.certification.catalogue import ProgrammeCatalogue
from services.certification.domain import (
    Certificate,
    CertificateStatus,
    CertificationError,
    Completion,
    Educator,
    progress_of,
)

EXPORT_BATCH = 500
"""Rows fetched per query while exporting."""

CERTIFICATE_COLUMNS = (
    "certificate_id",
    "educator_id",
    "institution",
    "programme_id",
    "programme_name",
    "credits",
    "credit_system",
    "issued_at",
    "status",
    "status_changed_at",
    "verification_url",
)
PROGRESS_COLUMNS = (
    "educator_id",
    "institution",
    "role",
    "registered_at",
    "programme_id",
    "programme_name",
    "status",
    "courses_passed",
    "courses_total",
    "passed_courses",
    "below_threshold",
    "not_attempted",
    "missing_prerequisites",
    "best_scores",
    "certificate_id",
)


@dataclass(frozen=True)
class CertificateQuery:
    """Which certificates; every filter optional (`institution` None = every institution, for operators)."""

    institution: str | None = None
    status: CertificateStatus | None = None
    programme_id: str | None = None
    issued_from: date | None = None
    """First day (UTC) included."""
    issued_to: date | None = None
    """Last day (UTC) included."""

    @property
    def issued_since(self) -> datetime | None:
        return datetime.combine(self.issued_from, time(), UTC) if self.issued_from else None

    @property
    def issued_before(self) -> datetime | None:
        if self.issued_to is None or self.issued_to == date.max:
            return None
        return datetime.combine(self.issued_to + timedelta(days=1), time(), UTC)


CertificateKey = tuple[datetime, str]
"""(issued_at, certificate_id): the listing order, and where an export batch resumes."""


class ListingReader(Protocol):
    """Read-only queries behind the listings and exports (no locks, no writes)."""

    async def count_certificates(self, query: CertificateQuery) -> int: ...

    async def certificates(
        self, query: CertificateQuery, *, after: CertificateKey | None = None, offset: int = 0, limit: int
    ) -> list[Certificate]:
        """Matching certificates ordered by (issued_at, certificate_id), after `after` and `offset`."""
        ...

    async def educators(self, institution: str | None, *, after: str | None, limit: int) -> list[Educator]:
        """Educators ordered by id, after `after`."""
        ...

    async def records_of(
        self, educator_ids: Sequence[str]
    ) -> tuple[dict[str, dict[str, Completion]], dict[str, list[Certificate]]]:
        """Completions and certificates of these educators, keyed by educator id."""
        ...


class CertificateListing:
    def __init__(
        self, reader: ListingReader, catalogue: ProgrammeCatalogue, verification_url: Callable[[str], str]
    ) -> None:
        """`verification_url(certificate_id)`: the public page of a certificate (`Certification.verification_url`)."""
        self._reader = reader
        self.catalogue = catalogue
        self.verification_url = verification_url

    def check(self, query: CertificateQuery) -> None:
        if query.programme_id is not None and self.catalogue.get(query.programme_id) is None:
            raise CertificationError("unknown_programme", f"no programme {query.programme_id!r} in the catalogue")
        if query.issued_from and query.issued_to and query.issued_from > query.issued_to:
            raise CertificationError("invalid_period", "issued_from is after issued_to")

    async def page(self, query: CertificateQuery, page: int, page_size: int) -> tuple[int, list[Certificate]]:
        """(total matching, the page's certificates)."""
        self.check(query)
        total = await self._reader.count_certificates(query)
        found = await self._reader.certificates(query, offset=(page - 1) * page_size, limit=page_size)
        return total, found

    async def all_certificates(self, query: CertificateQuery) -> AsyncIterator[Certificate]:
        after: CertificateKey | None = None
        while True:
            batch = await self._reader.certificates(query, after=after, limit=EXPORT_BATCH)
            for cert in batch:
                yield cert
            if len(batch) < EXPORT_BATCH:
                return
            after = (batch[-1].issued_at, batch[-1].certificate_id)

    async def certificate_rows(self, query: CertificateQuery) -> AsyncIterator[list[Any]]:
        async for cert in self.all_certificates(query):
            yield self.certificate_row(cert)

    def certificate_row(self, cert: Certificate) -> list[Any]:
        programme = self.catalogue.get(cert.programme_id)
        changed = status_changed_at(cert)
        return [
            cert.certificate_id,
            cert.educator_id,
            cert.institution,
            cert.programme_id,
            programme.names.en if programme else "",
            cert.credits,
            self.catalogue.credit_system,
            cert.issued_at.isoformat(),
            cert.status,
            changed.isoformat() if changed else "",
            self.verification_url(cert.certificate_id),
        ]

    async def progress_rows(self, institution: str | None, programme_id: str | None = None) -> AsyncIterator[list[Any]]:
        """One row per (educator, programme), educators by id, programmes prerequisites first."""
        if programme_id is not None and self.catalogue.get(programme_id) is None:
            raise CertificationError("unknown_programme", f"no programme {programme_id!r} in the catalogue")
        after: str | None = None
        while True:
            educators = await self._reader.educators(institution, after=after, limit=EXPORT_BATCH)
            if not educators:
                return
            completions, certificates = await self._reader.records_of([e.educator_id for e in educators])
            for educator in educators:
                for row in self._educator_rows(
                    educator,
                    completions.get(educator.educator_id, {}),
                    certificates.get(educator.educator_id, []),
                    programme_id,
                ):
                    yield row
            if len(educators) < EXPORT_BATCH:
                return
            after = educators[-1].educator_id

    def _educator_rows(
        self,
        educator: Educator,
        completions: dict[str, Completion],
        certificates: list[Certificate],
        programme_id: str | None,
    ) -> list[list[Any]]:
        by_programme = {c.programme_id: c for c in certificates}
        rows = []
        for p in progress_of(self.catalogue, completions, certificates):
            if programme_id is not None and p.programme_id != programme_id:
                continue
            programme = self.catalogue.programme(p.programme_id)
            cert = by_programme.get(p.programme_id)
            attempted = any(c.best_score is not None for c in p.courses)
            status = programme_status(cert, earned=p.earned, attempted=attempted)
            scores = ";".join(f"{c.course_id}:{c.best_score:g}" for c in p.courses if c.best_score is not None)
            rows.append(
                [
                    educator.educator_id,
                    educator.institution,
                    educator.role,
                    educator.registered_at.isoformat(),
                    p.programme_id,
                    programme.names.en,
                    status,
                    sum(1 for c in p.courses if c.passed),
                    len(p.courses),
                    ";".join(c.course_id for c in p.courses if c.passed),
                    ";".join(p.below_threshold),
                    ";".join(p.not_attempted),
                    ";".join(p.missing_prerequisites),
                    scores,
                    cert.certificate_id if cert else "",
                ]
            )
        return rows


def status_changed_at(cert: Certificate) -> datetime | None:
    """When the certificate was revoked, or else last suspended or reinstated."""
    if cert.revocation is not None:
        return cert.revocation.revoked_at
    return cert.last_change.at if cert.last_change else None


def programme_status(cert: Certificate | None, *, earned: bool, attempted: bool) -> str:
    """`certified` | `suspended` | `revoked` | `earned` | `in_progress` | `not_started` (as in the progress API)."""
    if cert is not None:
        return "certified" if cert.status == "active" else cert.status
    return "earned" if earned else "in_progress" if attempted else "not_started"
