"""Institution staff list and export certificates and progress over HTTP, without servers: the listing routes on
the in-memory unit of work, with tokens of the own institution, another institution and an operator."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook

from iioe.events import CourseCompleted, EducatorRegistered
from iioe.runtime.http import install_error_handlers
from iioe.runtime.tokens import TokenGrant, TokenRegistry
from services.certification import listing
from services.certification.catalogue_http import build_catalogue_router
from services.certification.domain import certificate_id_for
from services.certification.listing import CertificateListing, ListingReader
from services.certification.listing_http import build_listing_router
from services.certification.ports import UnitOfWork
from services.certification.reference import builtin_catalogue
from services.certification.tests.fake_listing import FakeListingReader
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import Certification, MessageOrigin, RevokeCertificate, SuspendCertificate

AI = "ai-in-higher-education"
LIGHTBOARD = "lightboard-teaching"
CATALOGUE = builtin_catalogue()
T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)
OPERATOR, MUST, NUM = "op-token", "must-token", "num-token"
TOKENS = {
    OPERATOR: TokenGrant(kind="operator", actor="operator", scopes=frozenset({"admin"})),
    MUST: TokenGrant(kind="institution", actor="partner-must", institution="must"),
    NUM: TokenGrant(kind="institution", actor="partner-num", institution="num"),
}
_ids = itertools.count()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class World:
    """Certification on the fake unit of work; certificates are issued one day apart from T0."""

    def __init__(self, uow: UnitOfWork | None = None, reader: ListingReader | None = None) -> None:
        """The fake unit of work and its reader by default; PostgreSQL's in the integration test."""
        fake = FakeUnitOfWork()
        self.uow = fake
        self.now = T0
        self.service = Certification(
            uow or fake, CATALOGUE, {"must": {}, "num": {}}, clock=lambda: self.now, public_url="https://cert.test"
        )
        reader = reader or FakeListingReader(fake)
        self.listing = CertificateListing(reader, CATALOGUE, self.service.verification_url)

    async def register(self, educator: str, institution: str) -> None:
        data = EducatorRegistered(
            educator_id=educator, institution=institution, language="en", role="educator", registered_at=T0
        )
        await self.service.on_educator_registered(f"reg-{educator}", data)

    async def complete(self, educator: str, institution: str, course: str, score: float) -> None:
        data = CourseCompleted(
            educator_id=educator, institution=institution, course_id=course, score=score, completed_at=T0
        )
        origin = MessageOrigin(f"iioe.events.{institution}.course_completed.v1", b"{}", "progress", "IIOE_EVENTS", 1)
        await self.service.on_course_completed(f"done-{next(_ids)}", data, origin)

    async def certify(self, educator: str, institution: str, programme: str = AI) -> str:
        for course in CATALOGUE.programme(programme).course_ids:
            await self.complete(educator, institution, course, 90)
        self.now += timedelta(days=1)
        return certificate_id_for(educator, programme)


@pytest.fixture
async def world() -> World:
    return await populate(World())


async def populate(world: World) -> World:
    """must: m-00…m-05 certified (AI), m-00 also Lightboard; m-01 suspended, m-02 revoked; m-06 half-way,
    m-07 registered only. num: n-0 and n-1 certified. One certificate a day from 2025-04-01."""
    for n in range(8):
        await world.register(f"m-{n:02d}", "must")
    for n in range(2):
        await world.register(f"n-{n}", "num")
    for n in range(6):
        await world.certify(f"m-{n:02d}", "must")
    await world.certify("m-00", "must", LIGHTBOARD)
    for n in range(2):
        await world.certify(f"n-{n}", "num")
    await world.complete("m-06", "must", "genai-fundamentals", 95)
    await world.complete("m-06", "must", "teaching-with-ai", 55)
    await world.service.suspend(SuspendCertificate(certificate_id_for("m-01", AI), "check"))
    await world.service.revoke(RevokeCertificate(certificate_id_for("m-02", AI), "fraud"))
    return world


@pytest.fixture
async def http(world: World) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.state.runtime = SimpleNamespace(tokens=TokenRegistry(TOKENS))
    app.include_router(build_listing_router(world.listing))
    app.include_router(build_catalogue_router(CATALOGUE))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cert.test") as client:
        yield client


