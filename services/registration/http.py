"""HTTP entry points of the registration service (contract sections 4, 8 and 9; see docs/registration.md).

Every route that returns or changes a person's data needs a bearer token (`iioe.runtime.auth`):
an institution's token reaches only that institution's educators, an operator token every one.
The institution catalogue stays public.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel

from iioe.commands import (
    ChangeRoleReply,
    ChangeRoleRequest,
    CommandRejected,
    RegisterEducatorReply,
    RegisterEducatorRequest,
)
from iioe.events import PortfolioEntryAdded, PracticeIntegrationReported, TrainingSessionHeld
from iioe.events.common import Role
from iioe.reference import Institution
from iioe.runtime.auth import authenticated, check_institution_access, require_scope
from iioe.runtime.exports import EXPORT_RESPONSES, XLSX_MEDIA_TYPE
from iioe.runtime.http import ApiError
from iioe.runtime.tokens import TokenGrant
from services.registration.completions import CompletionImports, CompletionReport, CompletionRow
from services.registration.domain import Educator, RegisterEducator
from services.registration.ports import EducatorQuery
from services.registration.spreadsheets import (
    COMPLETION_COLUMNS,
    COMPLETION_REQUIRED_COLUMNS,
    EXPORT_COLUMNS,
    ImportTooLarge,
    csv_rows,
    to_csv,
    to_xlsx,
)
from services.registration.usecases import (
    CascadeRecords,
    ChangeRole,
    ImportReport,
    RecordOutcome,
    Registrations,
)

T = TypeVar("T")
IMPORT_PATH = "/v1/educators/import"
COMPLETIONS_IMPORT_PATH = "/v1/completions/import"
IMPORT_MAX_BYTES = 4 * 1024 * 1024
IMPORT_MAX_ROWS = 20_000
EXPORT_MAX_ROWS = 100_000
MAX_PAGE_SIZE = 200
MAX_PAGE = 1_000_000
"""Far past any institution's educators; the offset stays a PostgreSQL bigint."""

STATUS_BY_CODE = {
    "internal_error": 500,
    "forbidden": 403,
    "educator_not_found": 404,
    "session_not_found": 404,
    "educator_erased": 409,
    "training_session_conflict": 409,
    "portfolio_entry_conflict": 409,
    "attendance_conflict": 409,
    "payload_too_large": 413,
}
"""HTTP status of an error code; every other code (bad input) is 422."""

Grant = Annotated[TokenGrant, Depends(authenticated)]
BEARER = [
    Security(
        HTTPBearer(
            auto_error=False,
            description="An institution's token (`iioe credentials partner <inst> --json`, `http_token`)"
            " or an operator token.",
        )
    )
]
"""Documents the bearer scheme in OpenAPI; `authenticated` does the checking."""


class RegisterEducatorHttpRequest(RegisterEducatorRequest):
    """The register_educator body plus the institution (on NATS it is part of the subject)."""

    institution: str


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


# Bodies are validated by the command and event models themselves (not by FastAPI) so that HTTP and
# NATS answer the same error codes; these only document them.
REGISTER_BODY_DOC = _body_doc(RegisterEducatorHttpRequest.model_json_schema())
ROLE_BODY_DOC = _body_doc(
    {"type": "object", "required": ["role"], "properties": {"role": {"enum": ["educator", "master_teacher"]}}}
)


def _record_doc(
    model: type[BaseModel], *, drop: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A record body: the event's `data` schema without the fields the path decides."""
    schema = model.model_json_schema()
    for name in drop:
        schema["properties"].pop(name, None)
    schema["required"] = [r for r in schema.get("required", []) if r not in drop and r not in optional]
    return _body_doc(schema)


SESSION_BODY_DOC = _record_doc(TrainingSessionHeld, optional=("session_id",))
ATTENDANCE_BODY_DOC = _body_doc(
    {"type": "object", "required": ["educator_id"], "properties": {"educator_id": {"type": "string"}}}
)
PORTFOLIO_BODY_DOC = _record_doc(PortfolioEntryAdded, drop=("educator_id", "institution"), optional=("entry_id",))
PRACTICE_BODY_DOC = _record_doc(PracticeIntegrationReported, drop=("educator_id", "institution"))
IMPORT_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string", "example": "full_name,email,language,role\n"}}},
    }
}


