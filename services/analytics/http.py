"""HTTP API of the analytics service: reports, the SSE stream and the dashboard page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from sse_starlette import EventSourceResponse

from iioe.runtime.http import ApiError
from services.analytics.models import (
    Cascade,
    CascadeDetail,
    DatedReport,
    Feedback,
    InstitutionDetail,
    Practice,
    Rankings,
    Recognition,
    Summary,
    Timeseries,
)
from services.analytics.report_formats import to_csv, to_pdf
from services.analytics.reports import Reports
from services.analytics.snapshots import SummaryFeed

STATIC_DIR = Path(__file__).with_name("static")
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
DAY_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
REPORT_FORMATS = ("json", "csv", "pdf")
REPORT_LANGUAGES = ("en", "mn", "ru")


def build_router(reports: Reports, feed: SummaryFeed) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/analytics/summary", response_model=Summary, tags=["analytics"])
    async def summary() -> Summary:
        """Contract section 7: totals, funnel and per-institution counts (no personal data)."""
        return await reports.summary()

    @router.get("/v1/analytics/institutions/{code}", response_model=InstitutionDetail, tags=["analytics"])
    async def institution(code: str) -> InstitutionDetail:
        """One institution: counts, funnel, courses and months; 404 when the code is unknown."""
        detail = await reports.institution(code)
        if detail is None:
            raise ApiError(404, "unknown_institution", f"institution {code!r} is not in the catalogue or any event")
        return detail

    @router.get("/v1/analytics/rankings", response_model=Rankings, tags=["analytics"])
    async def rankings(
        month: str | None = Query(default=None, description="YYYY-MM; default the current month"),
    ) -> Rankings:
        """Institutions ranked by new registrations in a month (the national centre's monthly ranking)."""
        if month is None:
            month = datetime.now(ZoneInfo(reports.rules.month_timezone)).strftime("%Y-%m")
        if not MONTH_RE.fullmatch(month):
            raise ApiError(422, "invalid_month", f"month {month!r} must be YYYY-MM, e.g. 2025-03")
        return await reports.rankings(month)

    @router.get("/v1/analytics/timeseries", response_model=Timeseries, tags=["analytics"])
    async def timeseries(
        institution: str | None = None,
        from_month: str | None = Query(default=None, alias="from", description="YYYY-MM, first month shown"),
        to_month: str | None = Query(default=None, alias="to", description="YYYY-MM, last month shown"),
    ) -> Timeseries:
        """Per month, sorted, from the first to the latest month with data (or the chosen range, gaps
        filled with zeros): registrations, course/programme completions, certificates issued/revoked."""
        for value in (from_month, to_month):
            if value is not None and not (MONTH_RE.fullmatch(value) and "2000" <= value[:4] <= "2100"):
                raise ApiError(422, "invalid_month", f"month {value!r} must be YYYY-MM in 2000–2100, e.g. 2025-03")
        return await reports.timeseries(institution, from_month, to_month)

    @router.get("/v1/analytics/cascade", response_model=Cascade, tags=["analytics"])
    async def cascade() -> Cascade:
        """Contract section 10: every master teacher's sessions, trainees and second-generation reach."""
        return await reports.cascade()

    @router.get("/v1/analytics/cascade/{educator_id}", response_model=CascadeDetail, tags=["analytics"])
    async def cascade_of(educator_id: str) -> CascadeDetail:
        """One master teacher, by region and by mode; 404 when the id is no master teacher."""
        detail = await reports.cascade_of(educator_id)
        if detail is None:
            raise ApiError(404, "unknown_master_teacher", f"{educator_id!r} is not a master teacher in the cascade")
        return detail

    @router.get("/v1/analytics/recognition", response_model=Recognition, tags=["analytics"])
    async def recognition() -> Recognition:
        """Credit transfers: requests, acceptance rate, credits per receiving institution."""
        return await reports.recognition()

    @router.get("/v1/analytics/practice", response_model=Practice, tags=["analytics"])
    async def practice() -> Practice:
        """Educators integrating AI as a share of those who completed the programme."""
        return await reports.practice()

    @router.get("/v1/analytics/feedback", response_model=Feedback, tags=["analytics"])
    async def feedback() -> Feedback:
        """Course evaluations per course and language: share rated highly (both ratings ≥ 4)."""
        return await reports.feedback()

    @router.get(
        "/v1/analytics/report",
        response_model=DatedReport,
        tags=["analytics"],
        responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}},
    )
    async def report(
        as_of: str | None = Query(default=None, description="YYYY-MM-DD; default today (reporting time zone)"),
        format: str = Query(default="json", description="json | csv | pdf"),
        lang: str = Query(default="en", description="en | mn | ru: names and PDF labels"),
    ) -> Any:
        """The state at the end of `as_of` (reporting time zone): registered, completed, certified, master
        teachers, credits, cascade reach, practice integration, with breakdowns. Aggregates only."""
        tz = ZoneInfo(reports.rules.month_timezone)
        day = datetime.now(tz).date() if as_of is None else _parse_day(as_of)
        if format not in REPORT_FORMATS:
            raise ApiError(422, "invalid_format", f"format {format!r} must be one of {', '.join(REPORT_FORMATS)}")
        if lang not in REPORT_LANGUAGES:
            raise ApiError(422, "invalid_language", f"lang {lang!r} must be one of {', '.join(REPORT_LANGUAGES)}")
        body = await reports.dated_report(day, lang)
        filename = f"iioe-report-{day.isoformat()}.{format}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
        if format == "csv":
            return Response(to_csv(body), media_type="text/csv; charset=utf-8", headers=disposition)
        if format == "pdf":
            return Response(to_pdf(body, lang), media_type="application/pdf", headers=disposition)
        return body

    @router.get("/v1/analytics/stream", tags=["analytics"])
    async def stream() -> EventSourceResponse:
        """Server-sent events: `summary` with the current state at once, then every new snapshot."""

        async def events() -> AsyncIterator[dict[str, Any]]:
            queue = feed.subscribe()  # before reading, so no snapshot falls in between
            try:
                current = await reports.summary()
                yield {"event": "summary", "data": current.model_dump_json()}
                while True:
                    yield {"event": "summary", "data": await queue.get()}
            finally:
                feed.unsubscribe(queue)

        return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-store"})

    return router


def _parse_day(text: str) -> date:
    try:
        if not DAY_RE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_date", f"as_of {text!r} must be a date YYYY-MM-DD, e.g. 2025-06-30") from None


def mount_dashboard(app: FastAPI) -> None:
    """The live dashboard: `/` is the page, `/static/*` its script and styles."""

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
