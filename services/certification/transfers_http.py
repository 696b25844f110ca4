"""HTTP API of credit transfer (#12 item 3), on the certification service.

* `POST /v1/credit-transfers` — the educator's institution (its token) or an operator (`recognize` scope);
* `POST /v1/credit-transfers/{id}/decision` — only the receiving institution's token, or an operator;
* `GET /v1/credit-transfers?institution=` — requests where that institution is either side; an institution's
  token sees only its own (its code by default), an operator's any;
* `GET /v1/credit-transfers/{id}` — either institution concerned, or an operator.

201 for a new request or decision, 200 for the same one again; 409 for a decision after another one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from iioe.events.common import InstitutionCode
from iioe.runtime.auth import audit, authenticated, check_institution_access
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from services.certification.domain import CertificationError
from services.certification.transfer_service import CreditTransfers, DecideTransfer, RequestTransfer
from services.certification.transfers import CreditTransfer

SCOPE = "recognize"
STATUS_BY_CODE = {
    "forbidden": 403,
    "certificate_not_found": 404,
    "transfer_not_found": 404,
    "certificate_revoked": 409,
    "certificate_suspended": 409,
    "decision_final": 409,
    "recognition_conflict": 409,
    "credits_exceed_certificate": 409,
}

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class TransferRequestBody(BaseModel):
    educator_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    certificate_id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    receiving_institution: InstitutionCode
    receiving_programme: Text


class DecisionBody(BaseModel):
    decision: Literal["accepted", "rejected"]
    credits: float | None = Field(default=None, gt=0, le=120, description="required when accepted")
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None = Field(
        default=None, description="required when rejected"
    )


class TransferView(BaseModel):
    request_id: str
    educator_id: str
    institution: str
    certificate_id: str
    receiving_institution: str
    receiving_programme: str
    requested_at: datetime
    status: Literal["requested", "accepted", "rejected"]
    credits: float | None = None
    reason: str | None = None
    decided_at: datetime | None = None


class TransferList(BaseModel):
    institution: str
    transfers: list[TransferView]


def view(t: CreditTransfer) -> TransferView:
    return TransferView(
        request_id=t.request_id,
        educator_id=t.educator_id,
        institution=t.institution,
        certificate_id=t.certificate_id,
        receiving_institution=t.receiving_institution,
        receiving_programme=t.receiving_programme,
        requested_at=t.requested_at,
        status=t.status,
        credits=t.credits,
        reason=t.reason,
        decided_at=t.decided_at,
    )


def _acting(grant: TokenGrant) -> str | None:
    """The institution a token acts for; None for an operator holding the scope."""
    if grant.kind == "operator":
        if not grant.allows(SCOPE):
            raise ApiError(403, "forbidden", f"this action needs an operator token with the '{SCOPE}' scope")
        return None
    if grant.institution is None:
        raise ApiError(403, "forbidden", "this token acts for no institution")
    return grant.institution


def _error(exc: CertificationError) -> ApiError:
    return ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message)


def build_transfers_router(transfers: CreditTransfers) -> APIRouter:
    router = APIRouter(tags=["credit transfer"])

    @router.post("/v1/credit-transfers", response_model=TransferView, status_code=201)
    async def request_transfer(
        body: TransferRequestBody, response: Response, grant: Annotated[TokenGrant, Depends(authenticated)]
    ) -> TransferView:
        """Ask a receiving institution to count a certificate's credits; emits CreditTransferRequested once."""
        command = RequestTransfer(
            body.educator_id,
            body.certificate_id,
            body.receiving_institution,
            body.receiving_programme,
            acting_institution=_acting(grant),
            actor=grant.actor,
        )
        try:
            transfer, created = await transfers.request(command)
        except CertificationError as exc:
            raise _error(exc) from None
        audit(grant, "credit_transfer.request", request_id=transfer.request_id, certificate_id=transfer.certificate_id)
        if not created:
            response.status_code = 200
        return view(transfer)

    @router.post("/v1/credit-transfers/{request_id}/decision", response_model=TransferView, status_code=201)
    async def decide_transfer(
        request_id: str,
        body: DecisionBody,
        response: Response,
        grant: Annotated[TokenGrant, Depends(authenticated)],
    ) -> TransferView:
        """The receiving institution accepts (credits) or rejects (reason); final. Acceptance also emits
        CreditRecognized."""
        command = DecideTransfer(
            request_id, body.decision, body.credits, body.reason, acting_institution=_acting(grant), actor=grant.actor
        )
        try:
            transfer, created = await transfers.decide(command)
        except CertificationError as exc:
            raise _error(exc) from None
        audit(grant, "credit_transfer.decide", request_id=request_id, decision=transfer.decision)
        if not created:
            response.status_code = 200
        return view(transfer)

    @router.get("/v1/credit-transfers", response_model=TransferList)
    async def list_transfers(
        grant: Annotated[TokenGrant, Depends(authenticated)],
        institution: Annotated[str | None, Query(max_length=32)] = None,
    ) -> TransferList:
        """Requests where `institution` is the educator's or the receiving institution."""
        code = institution or grant.institution
        if code is None:
            raise ApiError(422, "institution_required", "name the institution: ?institution=<code>")
        if grant.kind == "operator":
            _acting(grant)
        check_institution_access(grant, code)
        return TransferList(institution=code, transfers=[view(t) for t in await transfers.of_institution(code)])

    @router.get("/v1/credit-transfers/{request_id}", response_model=TransferView)
    async def get_transfer(request_id: str, grant: Annotated[TokenGrant, Depends(authenticated)]) -> TransferView:
        try:
            return view(await transfers.get(request_id, acting_institution=_acting(grant)))
        except CertificationError as exc:
            raise _error(exc) from None

    return router
