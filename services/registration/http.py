"""HTTP entry points of the registration service (contract section 4)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Body, Response

from iioe.commands import CommandRejected, RegisterEducatorReply, RegisterEducatorRequest
from iioe.reference import Institution
from iioe.runtime.http import ApiError
from services.registration.domain import RegisterEducator
from services.registration.usecases import Registrations

STATUS_BY_CODE = {"unknown_institution": 422, "internal_error": 500}


class RegisterEducatorHttpRequest(RegisterEducatorRequest):
    """The register_educator body plus the institution (on NATS it is part of the subject)."""

    institution: str


# The body is validated by the command model itself (not by FastAPI) so that HTTP and NATS answer
# the same error codes; this only documents it.
REGISTER_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": RegisterEducatorHttpRequest.model_json_schema()}},
    }
}


def _institution_json(inst: Institution) -> dict[str, Any]:
    return {"code": inst.code, "name": inst.name_en, "name_mn": inst.name_mn, "city": inst.city, "type": inst.type}


def build_router(registrations: Registrations, institutions: Mapping[str, Institution]) -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/educators", response_model=RegisterEducatorReply, status_code=201, openapi_extra=REGISTER_BODY_DOC
    )
    async def register_educator(response: Response, payload: dict[str, Any] = Body(...)) -> RegisterEducatorReply:
        """Register an educator (same rules as the NATS command); 201 new, 200 already registered."""
        institution = payload.get("institution")
        if not isinstance(institution, str) or not institution:
            raise ApiError(422, "missing_institution", "institution (an institution code) is required")
        try:
            reply = await registrations.register(RegisterEducator(institution, RegisterEducatorRequest.parse(payload)))
        except CommandRejected as exc:
            raise ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message) from None
        if reply.status == "already_registered":
            response.status_code = 200
        return reply

    @router.get("/v1/institutions")
    async def list_institutions() -> list[dict[str, Any]]:
        """The institution catalogue: code, name (English), Mongolian name, city, type."""
        return [_institution_json(i) for i in sorted(institutions.values(), key=lambda i: i.code)]

    @router.get("/v1/institutions/{code}")
    async def get_institution(code: str) -> dict[str, Any]:
        inst = institutions.get(code)
        if inst is None:
            raise ApiError(404, "unknown_institution", f"institution {code!r} is not in the catalogue")
        return _institution_json(inst)

    @router.get("/v1/educators/{educator_id}")
    async def get_educator(educator_id: str) -> dict[str, Any]:
        educator = await registrations.educator(educator_id)
        if educator is None:
            raise ApiError(404, "educator_not_found", f"no educator with id {educator_id!r}")
        return {
            "educator_id": educator.educator_id,
            "institution": educator.institution,
            "full_name": educator.full_name,
            "email": educator.email,
            "language": educator.language,
            "role": educator.role,
            "registered_at": educator.registered_at.isoformat(),
        }

    return router
