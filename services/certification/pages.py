"""Public pages for people (contract 11): the verification page of a certificate, the criteria page of each
programme, the issuer's profile, and the printable certificate (PDF, `printable.py`).

Everything is public and self-contained (inline CSS and an inline SVG QR code, no external assets), so the
pages work offline and on a phone; the holder's name is never shown (this service holds none).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Annotated, Any

import segno
from fastapi import APIRouter, Header, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from iioe.events.common import Language
from iioe.runtime.http import ApiError
from services.certification import printable
from services.certification.catalogue import Programme
from services.certification.domain import Certificate, CertificationError
from services.certification.i18n import LANGUAGES, choose_language, tier_name, words
from services.certification.usecases import Certification

PAGE_CACHE = "public, max-age=60"
LANGUAGE_LABELS = {"mn": "Монгол", "en": "English", "ru": "Русский"}
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("templates")),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def qr_svg(url: str) -> Markup:
    """The URL as an inline SVG QR code (error correction M, quiet zone of 4 modules)."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="svg", xmldecl=False, svgns=True, scale=4, border=4, title=url)
    return Markup(buffer.getvalue().decode("utf-8"))


def _language(lang: str | None, accept_language: str | None) -> Language:
    return choose_language(lang, accept_language)


def _html(template: str, language: Language, status_code: int = 200, **context: Any) -> HTMLResponse:
    body = _templates.get_template(template).render(
        lang=language,
        t=words(language),
        languages=[(code, LANGUAGE_LABELS[code]) for code in LANGUAGES],
        **context,
    )
    headers = {"Content-Language": language, "Vary": "Accept-Language", "Cache-Control": PAGE_CACHE}
    return HTMLResponse(body, status_code=status_code, headers=headers)


def verification_context(
    certification: Certification, cert: Certificate, language: Language, status_lists: list[str]
) -> dict[str, Any]:
    """What the verification page and the printable certificate say about one certificate."""
    programme = certification.catalogue.get(cert.programme_id)
    reason, since = None, None
    if cert.revocation is not None:
        reason, since = cert.revocation.reason, cert.revocation.revoked_at
    elif cert.suspension is not None:
        reason, since = cert.suspension.reason, cert.suspension.at
    courses = []
    for course_id in cert.course_ids:
        course = certification.catalogue.course(course_id)
        courses.append(course.titles.get(language) if course else course_id)
    names = programme.names if programme else None
    return {
        "certificate_id": cert.certificate_id,
        "status": cert.status,
        "reason": reason,
        "since": since.date().isoformat() if since else None,
        "programme_id": cert.programme_id,
        "programme_name": names.get(language) if names else cert.programme_id,
        "programme_names": {code: names.get(code) for code in LANGUAGES} if names else {},
        "other_names": " · ".join(v for code, v in names.items() if code != language) if names else "",
        "tier": tier_name(programme.tier, language) if programme else "",
        "courses": courses,
        "credits": f"{cert.credits:g}",
        "credit_system": certification.catalogue.credit_system,
        "framework": f"{programme.framework} — {programme.framework_level}" if programme else "",
        "framework_url": programme.framework_url if programme else None,
        "issuer_name": certification.issuer.name,
        "issued_on": cert.issued_at.date().isoformat(),
        "issued_iso": cert.issued_at.isoformat(),
        "page_url": certification.verification_url(cert.certificate_id),
        "criteria_path": f"/programmes/{cert.programme_id}/criteria?lang={language}",
        "certificate_path": f"/v1/certificates/{cert.certificate_id}",
        "pdf_path": f"/v1/certificates/{cert.certificate_id}.pdf",
        "status_lists": status_lists,
        "cli_example": _cli_example(certification, cert.certificate_id, status_lists),
    }


def _cli_example(certification: Certification, certificate_id: str, status_lists: list[str]) -> str:
    base = certification.public_url
    lines = [
        f"curl -s {base}/v1/certificates/{certificate_id} > certificate.json",
        f"curl -s {base}/.well-known/jwks.json > jwks.json",
    ]
    files = []
    for path in status_lists:
        name = path.rsplit("/", 1)[-1] + ".jwt"
        lines.append(f"curl -s {base}{path} > {name}")
        files.append(f"--status-list {name}")
    lines.append(" ".join(["iioe verify certificate.json --jwks jwks.json", *files]))
    return "\n".join(lines)


