"""The contract v1.1 analytics over the running service: events published on NATS, read over HTTP."""

from __future__ import annotations

import io
from typing import Any

import pytest
from pypdf import PdfReader

from services.analytics.main import create_app
from services.analytics.tests.demo import cascade_events
from services.analytics.tests.helpers import (
    publish_all,
    settings_for,
)
from tests.support.helpers import eventually, running_app

pytestmark = pytest.mark.integration


async def test_summary_cascade_and_the_v11_reports_over_http(infra, database_url, nc, ref) -> None:
    a, b = f"a{ref}", f"b{ref}"
    async with running_app(create_app(settings_for(infra, database_url, ref))) as http:
        await publish_all(nc, cascade_events(ref, a, b))

        async def summary_complete() -> dict[str, Any] | None:
            body: dict[str, Any] = (await http.get("/v1/analytics/summary")).json()
            mine = {i["institution"]: i for i in body["by_institution"] if i["institution"] in (a, b)}
            if mine.get(b, {}).get("course_ratings") == 2 and mine[b]["certificates_suspended"] == 1:
                return mine
            return None

        mine = await eventually(summary_complete, timeout=30, what="the v1.1 events counted")
        assert mine is not None
        assert (mine[a]["master_teachers"], mine[b]["master_teachers"]) == (1, 1)
        assert (mine[a]["training_sessions"], mine[b]["training_sessions"]) == (1, 1)
        assert (mine[b]["trainees_reached"], mine[b]["educators_integrating_ai"]) == (3, 1)
        assert (mine[b]["courses_rated_highly"], mine[b]["certificates_issued"]) == (1, 1)
        summary = (await http.get("/v1/analytics/summary")).json()
        for key in (
            "master_teachers",
            "training_sessions",
            "trainees_reached",
            "educators_integrating_ai",
            "course_ratings",
            "courses_rated_highly",
        ):
            assert isinstance(summary[key], int), key

        cascade = (await http.get("/v1/analytics/cascade")).json()
        assert set(cascade) == {"master_teachers", "totals"}
        assert set(cascade["totals"]) == {"sessions", "trainees", "trainees_certified"}
        rows = {r["educator_id"]: r for r in cascade["master_teachers"]}
        assert rows[f"{ref}-m"] == {
            "educator_id": f"{ref}-m",
            "institution": a,
            "sessions": 1,
            "trainees": 2,
            "trainees_completed": 1,
            "trainees_certified": 1,  # t2's certificate is suspended
            "second_generation_reach": 1,
        }
        one = await http.get(f"/v1/analytics/cascade/{ref}-m")
        assert one.status_code == 200
        assert one.json()["by_region"] == [{"region": "Khovd", "sessions": 1, "trainees": 2}]
        assert one.json()["by_mode"] == [{"mode": "hybrid", "sessions": 1, "trainees": 2}]
        unknown = await http.get(f"/v1/analytics/cascade/{ref}-u1")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_master_teacher"

        recognition = (await http.get("/v1/analytics/recognition")).json()
        receiving = {r["institution"]: r for r in recognition["by_receiving_institution"]}
        assert receiving[a]["accepted"] == 1 and receiving[a]["credits"] == 6.0
        practice_body = (await http.get("/v1/analytics/practice")).json()
        by_inst = {r["institution"]: r for r in practice_body["by_institution"]}
        assert by_inst[b]["completed_and_integrating"] == 1 and by_inst[b]["share_of_completed"] == 1.0
        feedback = (await http.get("/v1/analytics/feedback")).json()
        assert any(c["language"] == "ru" and c["ratings"] >= 2 for c in feedback["by_course"])
        text = str(summary) + str(cascade) + str(recognition) + str(practice_body) + str(feedback)
        assert "@" not in text


async def test_dated_report_over_http_as_json_csv_and_pdf(infra, database_url, nc, ref) -> None:
    a, b = f"a{ref}", f"b{ref}"
    async with running_app(create_app(settings_for(infra, database_url, ref))) as http:
        await publish_all(nc, cascade_events(ref, a, b))

        async def counted() -> bool:
            body = (await http.get("/v1/analytics/summary")).json()
            return bool(body["course_ratings"] == 2 and body["certificates_suspended"] == 1)

        await eventually(counted, timeout=30, what="the events counted")
        before = (await http.get("/v1/analytics/report", params={"as_of": "2025-03-09"})).json()
        assert before["totals"]["registered"] == 0 and before["cascade"] == {"sessions": 0, "trainees": 0}
        resp = await http.get("/v1/analytics/report", params={"as_of": "2025-06-30"})
        assert resp.status_code == 200
        report = resp.json()
        assert report["cutoff"] == "2025-07-01T00:00:00+08:00"
        totals = report["totals"]
        assert (totals["registered"], totals["master_teachers"], totals["completed_programme"]) == (4, 2, 1)
        assert (totals["certified"], totals["trainees_reached"], report["cascade"]["sessions"]) == (1, 3, 2)
        assert {g["key"] for g in report["by_institution"]} == {a, b}

        csv_resp = await http.get("/v1/analytics/report", params={"as_of": "2025-06-30", "format": "csv"})
        assert csv_resp.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv_resp.headers["content-disposition"]
        lines = csv_resp.text.splitlines()
        assert lines[0].startswith("as_of,breakdown,key,name,registered,")
        assert lines[1].startswith("2025-06-30,total,all,,4,1,1,2,")

        pdf_resp = await http.get("/v1/analytics/report", params={"as_of": "2025-06-30", "format": "pdf", "lang": "mn"})
        assert pdf_resp.headers["content-type"] == "application/pdf"
        text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf_resp.content)).pages)
        assert "2025-06-30-ны байдлаарх тайлан" in " ".join(text.split()) and a in text

        for params, code in (
            ({"as_of": "2025-02-30"}, "invalid_date"),
            ({"as_of": "30.06.2025"}, "invalid_date"),
            ({"as_of": "2025-06-30", "format": "xlsx"}, "invalid_format"),
            ({"as_of": "2025-06-30", "lang": "de"}, "invalid_language"),
        ):
            bad = await http.get("/v1/analytics/report", params=params)
            assert bad.status_code == 422 and bad.json()["error"]["code"] == code, params
