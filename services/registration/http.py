"""HTTP API of the registration service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Response

from iioe.reference import Institution
from iioe.runtime.http import ApiError
from services.registration import store
from services.registration.domain import RegisterEducatorReply, RegisterEducatorRequest, RegistrationError
from services.registration.usecases import Registrations

STATUS_BY_CODE = {"unknown_institution": 422, "internal_error": 500}


class RegisterEducatorHttpRequest(RegisterEducatorRequest):
    institution: str


def build_router(registrations: Registrations, institutions: dict[str, Institution]) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/educators", response_model=RegisterEducatorReply, status_code=201)
    async def register_educator(
        response: Response,
        payload: dict[str, Any] = Body(..., openapi_examples=None),
    ) -> RegisterEducatorReply:
        """Register an educator (same rules as the NATS command); 201 new, 200 already registered."""
        institution = payload.get("institution")
        if not isinstance(institution, str) or not institution:
            raise ApiError(422, "missing_institution", "institution (an institution code) is required")
        try:
            reply = await registrations.register(institution, payload)
        except RegistrationError as exc:
            raise ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message) from None
        if reply.status == "already_registered":
            response.status_code = 200
        return reply

    @router.get("/v1/institutions")
    async def list_institutions() -> list[dict[str, Any]]:
        """The institution catalogue: code, name (English), Mongolian name, city, type."""
        return [
            {"code": i.code, "name": i.name_en, "name_mn": i.name_mn, "city": i.city, "type": i.type}
            for i in sorted(institutions.values(), key=lambda i: i.code)
        ]

    @router.get("/v1/institutions/{code}")
    async def get_institution(code: str) -> dict[str, Any]:
        inst = institutions.get(code)
        if inst is None:
            raise ApiError(404, "unknown_institution", f"institution {code!r} is not in the catalogue")
        return {
            "code": inst.code,
            "name": inst.name_en,
            "name_mn": inst.name_mn,
            "city": inst.city,
            "type": inst.type,
        }

    @router.get("/v1/educators/{educator_id}")
    async def get_educator(educator_id: str) -> dict[str, Any]:
        educator = await store.get_educator(registrations.pool, educator_id)
        if educator is None:
            raise ApiError(404, "educator_not_found", f"no educator with id {educator_id!r}")
        educator["registered_at"] = educator["registered_at"].isoformat()
        return educator

    return router