def issuer_profile(certification: Certification) -> dict[str, Any]:
    """The OB 3.0 issuer `Profile` as JSON-LD, with where its keys and pages are."""
    issuer = certification.issuer
    base = certification.public_url
    profile: dict[str, Any] = {
        "@context": [
            "https://www.w3.org/ns/credentials/v2",
            "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json",
        ],
        "id": issuer.id,
        "type": ["Profile"],
        "name": issuer.name,
        "url": issuer.url or f"{base}/issuer",
        "description": "Issues the IIOE micro-certificates as Open Badges 3.0 credentials (VC-JWT, Ed25519).",
        "otherIdentifier": [
            {"type": "IdentifierEntry", "identifier": f"{base}/issuer", "identifierType": "identifier"}
        ],
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "achievements": [
            {"id": f"urn:iioe:programme:{p.id}", "name": p.names.en, "criteria": certification.criteria_url(p.id)}
            for p in certification.catalogue.in_prerequisite_order()
        ],
    }
    return profile


HTML_PAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found: a page for people", "content": {"text/html": {"schema": {"type": "string"}}}},
    "default": {
        "description": 'Any other error: `{"error": {"code", "message"}}`',
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
    },
}


def build_pages_router(certification: Certification) -> APIRouter:
    router = APIRouter(tags=["pages"])
    catalogue = certification.catalogue

    async def load(certificate_id: str) -> tuple[Certificate, list[str]] | None:
        try:
            cert, _ = await certification.certificate(certificate_id)
        except CertificationError:
            return None
        entries = await certification.status_entries(certificate_id)
        return cert, [f"/status/{e.list_id}" for e in entries]

    @router.get("/verify/{certificate_id}", response_class=HTMLResponse, responses=HTML_PAGE_RESPONSES)
    async def verify_page(
        certificate_id: str,
        lang: Annotated[str | None, Query(description="mn, en or ru; default from Accept-Language")] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> HTMLResponse:
        """The certificate for people: programme, tier, courses, credits and level, issuer, date, status (with
        the reason), a QR code of this page and how to verify independently. Public; never a name."""
        language = _language(lang, accept_language)
        found = await load(certificate_id)
        if found is None:
            t = words(language)
            return _html(
                "not_found.html",
                language,
                404,
                heading=t["not_found"],
                note=t["not_found_note"],
                subject=certificate_id,
            )
        cert, status_lists = found
        context = verification_context(certification, cert, language, status_lists)
        return _html("verify.html", language, qr_svg=qr_svg(context["page_url"]), **context)

    @router.get(
        "/v1/certificates/{certificate_id}.pdf",
        response_class=Response,
        tags=["certificates"],
        responses={200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def printable_certificate(certificate_id: str) -> Response:
        """A one-page printable certificate (Mongolian and English) with the QR code of the verification page."""
        found = await load(certificate_id)
        if found is None:
            raise ApiError(404, "certificate_not_found", f"no certificate {certificate_id!r}")
        cert, status_lists = found
        pages = {code: verification_context(certification, cert, code, status_lists) for code in ("mn", "en")}
        try:
            pdf = printable.render(pages["mn"], pages["en"])
        except printable.FontMissing as exc:
            raise ApiError(503, "pdf_font_missing", str(exc)) from None
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'inline; filename="{cert.certificate_id}.pdf"',
                "Cache-Control": PAGE_CACHE,
            },
        )

    @router.get("/programmes/{programme_id}/criteria", response_class=HTMLResponse, responses=HTML_PAGE_RESPONSES)
    async def criteria_page(
        programme_id: str,
        lang: Annotated[str | None, Query()] = None,
        accept_language: Annotated[str | None, Header()] = None,
    ) -> HTMLResponse:
        """What earns the programme's certificate (the achievement's `criteria.id` in every credential)."""
        language = _language(lang, accept_language)
        programme = catalogue.get(programme_id)
        t = words(language)
        if programme is None:
            return _html(
                "not_found.html", language, 404, heading=t["programme_not_found"], note="", subject=programme_id
            )
        return _html("criteria.html", language, **_criteria_context(certification, programme, language))

    @router.get(
        "/issuer",
        response_class=Response,
        responses={200: {"content": {"application/ld+json": {"schema": {"type": "object"}}}}},
    )
    async def issuer() -> JSONResponse:
        """The issuer profile (OB 3.0 `Profile`, JSON-LD)."""
        return JSONResponse(
            issuer_profile(certification), media_type="application/ld+json", headers={"Cache-Control": PAGE_CACHE}
        )

    return router


def _criteria_context(certification: Certification, programme: Programme, language: Language) -> dict[str, Any]:
    catalogue = certification.catalogue
    t = words(language)
    return {
        "programme_name": programme.names.get(language),
        "description": programme.description.get(language),
        "tier": tier_name(programme.tier, language),
        "credits": f"{programme.credits:g}",
        "credit_system": catalogue.credit_system,
        "framework": f"{programme.framework} — {programme.framework_level}",
        "issuer_name": certification.issuer.name,
        "min_score": t["min_score"].format(score=f"{programme.min_score:g}"),
        "courses": [c.titles.get(language) for c in programme.courses],
        "requires": [{"id": r, "name": catalogue.programme(r).names.get(language)} for r in programme.requires],
    }
