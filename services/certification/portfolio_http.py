"""HTTP API of the Faculty AI Portfolio: the owner's view, the share switch, and the public share link.

`/v1/educators/{id}/portfolio…` needs a bearer token of the educator's institution or an operator's (contract
8: personal data). `/portfolio/{share_id}` is public by the owner's choice: the unguessable id is the
capability, and switching the share off makes it answer 410. It serves the signed Verifiable Presentation
as JSON (`.json`), raw (`.jwt`) and as a self-contained HTML page (`Accept: application/json` on the bare
link answers the JSON too).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel

from iioe.runtime.auth import audit, authenticated, check_institution_access
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from services.certification.domain import CertificationError
from services.certification.http import (
    CertificateView,
    EducatorProgressView,
    _progress_view,
    _refuse_unknown_to_institutions,
    certificate_view,
)
from services.certification.portfolio import PortfolioShare
from services.certification.portfolio_usecases import EducatorPortfolio, Portfolios, SharedBundle
from services.certification.usecases import Certification

PRESENTATION_MEDIA_TYPE = "application/vp+jwt"
STATUS_BY_CODE = {"educator_not_found": 404, "portfolio_share_not_found": 404, "portfolio_share_revoked": 410}
PUBLIC_HEADERS = {
    "Cache-Control": "no-store",  # switching a share off must take effect at once, in every cache
    "Referrer-Policy": "no-referrer",  # the link is the capability: never leak it to the entries' sites
    "X-Robots-Tag": "noindex, nofollow",
}
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class EntryView(BaseModel):
    entry_id: str
    kind: str
    title: str
    link: str | None
    added_on: date


class PracticeReportView(BaseModel):
    integrates_ai: bool
    disciplines: list[str]
    reported_on: date


class ShareView(BaseModel):
    share_id: str
    url: str
    """The public page (HTML); `json_url` and `jwt_url` serve the signed bundle."""
    json_url: str
    jwt_url: str
    created_at: datetime
    active: bool
    revoked_at: datetime | None = None


class PortfolioView(BaseModel):
    educator_id: str
    institution: str
    registered: bool
    integrates_ai: bool | None
    """What the latest practice report says (None: no report yet)."""
    certificates: list[CertificateView]
    progress: EducatorProgressView | None
    """None until the educator's registration is known here."""
    entries: list[EntryView]
    practice_reports: list[PracticeReportView]
    share: ShareView | None


def _share_view(portfolios: Portfolios, share: PortfolioShare) -> ShareView:
    url = portfolios.share_url(share.share_id)
    return ShareView(
        share_id=share.share_id,
        url=url,
        json_url=f"{url}.json",
        jwt_url=f"{url}.jwt",
        created_at=share.created_at,
        active=share.active,
        revoked_at=share.revoked_at,
    )


def portfolio_view(portfolios: Portfolios, certification: Certification, portfolio: EducatorPortfolio) -> PortfolioView:
    return PortfolioView(
        educator_id=portfolio.educator_id,
        institution=portfolio.institution,
        registered=portfolio.educator is not None,
        integrates_ai=portfolio.integrates_ai,
        certificates=[certificate_view(c, certification) for c in portfolio.certificates],
        progress=_progress_view(certification, portfolio.educator_id, portfolio.progress)
        if portfolio.progress
        else None,
        entries=[EntryView(**{f: getattr(e, f) for f in EntryView.model_fields}) for e in portfolio.entries],
        practice_reports=[
            PracticeReportView(
                integrates_ai=r.integrates_ai, disciplines=list(r.disciplines), reported_on=r.reported_on
            )
            for r in portfolio.reports
        ],
        share=_share_view(portfolios, portfolio.share) if portfolio.share else None,
    )


def _api_error(exc: CertificationError) -> ApiError:
    return ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message)


JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": 'An error (unknown or switched-off link): `{"error": {"code", "message"}}`',
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    }
}


