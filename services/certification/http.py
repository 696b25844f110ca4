"""HTTP API of the certification service: JWKS, certificates, progress, verification, status lists,
operator actions.

Public without a token (contract 8): the JWKS, certificate status, verification and status lists (a receiving
university verifies without an account). A person's progress and certificate list need a bearer token of
their institution (or an operator's); operator actions need an operator token with the action's scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from iioe.events.common import InstitutionCode
from iioe.runtime.auth import audit, authenticated, check_institution_access, require_scope
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from iioe.subjects import MAX_EVENT_BYTES
from services.certification.catalogue import LocalizedText, ProgrammeCatalogue
from services.certification.credentials import STATUS_LIST_MEDIA_TYPE
from services.certification.domain import Certificate, CertificateStatus, CertificationError, Recognition, StatusChange
from services.certification.settings import CertificationSettings
from services.certification.usecases import (
    Certification,
    EducatorProgress,
    RecognizeCredits,
    ReinstateCertificate,
    RevokeCertificate,
    SuspendCertificate,
)

STATUS_BY_CODE = {
    "certificate_not_found": 404,
    "educator_not_found": 404,
    "status_list_not_found": 404,
    "certificate_revoked": 409,
    "certificate_suspended": 409,
    "certificate_not_suspended": 409,
    "recognition_conflict": 409,
}
JWKS_CACHE = "public, max-age=300"
"""Verifiers may cache the key set briefly; a rotated-in key appears within five minutes at worst."""
STATUS_LIST_CACHE = "public, max-age=60, must-revalidate"
"""A flipped bit reaches verifiers within a minute; revalidation with the ETag costs a 304."""

# --- request and response models ----------------------------------------------------------------------


class VerifyRequest(BaseModel):
    credential: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EVENT_BYTES)]


Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class RevokeRequest(BaseModel):
    reason: Reason


class StatusChangeRequest(BaseModel):
    reason: Reason | None = None


class RecognitionRequest(BaseModel):
    receiving_institution: InstitutionCode
    receiving_programme: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    credits: float | None = Field(default=None, gt=0, le=120, description="at most the certificate's; default all")


class RevocationView(BaseModel):
    certificate_id: str
    reason: str
    revoked_at: datetime


class StatusChangeView(BaseModel):
    """A suspension or reinstatement; a repeated request answers the same body again."""

    certificate_id: str
    status: CertificateStatus
    """The certificate's status after the change."""
    action: Literal["suspended", "reinstated"]
    seq: int
    reason: str | None
    at: datetime


class RecognitionView(BaseModel):
    recognition_id: str
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    credits: float
    recognized_at: datetime


class CertificateView(BaseModel):
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
    revocation: RevocationView | None = None
    suspension: StatusChangeView | None = None
    """The suspension in force when `status` is `suspended`."""
    verification_url: str
    kid: str
    credential: str
    recognitions: list[RecognitionView] = Field(default_factory=list)