ALREADY_RECORDED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Already recorded: the same record again (`status` is `already_recorded`)",
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}
EXPORT_DOC = EXPORT_RESPONSES
COMPLETIONS_IMPORT_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "example": "educator_id,course_id,score,completed_at,language\n"
                    "edu-…,genai-fundamentals,92,2025-04-02T15:00:00+08:00,mn\n",
                }
            }
        },
    }
}


def _institution_json(inst: Institution) -> dict[str, Any]:
    """An entry of the catalogue with its provenance: a `source`, or `provisional: true` (no source = provisional)."""
    return {
        "code": inst.code,
        "name": inst.name_en,
        "name_mn": inst.name_mn,
        "city": inst.city,
        "type": inst.type,
        "source": inst.source,
        "provisional": inst.is_provisional,
        "source_note": inst.source_note,
    }


def educator_json(educator: Educator) -> dict[str, Any]:
    """An educator; after erasure `full_name` and `email` are null and `erased_at` is set."""
    return {
        "educator_id": educator.educator_id,
        "institution": educator.institution,
        "full_name": educator.full_name,
        "email": educator.email,
        "language": educator.language,
        "role": educator.role,
        "registered_at": educator.registered_at.isoformat(),
        "erased_at": educator.erased_at.isoformat() if educator.erased_at else None,
    }


def _scope(grant: TokenGrant) -> str | None:
    """The institution a token acts for; None for an operator (every institution)."""
    return None if grant.kind == "operator" else grant.institution


def _listed_institution(grant: TokenGrant, institution: str | None) -> str | None:
    """Which institution a list or export covers: an institution token only ever its own."""
    if grant.kind == "operator":
        return institution
    if institution is not None:
        check_institution_access(grant, institution)
    return grant.institution


async def _rejections_as_http(run: Awaitable[T]) -> T:
    try:
        return await run
    except CommandRejected as exc:
        raise ApiError(STATUS_BY_CODE.get(exc.code, 422), exc.code, exc.message) from None


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, read only after the token was checked (401 before 422)."""
    try:
        payload = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(422, "invalid_json", f"the request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, "invalid_request", "the request body must be a JSON object")
    return payload


def _csv_import_target(grant: TokenGrant, request: Request, institution: str | None) -> str:
    """The institution a CSV import is for (an operator names it), once the body is known to be CSV
    and not declared larger than the import limit."""
    target = _listed_institution(grant, institution)
    if target is None:
        raise ApiError(422, "missing_institution", "an operator names the institution: ?institution=<code>")
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ("text/csv", "application/csv"):
        raise ApiError(415, "unsupported_media_type", "send the CSV as 'Content-Type: text/csv'")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > IMPORT_MAX_BYTES:
        raise ApiError(413, "payload_too_large", f"CSV imports are limited to {IMPORT_MAX_BYTES} bytes")
    return target


async def _import_response(
    run: Awaitable[object], institution: str, dry_run: bool, report: ImportReport | CompletionReport
) -> JSONResponse:
    """The per-row report; a failure midway (past a limit, a bad header) still reports the rows before it."""
    status = 200
    extra: dict[str, Any] = {}
    try:
        await run
    except ImportTooLarge as exc:
        status, extra = 413, {"error": {"code": exc.code, "message": exc.message}}
    except CommandRejected as exc:
        status, extra = STATUS_BY_CODE.get(exc.code, 422), {"error": {"code": exc.code, "message": exc.message}}
    rows: list[Any] = list(report.rows)
    body = {
        "institution": institution,
        "dry_run": dry_run,
        "summary": report.summary(),
        "rows": [{k: v for k, v in vars(row).items() if v is not None} for row in rows],
        **extra,
    }
    return JSONResponse(body, status_code=status)


def _streamed_import(
    start: Callable[[], Awaitable[object]], institution: str, dry_run: bool, report: CompletionReport
) -> StreamingResponse:
    """Progress: one JSON line per row as it is handled, then one line with the summary (and the
    error that ended the import early, if any). The status is 200 once streaming has begun."""
    lines: asyncio.Queue[CompletionRow | None] = asyncio.Queue()
    report.on_row = lines.put_nowait
    ended: dict[str, Any] = {}

    async def run() -> None:
        try:
            await start()
        except CommandRejected as exc:
            ended["error"] = {"code": exc.code, "message": exc.message}
        finally:
            lines.put_nowait(None)

    async def body() -> AsyncIterator[bytes]:
        task = asyncio.create_task(run())
        try:
            while (row := await lines.get()) is not None:
                yield _ndjson({k: v for k, v in vars(row).items() if v is not None})
            await task  # re-raises an unexpected failure: the response ends without a summary line
            yield _ndjson({"institution": institution, "dry_run": dry_run, "summary": report.summary(), **ended})
        finally:
            task.cancel()  # the client went away: stop at the next row (each row is its own transaction)

    return StreamingResponse(body(), media_type="application/x-ndjson")


async def _read_upto(request: Request, limit: int) -> list[bytes]:
    """The body's chunks, stopping as soon as they exceed `limit` (the CSV reader then reports it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return chunks