def build_portfolio_router(portfolios: Portfolios, certification: Certification) -> APIRouter:
    router = APIRouter(tags=["portfolio"])

    async def owned(educator_id: str, grant: TokenGrant) -> None:
        """403 for another institution's token (unknown educators included), 404 unknown to an operator."""
        try:
            institution = await portfolios.owner(educator_id)
        except CertificationError as exc:
            _refuse_unknown_to_institutions(grant)
            raise _api_error(exc) from None
        check_institution_access(grant, institution)

    @router.get("/v1/educators/{educator_id}/portfolio", response_model=PortfolioView)
    async def educator_portfolio(
        educator_id: str, grant: Annotated[TokenGrant, Depends(authenticated)]
    ) -> PortfolioView:
        """The educator's Faculty AI Portfolio: certificates (with status), progress, portfolio entries and practice
        reports (newest first), and the active share link (token of the educator's institution, or an operator's)."""
        try:
            portfolio = await portfolios.portfolio(educator_id)
        except CertificationError as exc:
            _refuse_unknown_to_institutions(grant)
            raise _api_error(exc) from None
        check_institution_access(grant, portfolio.institution)
        return portfolio_view(portfolios, certification, portfolio)

    @router.post(
        "/v1/educators/{educator_id}/portfolio/share",
        response_model=ShareView,
        status_code=201,
        responses={200: {"model": ShareView, "description": "A link is already active: the same link"}},
    )
    async def share_portfolio(
        educator_id: str, response: Response, grant: Annotated[TokenGrant, Depends(authenticated)]
    ) -> ShareView:
        """Make the public link `/portfolio/{share_id}` (201), or answer the active one again (200)."""
        await owned(educator_id, grant)
        audit(grant, "share_portfolio", educator_id=educator_id)
        try:
            share, created = await portfolios.share(educator_id)
        except CertificationError as exc:
            raise _api_error(exc) from None
        if not created:
            response.status_code = 200
        return _share_view(portfolios, share)

    @router.delete("/v1/educators/{educator_id}/portfolio/share", status_code=204, response_class=Response)
    async def unshare_portfolio(educator_id: str, grant: Annotated[TokenGrant, Depends(authenticated)]) -> Response:
        """Switch the public link off (it answers 410 from now on); 204 also when nothing was shared."""
        await owned(educator_id, grant)
        audit(grant, "unshare_portfolio", educator_id=educator_id)
        await portfolios.unshare(educator_id)
        return Response(status_code=204)

    async def bundle(share_id: str) -> SharedBundle:
        try:
            return await portfolios.shared(share_id)
        except CertificationError as exc:
            error = _api_error(exc)
            raise ApiError(error.status, error.code, error.message, headers=PUBLIC_HEADERS) from None

    @router.get("/portfolio/{share_id}.json", response_class=JSONResponse)
    async def shared_json(share_id: str) -> JSONResponse:
        """The signed bundle: `presentation` (a W3C Verifiable Presentation, compact JWS, EdDSA, verify with the
        JWKS) and, for convenience, its decoded `vp` claim. Public; 404 unknown, 410 switched off."""
        return JSONResponse(_bundle_json(certification, await bundle(share_id)), headers=PUBLIC_HEADERS)

    @router.get(
        "/portfolio/{share_id}.jwt",
        response_class=Response,
        responses={200: {"content": {PRESENTATION_MEDIA_TYPE: {}}}},
    )
    async def shared_jwt(share_id: str) -> Response:
        """The Verifiable Presentation alone, as a compact JWS."""
        signed = await bundle(share_id)
        return Response(signed.presentation, media_type=PRESENTATION_MEDIA_TYPE, headers=PUBLIC_HEADERS)

    @router.get("/portfolio/{share_id}", response_class=HTMLResponse, responses=JSON_ERRORS)
    async def shared_page(share_id: str, request: Request) -> Response:
        """The shared portfolio for people: one self-contained page (inline CSS, no scripts) that also carries the
        signed presentation and the JWKS, so a saved copy can be verified offline. JSON when asked for it."""
        signed = await bundle(share_id)
        if _wants_json(request.headers.get("accept")):
            return JSONResponse(_bundle_json(certification, signed), headers=PUBLIC_HEADERS)
        keyring = await certification.keyring()
        body = _templates.get_template("portfolio.html").render(
            **_page_context(certification, signed), jwks=json.dumps(keyring.jwks(), indent=2)
        )
        return HTMLResponse(body, headers=PUBLIC_HEADERS)

    return router


def _wants_json(accept: str | None) -> bool:
    if not accept:
        return False
    media = [part.split(";")[0].strip() for part in accept.split(",")]
    return "text/html" not in media and any(m in ("application/json", PRESENTATION_MEDIA_TYPE) for m in media)


def _bundle_json(certification: Certification, signed: SharedBundle) -> dict[str, Any]:
    return {
        "share_id": signed.share.share_id,
        "educator_id": signed.share.educator_id,
        "presentation": signed.presentation,
        "jwks_url": f"{certification.public_url}/.well-known/jwks.json",
        "vp": signed.claims["vp"],
    }


def _page_context(certification: Certification, signed: SharedBundle) -> dict[str, Any]:
    portfolio = signed.portfolio
    certificates = []
    for cert in portfolio.certificates:
        programme = certification.catalogue.get(cert.programme_id)
        certificates.append(
            {
                "programme": programme.names.en if programme else cert.programme_id,
                "status": cert.status,
                "issued_on": cert.issued_at.date().isoformat(),
                "credits": f"{cert.credits:g} {certification.catalogue.credit_system}",
                "verification_url": certification.verification_url(cert.certificate_id),
            }
        )
    return {
        "educator_id": portfolio.educator_id,
        "institution": getattr(certification.institutions.get(portfolio.institution), "name_en", portfolio.institution),
        "issuer_name": certification.issuer.name,
        "integrates_ai": portfolio.integrates_ai,
        "certificates": certificates,
        "entries": portfolio.entries,
        "reports": portfolio.reports,
        "presentation": signed.presentation,
        "signed_at": datetime.fromtimestamp(signed.claims["iat"], UTC).isoformat(),
        "jwks_url": f"{certification.public_url}/.well-known/jwks.json",
        "json_url": f"/portfolio/{signed.share.share_id}.json",
    }