class VerifyResponse(BaseModel):
    """200 for every outcome; `reason` is a code when invalid and the operator's reason when revoked."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "invalid", "reason": "bad_signature"}]})

    status: Literal["valid", "suspended", "revoked", "invalid"]
    reason: str | None = None
    detail: str | None = None
    certificate_id: str | None = None
    educator_id: str | None = None
    institution: str | None = None
    programme_id: str | None = None
    programme_names: LocalizedText | None = None
    issued_at: datetime | None = None
    credits: float | None = None
    issuer: str | None = None
    kid: str | None = None
    revoked_at: datetime | None = None
    suspended_at: datetime | None = None


class CourseProgressView(BaseModel):
    course_id: str
    title: LocalizedText | None
    best_score: float | None
    attempts: int
    passed: bool


class ProgrammeProgressView(BaseModel):
    programme_id: str
    names: LocalizedText
    tier: str
    min_score: float
    credits: float
    status: Literal["certified", "suspended", "revoked", "earned", "in_progress", "not_started"]
    certificate_id: str | None
    courses: list[CourseProgressView]
    completed_courses: list[str]
    missing_courses: list[str]
    below_threshold: list[str]
    prerequisites: list[str]
    missing_prerequisites: list[str]


class EducatorProgressView(BaseModel):
    educator_id: str
    institution: str
    pending_completions: int
    programmes: list[ProgrammeProgressView]


class EducatorCertificatesView(BaseModel):
    educator_id: str
    certificates: list[CertificateView]


class KeyRotationView(BaseModel):
    active_kid: str
    kids: list[str]


# --- views ------------------------------------------------------------------------------------------


def change_view(change: StatusChange) -> StatusChangeView:
    status: CertificateStatus = "suspended" if change.action == "suspended" else "active"
    return StatusChangeView(
        certificate_id=change.certificate_id,
        status=status,
        action=change.action,
        seq=change.seq,
        reason=change.reason,
        at=change.at,
    )


def certificate_fields(cert: Certificate, catalogue: ProgrammeCatalogue, verification_url: str) -> dict[str, Any]:
    """What every view of a certificate says (the full view, listings and exports add to it)."""
    programme = catalogue.get(cert.programme_id)
    return {
        "certificate_id": cert.certificate_id,
        "educator_id": cert.educator_id,
        "institution": cert.institution,
        "programme_id": cert.programme_id,
        "programme_names": programme.names if programme else None,
        "course_ids": list(cert.course_ids),
        "credits": cert.credits,
        "credit_system": catalogue.credit_system,
        "issued_at": cert.issued_at,
        "status": cert.status,
        "verification_url": verification_url,
    }


def certificate_view(
    cert: Certificate,
    certification: Certification,
    recognitions: list[Recognition] | None = None,
) -> CertificateView:
    revocation = cert.revocation
    return CertificateView(
        **certificate_fields(cert, certification.catalogue, certification.verification_url(cert.certificate_id)),
        revocation=RevocationView(**vars(revocation)) if revocation else None,
        suspension=change_view(cert.suspension) if cert.suspension else None,
        kid=cert.kid,
        credential=cert.credential,
        recognitions=[RecognitionView(**vars(r)) for r in recognitions or []],
    )


def _progress_view(certification: Certification, educator_id: str, progress: EducatorProgress) -> EducatorProgressView:
    catalogue = certification.catalogue
    by_programme = {c.programme_id: c for c in progress.certificates}
    programmes = []
    for p in progress.programmes:
        programme = catalogue.programme(p.programme_id)
        cert = by_programme.get(p.programme_id)
        attempted = any(c.best_score is not None for c in p.courses)
        status: Literal["certified", "suspended", "revoked", "earned", "in_progress", "not_started"]
        if cert is not None:
            status = "certified" if cert.status == "active" else cert.status
        else:
            status = "earned" if p.earned else "in_progress" if attempted else "not_started"
        programmes.append(
            ProgrammeProgressView(
                programme_id=p.programme_id,
                names=programme.names,
                tier=programme.tier,
                min_score=p.min_score,
                credits=programme.credits,
                status=status,
                certificate_id=cert.certificate_id if cert else None,
                courses=[
                    CourseProgressView(
                        course_id=c.course_id,
                        title=course.titles if (course := catalogue.course(c.course_id)) else None,
                        best_score=c.best_score,
                        attempts=done.attempts if (done := progress.completions.get(c.course_id)) else 0,
                        passed=c.passed,
                    )
                    for c in p.courses
                ],
                completed_courses=list(p.completed_courses),
                missing_courses=list(p.missing_courses),
                below_threshold=list(p.below_threshold),
                prerequisites=list(programme.requires),
                missing_prerequisites=list(p.missing_prerequisites),
            )
        )
    return EducatorProgressView(
        educator_id=educator_id,
        institution=progress.educator.institution,
        pending_completions=progress.pending_completions,
        programmes=programmes,
    )


def _api_error(exc: CertificationError) -> ApiError:
    return ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message)


# --- routes -----------------------------------------------------------------------------------------


def build_router(certification: Certification, settings: CertificationSettings) -> APIRouter:
    router = APIRouter()
    catalogue = certification.catalogue

    @router.get("/.well-known/jwks.json", tags=["verification"])
    async def jwks(response: Response) -> dict[str, list[dict[str, object]]]:
        """Public keys of every signing key ever used (retired ones too), so old credentials keep verifying."""
        response.headers["Cache-Control"] = JWKS_CACHE
        return await certification.jwks()  # public halves only: no private key is opened to serve it

    @router.get("/v1/certificates/{certificate_id}", response_model=CertificateView, tags=["certificates"])
    async def get_certificate(certificate_id: str) -> CertificateView:
        """The certificate, its status (`active` | `suspended` | `revoked`, with the reason), the signed credential
        and credit recognitions. Public: this is what verifiers check."""
        try:
            cert, recognitions = await certification.certificate(certificate_id)
        except CertificationError as exc:
            raise _api_error(exc) from None
        return certificate_view(cert, certification, recognitions)

    @router.get(
        "/v1/educators/{educator_id}/certificates", response_model=EducatorCertificatesView, tags=["certificates"]
    )
    async def educator_certificates(
        educator_id: str, grant: Annotated[TokenGrant, Depends(authenticated)]
    ) -> EducatorCertificatesView:
        """Every certificate of one educator (token of the educator's institution, or an operator's)."""
        try:
            educator, certificates = await certification.certificates_of(educator_id)
        except CertificationError as exc:
            _refuse_unknown_to_institutions(grant)
            raise _api_error(exc) from None
        check_institution_access(grant, educator.institution)
        return EducatorCertificatesView(
            educator_id=educator_id, certificates=[certificate_view(c, certification) for c in certificates]
        )

    @router.get("/v1/educators/{educator_id}/progress", response_model=EducatorProgressView, tags=["progress"])
    async def educator_progress(
        educator_id: str, grant: Annotated[TokenGrant, Depends(authenticated)]
    ) -> EducatorProgressView:
        """Per programme: best scores, attempts, what is passed, what is missing, prerequisites (token of the
        educator's institution, or an operator's)."""
        try:
            progress = await certification.progress(educator_id)
        except CertificationError as exc:
            _refuse_unknown_to_institutions(grant)
            raise _api_error(exc) from None
        check_institution_access(grant, progress.educator.institution)
        return _progress_view(certification, educator_id, progress)

    @router.post("/v1/verify", response_model=VerifyResponse, response_model_exclude_none=True, tags=["verification"])
    async def verify(body: VerifyRequest) -> VerifyResponse:
        """Check a credential (signature, claims, status); 200 whatever the outcome, 422 for a bad body."""
        outcome = await certification.verify(body.credential)
        cert = outcome.certificate
        if cert is None:
            return VerifyResponse(status=outcome.status, reason=outcome.reason, detail=outcome.detail)
        programme = catalogue.get(cert.programme_id)
        return VerifyResponse(
            status=outcome.status,
            reason=outcome.reason,
            certificate_id=cert.certificate_id,
            educator_id=cert.educator_id,
            institution=cert.institution,
            programme_id=cert.programme_id,
            programme_names=programme.names if programme else None,
            issued_at=cert.issued_at,
            credits=cert.credits,
            issuer=outcome.issuer_id,
            kid=outcome.kid,
            revoked_at=cert.revocation.revoked_at if cert.revocation else None,
            suspended_at=cert.suspension.at if cert.suspension else None,
        )

    @router.get(
        "/status/{list_id}",
        tags=["verification"],
        response_class=Response,
        responses={200: {"content": {STATUS_LIST_MEDIA_TYPE: {}}}, 304: {"description": "not modified"}},
    )
    async def status_list(list_id: str, request: Request) -> Response:
        """A W3C BitstringStatusListCredential (VC-JWT) named by credentials' `statusListCredential`. Public,
        cacheable for a minute, with an ETag (`If-None-Match` → 304)."""
        try:
            signed = await certification.signed_status_list(list_id)
        except CertificationError as exc:
            raise _api_error(exc) from None
        headers = {"Cache-Control": STATUS_LIST_CACHE, "ETag": signed.etag}
        if signed.etag in _etags(request.headers.get("if-none-match")):
            return Response(status_code=304, headers=headers)
        return Response(signed.token, media_type=STATUS_LIST_MEDIA_TYPE, headers=headers)

    @router.post("/v1/certificates/{certificate_id}/revoke", response_model=RevocationView, tags=["operations"])
    async def revoke(
        certificate_id: str, body: RevokeRequest, grant: Annotated[TokenGrant, Depends(require_scope("revoke"))]
    ) -> RevocationView:
        """Revoke (scope `revoke`), from active or suspended; final. Emits CertificateRevoked once, with the
        actor; repeating answers the first revocation. 404 unknown certificate."""
        audit(grant, "revoke_certificate", certificate_id=certificate_id)
        try:
            revocation, _ = await certification.revoke(RevokeCertificate(certificate_id, body.reason, grant.actor))
        except CertificationError as exc:
            raise _api_error(exc) from None
        return RevocationView(**vars(revocation))

    @router.post("/v1/certificates/{certificate_id}/suspend", response_model=StatusChangeView, tags=["operations"])
    async def suspend(
        certificate_id: str,
        grant: Annotated[TokenGrant, Depends(require_scope("revoke"))],
        body: Annotated[StatusChangeRequest | None, Body()] = None,
    ) -> StatusChangeView:
        """Suspend an active certificate (scope `revoke`; body `{"reason"}` optional); emits CertificateSuspended
        with the actor. Repeating answers the suspension in force; a revoked certificate → 409
        `certificate_revoked`."""
        audit(grant, "suspend_certificate", certificate_id=certificate_id)
        reason = body.reason if body else None
        try:
            change, _ = await certification.suspend(SuspendCertificate(certificate_id, reason, grant.actor))
        except CertificationError as exc:
            raise _api_error(exc) from None
        return change_view(change)

    @router.post("/v1/certificates/{certificate_id}/reinstate", response_model=StatusChangeView, tags=["operations"])
    async def reinstate(
        certificate_id: str,
        grant: Annotated[TokenGrant, Depends(require_scope("revoke"))],
        body: Annotated[StatusChangeRequest | None, Body()] = None,
    ) -> StatusChangeView:
        """Lift a suspension (scope `revoke`); emits CertificateReinstated with the actor. Repeating answers the
        same reinstatement; never suspended → 409 `certificate_not_suspended`; revoked → 409 `certificate_revoked`."""
        audit(grant, "reinstate_certificate", certificate_id=certificate_id)
        reason = body.reason if body else None
        try:
            change, _ = await certification.reinstate(ReinstateCertificate(certificate_id, reason, grant.actor))
        except CertificationError as exc:
            raise _api_error(exc) from None
        return change_view(change)

    @router.post(
        "/v1/certificates/{certificate_id}/recognitions",
        response_model=RecognitionView,
        status_code=201,
        tags=["operations"],
    )
    async def recognize(
        certificate_id: str,
        body: RecognitionRequest,
        response: Response,
        grant: Annotated[TokenGrant, Depends(require_scope("recognize"))],
    ) -> RecognitionView:
        """Record credit transfer into a receiving programme (scope `recognize`); 201 new, 200 the same again."""
        audit(grant, "recognize_credits", certificate_id=certificate_id)
        try:
            recognition, created = await certification.recognize(
                RecognizeCredits(certificate_id, body.receiving_institution, body.receiving_programme, body.credits)
            )
        except CertificationError as exc:
            raise _api_error(exc) from None
        if not created:
            response.status_code = 200
        return RecognitionView(**vars(recognition))

    @router.post("/v1/keys/rotate", response_model=KeyRotationView, tags=["operations"])
    async def rotate_key(grant: Annotated[TokenGrant, Depends(require_scope("keys"))]) -> KeyRotationView:
        """Sign new credentials with a fresh key (scope `keys`); retired keys stay in the JWKS."""
        audit(grant, "rotate_signing_key")
        ring = await certification.rotate_key()
        return KeyRotationView(active_kid=ring.active_kid, kids=list(ring.kids))

    return router


def _refuse_unknown_to_institutions(grant: TokenGrant) -> None:
    """An institution token learns nothing about educators it cannot see, not even whether they exist."""
    if grant.kind != "operator":
        raise ApiError(403, "forbidden", "this token acts for another institution")


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}
