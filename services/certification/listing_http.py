"""HTTP for institution staff: list and export their institution's certificates, export their educators' progress.

An institution's token sees only its own institution (asking for another one is a 403); an operator's token sees
every institution, or the one named by `institution`. Exports are streamed CSV (UTF-8 with a BOM) or XLSX, with
the cells a spreadsheet would run as formulas prefixed by `'` (`iioe.runtime.exports`). No names or e-mails:
the certification service holds none (registration's export has them).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from iioe.runtime.auth import audit, authenticated, check_institution_access
from iioe.runtime.exports import EXPORT_RESPONSES, ExportFormat, export_response
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from services.certification.catalogue import LocalizedText
from services.certification.domain import Certificate, CertificateStatus, CertificationError
from services.certification.http import certificate_fields
from services.certification.listing import (
    CERTIFICATE_COLUMNS,
    PROGRESS_COLUMNS,
    CertificateListing,
    CertificateQuery,
    status_changed_at,
)

MAX_PAGE_SIZE = 200
Grant = Annotated[TokenGrant, Depends(authenticated)]
BEARER = [Security(HTTPBearer(auto_error=False, description="An institution's token or an operator token."))]
"""Documents the bearer scheme in OpenAPI; `authenticated` does the checking."""


class CertificateSummaryView(BaseModel):
    certificate_id: str
    educator_id: str
    institution: str
    programme_id: str
    programme_names: LocalizedText | None
    course_ids: list[str]
    credits: float
    credit_system: str
    issued_at: datetime
    status: CertificateStatus
    status_changed_at: datetime | None
    """When it was revoked, or last suspended or reinstated."""
    verification_url: str


class CertificatePageView(BaseModel):
    items: list[CertificateSummaryView]
    page: int
    page_size: int
    total: int


def listed_institution(grant: TokenGrant, institution: str | None) -> str | None:
    """Which institution a list or export covers: an institution token only ever its own (403 for another)."""
    if grant.kind == "operator":
        return institution
    if institution is not None:
        check_institution_access(grant, institution)
    return grant.institution


def _api_error(exc: CertificationError) -> ApiError:
    return ApiError(422, exc.code, exc.message)


def build_listing_router(listing: CertificateListing) -> APIRouter:
    """Include before the router with `/v1/certificates/{certificate_id}`, or `export` is taken for an id."""
    router = APIRouter()
    catalogue = listing.catalogue

    def summary(cert: Certificate) -> CertificateSummaryView:
        fields = certificate_fields(cert, catalogue, listing.verification_url(cert.certificate_id))
        return CertificateSummaryView(**fields, status_changed_at=status_changed_at(cert))

    def certificate_query(
        grant: TokenGrant,
        institution: str | None,
        status: CertificateStatus | None,
        programme_id: str | None,
        issued_from: date | None,
        issued_to: date | None,
    ) -> CertificateQuery:
        query = CertificateQuery(listed_institution(grant, institution), status, programme_id, issued_from, issued_to)
        try:
            listing.check(query)
        except CertificationError as exc:
            raise _api_error(exc) from None
        return query

    @router.get("/v1/certificates", response_model=CertificatePageView, tags=["certificates"], dependencies=BEARER)
    async def list_certificates(
        grant: Grant,
        institution: str | None = None,
        status: CertificateStatus | None = None,
        programme_id: str | None = None,
        issued_from: Annotated[date | None, Query(description="first day included (UTC), YYYY-MM-DD")] = None,
        issued_to: Annotated[date | None, Query(description="last day included (UTC), YYYY-MM-DD")] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> CertificatePageView:
        """Certificates, oldest first (issue time, then id), without the signed credential (see
        `/v1/certificates/{id}`). An institution token sees its own institution's; an operator any, or
        `institution`'s. 422 `unknown_programme` / `invalid_period`."""
        query = certificate_query(grant, institution, status, programme_id, issued_from, issued_to)
        total, found = await listing.page(query, page, page_size)
        return CertificatePageView(items=[summary(c) for c in found], page=page, page_size=page_size, total=total)

    @router.get(
        "/v1/certificates/export",
        tags=["certificates"],
        dependencies=BEARER,
        response_class=Response,
        responses=EXPORT_RESPONSES,
    )
    async def export_certificates(
        grant: Grant,
        institution: str | None = None,
        status: CertificateStatus | None = None,
        programme_id: str | None = None,
        issued_from: date | None = None,
        issued_to: date | None = None,
        format: ExportFormat = "csv",
    ) -> StreamingResponse:
        """The same certificates as `GET /v1/certificates` (same filters, every page), streamed as CSV or XLSX."""
        query = certificate_query(grant, institution, status, programme_id, issued_from, issued_to)
        audit(grant, "export_certificates", institution=query.institution or "all")
        return export_response(
            format,
            CERTIFICATE_COLUMNS,
            listing.certificate_rows(query),
            filename=f"certificates-{query.institution or 'all'}",
            sheet="certificates",
        )

    @router.get(
        "/v1/educators/progress/export",
        tags=["progress"],
        dependencies=BEARER,
        response_class=Response,
        responses=EXPORT_RESPONSES,
    )
    async def export_progress(
        grant: Grant,
        institution: str | None = None,
        programme_id: str | None = None,
        format: ExportFormat = "csv",
    ) -> StreamingResponse:
        """One row per educator and programme (or only `programme_id`): status, courses passed, best scores,
        the certificate. Streamed CSV or XLSX; an institution token exports its own educators."""
        scope = listed_institution(grant, institution)
        if programme_id is not None and catalogue.get(programme_id) is None:
            raise ApiError(422, "unknown_programme", f"no programme {programme_id!r} in the catalogue")
        audit(grant, "export_progress", institution=scope or "all")
        return export_response(
            format,
            PROGRESS_COLUMNS,
            listing.progress_rows(scope, programme_id),
            filename=f"progress-{scope or 'all'}",
            sheet="progress",
        )

    return router
