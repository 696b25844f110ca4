"""HTTP conventions shared by the services: error shape, operator auth, health, serving."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from iioe.runtime.logging import configure_logging
from iioe.runtime.settings import ServiceSettings


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    """A stable machine-readable code, e.g. `educator_not_found`, `payload_too_large`."""
    message: str
    """For people; may change between releases."""


class ErrorResponse(BaseModel):
    """The body of every error answer (a 422 of a bad request adds `fields`)."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "default": {"model": ErrorResponse, "description": 'An error: `{"error": {"code", "message"}}`'}
}
"""Documented on every operation (`build_service`), so a client knows the shape of any error status."""


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, **exc.extra), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return JSONResponse(
            error_body("invalid_request", f"{first['field']}: {first['message']}", fields=errors),
            status_code=422,
        )

    @app.exception_handler(asyncpg.CharacterNotInRepertoireError)
    @app.exception_handler(asyncpg.UntranslatableCharacterError)
    async def _unstorable_text(_: Request, exc: asyncpg.PostgresError) -> JSONResponse:
        """PostgreSQL text cannot hold NUL (U+0000): a request carrying one is invalid, not a server error."""
        return JSONResponse(
            error_body("invalid_character", "text values must not contain NUL (U+0000) characters"), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def operator_auth(settings: ServiceSettings, scope: str = "admin") -> Callable[..., Any]:
    """A dependency requiring an operator token with `scope` (401 missing, 403 wrong or narrower)."""
    from iioe.runtime.auth import require_scope

    return require_scope(scope)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run one service process (the entry point of `python -m services.<name>`)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    uvicorn.run(app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False)