async def get_json(http: httpx.AsyncClient, path: str, token: str, **params: Any) -> dict[str, Any]:
    response = await http.get(path, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def csv_rows(content: bytes) -> list[dict[str, str]]:
    assert content.startswith("\ufeff".encode())  # the BOM: spreadsheet programs read UTF-8
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def xlsx_rows(content: bytes) -> list[dict[str, Any]]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    return [dict(zip(header, row, strict=True)) for row in rows]


# --- who sees what -----------------------------------------------------------------------------------------


async def test_an_institution_token_lists_only_its_own_institutions_certificates(http: httpx.AsyncClient) -> None:
    body = await get_json(http, "/v1/certificates", MUST)
    assert body["total"] == 7 and {c["institution"] for c in body["items"]} == {"must"}
    assert "credential" not in body["items"][0]  # the list stays light; `/v1/certificates/{id}` has it
    assert (await get_json(http, "/v1/certificates", NUM))["total"] == 2
    assert (await get_json(http, "/v1/certificates", MUST, institution="must"))["total"] == 7


async def test_an_institution_token_asking_for_another_institution_is_refused(http: httpx.AsyncClient) -> None:
    for path in ("/v1/certificates", "/v1/certificates/export", "/v1/educators/progress/export"):
        response = await http.get(path, params={"institution": "num"}, headers=bearer(MUST))
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"
        assert (await http.get(path)).status_code == 401
        assert (await http.get(path, headers=bearer("nobody"))).status_code == 403


async def test_an_operator_sees_every_institution_or_the_one_asked_for(http: httpx.AsyncClient) -> None:
    assert (await get_json(http, "/v1/certificates", OPERATOR))["total"] == 9
    num = await get_json(http, "/v1/certificates", OPERATOR, institution="num")
    assert [c["educator_id"] for c in num["items"]] == ["n-0", "n-1"]


# --- filters and paging ------------------------------------------------------------------------------------


async def test_filters_by_status_programme_and_issue_days(http: httpx.AsyncClient) -> None:
    async def ids(**params: Any) -> list[str]:
        body = await get_json(http, "/v1/certificates", MUST, **params)
        return [c["educator_id"] + "/" + c["programme_id"] for c in body["items"]]

    assert await ids(status="suspended") == [f"m-01/{AI}"]
    assert await ids(status="revoked") == [f"m-02/{AI}"]
    assert len(await ids(status="active")) == 5
    assert await ids(programme_id=LIGHTBOARD) == [f"m-00/{LIGHTBOARD}"]
    # one certificate a day from 2025-04-01 (UTC): m-00 … m-05, then m-00's Lightboard on 04-07
    assert await ids(issued_from="2025-04-03", issued_to="2025-04-04") == [f"m-02/{AI}", f"m-03/{AI}"]
    assert await ids(issued_from="2025-04-07") == [f"m-00/{LIGHTBOARD}"]
    assert await ids(issued_to="2025-04-01") == [f"m-00/{AI}"]


async def test_pages_follow_issue_order_and_report_the_total(http: httpx.AsyncClient) -> None:
    pages = [await get_json(http, "/v1/certificates", MUST, page=n, page_size=3) for n in (1, 2, 3, 4)]
    assert [p["total"] for p in pages] == [7, 7, 7, 7]
    assert [len(p["items"]) for p in pages] == [3, 3, 1, 0]
    issued = [c["issued_at"] for p in pages for c in p["items"]]
    assert issued == sorted(issued) and len(set(issued)) == 7
    first = pages[0]["items"][0]
    assert first["verification_url"] == f"https://cert.test/verify/{first['certificate_id']}"
    assert first["programme_names"]["mn"] and first["credit_system"] == "ECTS"


async def test_bad_filters_are_422(http: httpx.AsyncClient) -> None:
    cases = [
        ({"programme_id": "no-such-programme"}, "unknown_programme"),
        ({"issued_from": "2025-05-01", "issued_to": "2025-04-01"}, "invalid_period"),
    ]
    for params, code in cases:
        response = await http.get("/v1/certificates", params=params, headers=bearer(MUST))
        assert (response.status_code, response.json()["error"]["code"]) == (422, code)
    invalid: list[dict[str, str | int]] = [{"status": "lost"}, {"page_size": 201}, {"page": 0}, {"issued_from": "4/1"}]
    for bad in invalid:
        assert (await http.get("/v1/certificates", params=bad, headers=bearer(MUST))).status_code == 422


# --- exports ------------------------------------------------------------------------------------------------


async def test_certificate_export_csv_holds_every_filtered_certificate(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/certificates/export", headers=bearer(MUST))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="certificates-must.csv"' in response.headers["content-disposition"]
    rows = csv_rows(response.content)
    assert len(rows) == 7 and {r["institution"] for r in rows} == {"must"}
    assert list(rows[0]) == list(listing.CERTIFICATE_COLUMNS)
    revoked = next(r for r in rows if r["status"] == "revoked")
    assert revoked["educator_id"] == "m-02" and revoked["status_changed_at"]
    assert revoked["programme_name"] == "AI in Higher Education"

    active = await http.get("/v1/certificates/export", params={"status": "active"}, headers=bearer(MUST))
    assert len(csv_rows(active.content)) == 5


async def test_certificate_export_xlsx_reads_back_with_openpyxl(http: httpx.AsyncClient) -> None:
    params = {"format": "xlsx", "institution": "num"}
    response = await http.get("/v1/certificates/export", params=params, headers=bearer(OPERATOR))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = xlsx_rows(response.content)
    assert [r["educator_id"] for r in rows] == ["n-0", "n-1"]
    assert rows[0]["credits"] == CATALOGUE.programme(AI).credits and rows[0]["status"] == "active"


async def test_progress_export_has_a_row_per_educator_and_programme(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/educators/progress/export", headers=bearer(MUST))
    assert response.status_code == 200
    rows = csv_rows(response.content)
    assert len(rows) == 8 * len(CATALOGUE.programmes) and {r["institution"] for r in rows} == {"must"}
    ai = {r["educator_id"]: r for r in rows if r["programme_id"] == AI}
    assert (ai["m-00"]["status"], ai["m-00"]["certificate_id"]) == ("certified", certificate_id_for("m-00", AI))
    assert (ai["m-01"]["status"], ai["m-02"]["status"]) == ("suspended", "revoked")
    halfway = ai["m-06"]
    assert (halfway["status"], halfway["courses_passed"], halfway["courses_total"]) == ("in_progress", "1", "3")
    assert halfway["best_scores"] == "genai-fundamentals:95;teaching-with-ai:55"
    assert (halfway["below_threshold"], halfway["not_attempted"]) == ("teaching-with-ai", "future-classroom")
    assert ai["m-07"]["status"] == "not_started"

    only_ai = await http.get(
        "/v1/educators/progress/export", params={"programme_id": AI, "format": "xlsx"}, headers=bearer(NUM)
    )
    rows_xlsx = xlsx_rows(only_ai.content)
    assert [(r["educator_id"], r["status"]) for r in rows_xlsx] == [("n-0", "certified"), ("n-1", "certified")]
    assert rows_xlsx[0]["courses_passed"] == 3


async def test_exports_stream_in_batches_past_one_query(
    world: World, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "EXPORT_BATCH", 2)  # 7 certificates, 8 educators: several keyset batches
    certificates = csv_rows((await http.get("/v1/certificates/export", headers=bearer(MUST))).content)
    assert len({r["certificate_id"] for r in certificates}) == 7
    progress = csv_rows((await http.get("/v1/educators/progress/export", headers=bearer(MUST))).content)
    assert len({r["educator_id"] for r in progress}) == 8


async def test_cells_that_a_spreadsheet_would_run_are_prefixed(world: World, http: httpx.AsyncClient) -> None:
    """Educator ids come from partners; one that looks like a formula must stay text in both formats."""
    evil = "=HYPERLINK(1)"
    await world.register(evil, "must")
    await world.certify(evil, "must")
    rows = csv_rows((await http.get("/v1/certificates/export", headers=bearer(MUST))).content)
    assert "'=HYPERLINK(1)" in {r["educator_id"] for r in rows}
    params = {"format": "xlsx"}
    xlsx = xlsx_rows((await http.get("/v1/educators/progress/export", params=params, headers=bearer(MUST))).content)
    assert "'=HYPERLINK(1)" in {r["educator_id"] for r in xlsx}


async def test_unknown_programme_in_a_progress_export_is_422(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/educators/progress/export", params={"programme_id": "x"}, headers=bearer(MUST))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "unknown_programme")


# --- the programme catalogue with provenance (public) -----------------------------------------------------


async def test_programmes_are_public_with_the_provenance_of_credits_and_level(http: httpx.AsyncClient) -> None:
    body = (await http.get("/v1/programmes")).json()
    ids = [p["programme_id"] for p in body["programmes"]]
    assert ids[0] == AI and "ai-competency" in ids and body["credit_system"] == "ECTS"
    ai = (await http.get(f"/v1/programmes/{AI}")).json()
    assert ai["source"] and ai["provisional"] is False
    assert ai["credits_provenance"]["provisional"] is True and ai["credits_provenance"]["note"]
    assert ai["framework_level_provenance"]["provisional"] is True
    competency = (await http.get("/v1/programmes/ai-competency")).json()
    assert competency["provisional"] is True and competency["source"] is None and competency["source_note"]
    assert [c["titles"]["en"] for c in competency["courses"]][2] == "Build Your Own AI Chatbot"
    missing = await http.get("/v1/programmes/nope")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "programme_not_found")


async def test_the_last_possible_day_is_a_valid_bound(http: httpx.AsyncClient) -> None:
    body = await get_json(http, "/v1/certificates", MUST, issued_to="9999-12-31")
    assert body["total"] == 7