async def _replayed(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def _ndjson(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode() + b"\n"


def build_router(
    registrations: Registrations,
    records: CascadeRecords,
    institutions: Mapping[str, Institution],
    completions: CompletionImports,
) -> APIRouter:
    router = APIRouter()

    async def visible_educator(grant: TokenGrant, educator_id: str) -> Educator:
        """404 unknown, 403 an educator of another institution than the token's."""
        educator = await registrations.educator(educator_id)
        if educator is None:
            raise ApiError(404, "educator_not_found", f"no educator with id {educator_id!r}")
        check_institution_access(grant, educator.institution)
        return educator

    def listed_institution(grant: TokenGrant, institution: str | None) -> str | None:
        """`_listed_institution`, and 404 for a code not in the catalogue (it has no educators)."""
        scope = _listed_institution(grant, institution)
        if scope is not None and scope not in institutions:
            raise ApiError(404, "unknown_institution", f"institution {scope!r} is not in the catalogue")
        return scope

    # --- educators ---------------------------------------------------------------------------

    @router.post(
        "/v1/educators",
        response_model=RegisterEducatorReply,
        status_code=201,
        responses={200: {"model": RegisterEducatorReply, "description": "Already registered: the same educator"}},
        openapi_extra=REGISTER_BODY_DOC,
        tags=["educators"],
        dependencies=BEARER,
    )
    async def register_educator(grant: Grant, request: Request, response: Response) -> RegisterEducatorReply:
        """Register an educator (same rules as the NATS command); 201 new, 200 already registered.

        Needs the token of `institution` or an operator token."""
        payload = await _json_object(request)
        institution = payload.get("institution")
        if not isinstance(institution, str) or not institution:
            raise ApiError(422, "missing_institution", "institution (an institution code) is required")
        check_institution_access(grant, institution)
        command = RegisterEducator(institution, await _rejections_as_http(_parse(payload)))
        reply = await _rejections_as_http(registrations.register(command))
        if reply.status == "already_registered":
            response.status_code = 200
        return reply

    @router.get("/v1/educators", tags=["educators"], dependencies=BEARER)
    async def list_educators(
        grant: Grant,
        institution: str | None = None,
        q: Annotated[str | None, Query(max_length=200)] = None,
        role: Role | None = None,
        page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
        page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
    ) -> dict[str, Any]:
        """Educators (not erased), oldest first; `q` searches name and e-mail. An institution token
        sees only its own institution; an operator every one, or `institution`'s."""
        query = EducatorQuery(
            listed_institution(grant, institution), q or None, role, (page - 1) * page_size, page_size
        )
        total, found = await registrations.educators(query)
        return {
            "items": [educator_json(e) for e in found],
            "page": page,
            "page_size": page_size,
            "total": total,
        }

    @router.get(
        "/v1/educators/export", tags=["educators"], dependencies=BEARER, response_class=Response, responses=EXPORT_DOC
    )
    async def export_educators(
        grant: Grant, institution: str | None = None, format: Literal["csv", "xlsx"] = "csv"
    ) -> Response:
        """Every educator (not erased) the token may see, as CSV (UTF-8 with BOM) or XLSX."""
        scope = listed_institution(grant, institution)
        _, found = await registrations.educators(EducatorQuery(scope, limit=EXPORT_MAX_ROWS))
        rows = [[educator_json(e)[c] for c in EXPORT_COLUMNS] for e in found]
        name = f"educators-{scope or 'all'}"
        if format == "xlsx":
            media = XLSX_MEDIA_TYPE
            content = to_xlsx(rows)
        else:
            media, content = "text/csv; charset=utf-8", to_csv(rows)
        headers = {"content-disposition": f'attachment; filename="{name}.{format}"'}
        return Response(content, media_type=media, headers=headers)

    @router.post(IMPORT_PATH, openapi_extra=IMPORT_BODY_DOC, tags=["educators"], dependencies=BEARER)
    async def import_educators(
        grant: Grant, request: Request, dry_run: bool = False, institution: str | None = None
    ) -> Response:
        """Register the rows of a CSV body (`text/csv`, UTF-8; at most 4 MiB and 20 000 rows), streamed
        row by row; the reply reports each row. Idempotent through (institution, e-mail)."""
        target = _csv_import_target(grant, request, institution)
        report = ImportReport()
        rows = csv_rows(request.stream(), max_bytes=IMPORT_MAX_BYTES, max_rows=IMPORT_MAX_ROWS)
        run = registrations.import_educators(target, rows, dry_run=dry_run, report=report)
        return await _import_response(run, target, dry_run, report)

    @router.post(
        COMPLETIONS_IMPORT_PATH, openapi_extra=COMPLETIONS_IMPORT_BODY_DOC, tags=["completions"], dependencies=BEARER
    )
    async def import_completions(
        grant: Grant, request: Request, dry_run: bool = False, institution: str | None = None
    ) -> Response:
        """Publish a CourseCompleted for each row of a CSV body (`text/csv`, UTF-8; columns `educator_id`,
        `course_id`, `score`, `completed_at`, `language`?; at most 4 MiB and 20 000 rows), streamed row by
        row; the reply reports each row. Idempotent through (institution, educator, course, completed_at,
        score): a row imported before is `already_published` and publishes nothing. With
        `Accept: application/x-ndjson` the rows stream back as they are handled (one JSON line each),
        then a summary line."""
        target = _csv_import_target(grant, request, institution)
        report = CompletionReport()
        streamed = "application/x-ndjson" in request.headers.get("accept", "")
        # A streamed reply reads the body first (at most the limit): once the response has started,
        # Starlette's disconnect listener would take the request's remaining body messages.
        chunks = _replayed(await _read_upto(request, IMPORT_MAX_BYTES)) if streamed else request.stream()
        rows = csv_rows(
            chunks,
            max_bytes=IMPORT_MAX_BYTES,
            max_rows=IMPORT_MAX_ROWS,
            columns=COMPLETION_COLUMNS,
            required=COMPLETION_REQUIRED_COLUMNS,
        )

        def run() -> Awaitable[CompletionReport]:
            return completions.import_completions(target, rows, dry_run=dry_run, actor=grant.actor, report=report)

        if streamed:
            return _streamed_import(run, target, dry_run, report)
        return await _import_response(run(), target, dry_run, report)

    @router.get("/v1/educators/{educator_id}", tags=["educators"], dependencies=BEARER)
    async def get_educator(grant: Grant, educator_id: str) -> dict[str, Any]:
        """One educator with name and e-mail: the token of its institution, or an operator's."""
        return educator_json(await visible_educator(grant, educator_id))

    @router.put(
        "/v1/educators/{educator_id}/role",
        response_model=ChangeRoleReply,
        openapi_extra=ROLE_BODY_DOC,
        tags=["educators"],
        dependencies=BEARER,
    )
    async def change_role(grant: Grant, educator_id: str, request: Request) -> ChangeRoleReply:
        """Same as the change_role command; the token's actor is recorded in the audit log."""
        educator = await visible_educator(grant, educator_id)
        body = {**await _json_object(request), "educator_id": educator_id}
        parsed = await _rejections_as_http(_parse_role(body))
        command = ChangeRole(educator.educator_id, parsed.role, institution=_scope(grant), actor=grant.actor)
        return await _rejections_as_http(registrations.change_role(command))

    @router.delete("/v1/educators/{educator_id}", tags=["educators"], dependencies=BEARER)
    async def erase_educator(
        educator_id: str, grant: Annotated[TokenGrant, Depends(require_scope("admin"))]
    ) -> dict[str, Any]:
        """Erase the educator's name and e-mail and emit EducatorErased (operator, scope `admin`).
        Idempotent: `already_erased` the second time."""
        educator, erased_now = await _rejections_as_http(registrations.erase(educator_id, actor=grant.actor))
        return {
            "educator_id": educator.educator_id,
            "institution": educator.institution,
            "status": "erased" if erased_now else "already_erased",
            "erased_at": educator.erased_at.isoformat() if educator.erased_at else None,
        }

    # --- cascade and portfolio records ---------------------------------------------------------

    def recorded(key: str, response: Response, outcome: RecordOutcome) -> dict[str, Any]:
        if outcome.status == "already_recorded":
            response.status_code = 200
        return {key: outcome.record_id, "institution": outcome.institution, "status": outcome.status}

    async def intake(run: Callable[[], Awaitable[RecordOutcome]]) -> RecordOutcome:
        return await _rejections_as_http(run())

    @router.post(
        "/v1/cascade/sessions",
        status_code=201,
        tags=["cascade"],
        dependencies=BEARER,
        openapi_extra=SESSION_BODY_DOC,
        responses=ALREADY_RECORDED,
    )
    async def hold_session(grant: Grant, request: Request, response: Response) -> dict[str, Any]:
        """TrainingSessionHeld (`session_id` optional: generated when absent)."""
        body = await _json_object(request)
        outcome = await intake(lambda: records.hold_session(body, scope=_scope(grant), actor=grant.actor))
        return recorded("session_id", response, outcome)

    @router.post(
        "/v1/cascade/sessions/{session_id}/attendance",
        status_code=201,
        tags=["cascade"],
        dependencies=BEARER,
        openapi_extra=ATTENDANCE_BODY_DOC,
        responses=ALREADY_RECORDED,
    )
    async def record_attendance(grant: Grant, session_id: str, request: Request, response: Response) -> dict[str, Any]:
        """TraineeAttended on the trainee's institution subject; once per (session, educator)."""
        body = await _json_object(request)
        outcome = await intake(lambda: records.attend(session_id, body, scope=_scope(grant), actor=grant.actor))
        result = recorded("session_id", response, outcome)
        result["session_id"], result["educator_id"] = outcome.record_id.rsplit("/", 1)
        return result

    @router.post(
        "/v1/educators/{educator_id}/portfolio",
        status_code=201,
        tags=["portfolio"],
        dependencies=BEARER,
        openapi_extra=PORTFOLIO_BODY_DOC,
        responses=ALREADY_RECORDED,
    )
    async def add_portfolio_entry(
        grant: Grant, educator_id: str, request: Request, response: Response
    ) -> dict[str, Any]:
        """PortfolioEntryAdded (`entry_id` optional: generated when absent)."""
        body = await _json_object(request)
        outcome = await intake(
            lambda: records.add_portfolio_entry(educator_id, body, scope=_scope(grant), actor=grant.actor)
        )
        return {**recorded("entry_id", response, outcome), "educator_id": educator_id}

    @router.post(
        "/v1/educators/{educator_id}/practice-reports",
        status_code=201,
        tags=["portfolio"],
        dependencies=BEARER,
        openapi_extra=PRACTICE_BODY_DOC,
        responses=ALREADY_RECORDED,
    )
    async def report_practice(grant: Grant, educator_id: str, request: Request, response: Response) -> dict[str, Any]:
        """PracticeIntegrationReported; every report is kept (the latest one counts)."""
        body = await _json_object(request)
        outcome = await intake(
            lambda: records.report_practice(educator_id, body, scope=_scope(grant), actor=grant.actor)
        )
        return {**recorded("report_id", response, outcome), "educator_id": educator_id}

    # --- institutions (public) ---------------------------------------------------------------

    @router.get("/v1/institutions", tags=["institutions"])
    async def list_institutions() -> list[dict[str, Any]]:
        """The institution catalogue: code, name (English), Mongolian name, city, type, and the entry's provenance
        (`source`, a URL or citation, or `provisional: true` with a `source_note`)."""
        return [_institution_json(i) for i in sorted(institutions.values(), key=lambda i: i.code)]

    @router.get("/v1/institutions/{code}", tags=["institutions"])
    async def get_institution(code: str) -> dict[str, Any]:
        inst = institutions.get(code)
        if inst is None:
            raise ApiError(404, "unknown_institution", f"institution {code!r} is not in the catalogue")
        return _institution_json(inst)

    return router


async def _parse(payload: Any) -> RegisterEducatorRequest:
    return RegisterEducatorRequest.parse(payload)


async def _parse_role(payload: Any) -> ChangeRoleRequest:
    return ChangeRoleRequest.parse(payload)
