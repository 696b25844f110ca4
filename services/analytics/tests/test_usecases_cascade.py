"""Contract v1.1 projections on the in-memory unit of work: roles, suspensions, the cascade, practice
reports, course evaluations and credit transfers (section 10). No NATS, no PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import pytest
from pypdf import PdfReader

from iioe.envelope import CloudEvent
from iioe.events import EducatorErased
from iioe.reference import load_institutions
from services.analytics import report_formats
from services.analytics.domain import ProjectionEvent, ProjectionRules
from services.analytics.main import programme_tiers
from services.analytics.reports import Reports
from services.analytics.settings import AI_PROGRAMME_ID, AnalyticsSettings
from services.analytics.tests.fakes import FakeUnitOfWork
from services.analytics.tests.helpers import (
    AI_COURSES,
    attended,
    completed,
    evaluated,
    issued,
    practice,
    registered,
    reinstated,
    revoked,
    role_changed,
    session_held,
    suspended,
    transfer_decided,
    transfer_requested,
    ts,
)
from services.analytics.usecases import Projector

RULES = ProjectionRules(AI_PROGRAMME_ID, AI_COURSES, "Asia/Ulaanbaatar")


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(RULES)


@pytest.fixture
def reports(uow: FakeUnitOfWork) -> Reports:
    return Reports(uow, {}, RULES)


async def project(uow: FakeUnitOfWork, *events: CloudEvent[Any]) -> None:
    await Projector(uow).project_batch([ProjectionEvent(e.id, e.data, e.time) for e in events])


def completed_all(educator_id: str, institution: str) -> list[CloudEvent[Any]]:
    return [completed(educator_id, institution, c, score=50) for c in AI_COURSES]


async def test_master_teachers_follow_the_latest_role_change_not_older_than_the_registration(
    uow: FakeUnitOfWork, reports: Reports
) -> None:
    await project(
        uow,
        registered("a", "must", at="2025-03-01T10:00:00+08:00", role="master_teacher"),
        registered("b", "must", at="2025-03-01T10:00:00+08:00"),
        registered("c", "num", at="2025-03-01T10:00:00+08:00"),
        role_changed("b", "must", "master_teacher", at="2025-04-01T10:00:00+08:00"),
        role_changed("a", "must", "educator", at="2025-05-01T10:00:00+08:00"),
        role_changed("c", "num", "master_teacher", at="2025-02-01T10:00:00+08:00"),  # before registering
    )
    summary = await reports.summary()
    assert summary.master_teachers == 1
    assert {i.institution: i.master_teachers for i in summary.by_institution} == {"must": 1, "num": 0}
    # a later change arriving late still wins; an earlier one arriving late does not
    await project(uow, role_changed("a", "must", "master_teacher", at="2025-06-01T10:00:00+08:00"))
    await project(uow, role_changed("b", "must", "educator", at="2025-03-15T10:00:00+08:00"))
    assert (await reports.summary()).master_teachers == 2


async def test_a_suspended_certificate_is_not_active_until_reinstated(uow: FakeUnitOfWork, reports: Reports) -> None:
    await project(
        uow,
        registered("e1", "must"),
        registered("e2", "must"),
        issued("c1", "e1", "must"),
        issued("c2", "e2", "must"),
        suspended("c1", "e1", "must", at="2025-06-01T10:00:00+08:00"),
        revoked("c2", "e2", "must"),
    )
    summary = await reports.summary()
    assert (summary.certificates_issued, summary.certificates_suspended, summary.certificates_revoked) == (0, 1, 1)
    assert summary.funnel.certified == 0 and summary.by_programme[0].certificates_issued == 0
    await project(uow, reinstated("c1", "e1", "must", at="2025-06-10T10:00:00+08:00"))
    summary = await reports.summary()
    assert (summary.certificates_issued, summary.certificates_suspended, summary.funnel.certified) == (1, 0, 1)
    # a suspension older than the reinstatement, arriving late, changes nothing
    await project(uow, suspended("c1", "e1", "must", at="2025-06-05T10:00:00+08:00"))
    assert (await reports.summary()).certificates_issued == 1


async def cascade_world(uow: FakeUnitOfWork) -> None:
    """m trains t1, t2, t3 (t3 twice); t1 becomes a master teacher and trains u1, u2 and m;
    t2 trains u3 in a session but is no master teacher; a session of m in another region."""
    await project(
        uow,
        registered("m", "must", role="master_teacher"),
        *[registered(t, "num") for t in ("t1", "t2", "t3", "u1", "u2", "u3")],
        role_changed("t1", "num", "master_teacher"),
        session_held("s1", "m", "must", region="Ulaanbaatar", mode="online"),
        session_held("s2", "m", "must", region="Darkhan", mode="face_to_face"),
        attended("s1", "t1", "num"),
        attended("s1", "t2", "num"),
        attended("s1", "t3", "num"),
        attended("s2", "t3", "num"),
        attended("s2", "m", "must"),  # a master teacher at their own session is no trainee
        session_held("s3", "t1", "num", region="Erdenet"),
        attended("s3", "u1", "num"),
        attended("s3", "u2", "num"),
        attended("s3", "m", "must"),
        session_held("s4", "t2", "num"),
        attended("s4", "u3", "num"),
        attended("s9", "u9", "num"),  # its session is not known yet
        *completed_all("t1", "num"),
        *completed_all("t2", "num"),
        issued("ct1", "t1", "num"),
    )


async def test_cascade_counts_trainees_their_progress_and_the_second_generation(
    uow: FakeUnitOfWork, reports: Reports
) -> None:
    await cascade_world(uow)
    cascade = await reports.cascade()
    rows = {r.educator_id: r for r in cascade.master_teachers}
    assert set(rows) == {"m", "t1", "t2"}  # t2 holds a session, so appears though not a master teacher
    m = rows["m"]
    assert (m.institution, m.sessions, m.trainees, m.trainees_completed, m.trainees_certified) == ("must", 2, 3, 2, 1)
    assert m.second_generation_reach == 2  # u1, u2 (via t1); not u3 (t2 is no master teacher), not m
    # t1 trained m, a master teacher: m's other trainees t2, t3 are t1's second generation
    assert (rows["t1"].trainees, rows["t1"].second_generation_reach) == (3, 2)
    assert [r.educator_id for r in cascade.master_teachers] == ["m", "t1", "t2"]  # most trainees, sessions
    assert cascade.totals.model_dump() == {"sessions": 4, "trainees": 8, "trainees_certified": 1}
    summary = await reports.summary()
    assert (summary.training_sessions, summary.trainees_reached, summary.master_teachers) == (4, 8, 2)
    by_inst = {i.institution: i for i in summary.by_institution}
    assert (by_inst["must"].training_sessions, by_inst["num"].training_sessions) == (2, 2)
    assert (by_inst["must"].trainees_reached, by_inst["num"].trainees_reached) == (1, 7)

    # t2 becomes a master teacher: u3 joins m's second generation
    await project(uow, role_changed("t2", "num", "master_teacher"))
    assert {r.educator_id: r for r in (await reports.cascade()).master_teachers}["m"].second_generation_reach == 3


async def test_one_master_teachers_reach_by_region_and_mode(uow: FakeUnitOfWork, reports: Reports) -> None:
    await cascade_world(uow)
    detail = await reports.cascade_of("m")
    assert detail is not None and detail.trainees == 3
    assert [r.model_dump() for r in detail.by_region] == [
        {"region": "Darkhan", "sessions": 1, "trainees": 1},
        {"region": "Ulaanbaatar", "sessions": 1, "trainees": 3},
    ]
    assert [r.model_dump() for r in detail.by_mode] == [
        {"mode": "face_to_face", "sessions": 1, "trainees": 1},
        {"mode": "online", "sessions": 1, "trainees": 3},
    ]
    assert await reports.cascade_of("u1") is None and await reports.cascade_of("nobody") is None


async def test_the_latest_practice_report_decides_and_the_share_is_of_those_who_completed(
    uow: FakeUnitOfWork, reports: Reports
) -> None:
    await project(
        uow,
        *[registered(e, "must") for e in ("e1", "e2", "e3", "e4")],
        *completed_all("e1", "must"),
        *completed_all("e2", "must"),
        *completed_all("e3", "must"),
        practice("e1", "must", True, on="2025-06-01"),
        practice("e1", "must", False, on="2025-05-01"),  # older
        practice("e2", "must", True, on="2025-05-01"),
        practice("e2", "must", False, on="2025-07-01"),  # newer: no longer integrating
        practice("e4", "must", True, on="2025-06-01"),  # did not complete
    )
    summary = await reports.summary()
    assert summary.educators_integrating_ai == 2
    p = await reports.practice()
    assert p.overall.model_dump() == {
        "completed_programme": 3,
        "reported": 3,
        "integrating_ai": 2,
        "completed_and_integrating": 1,
        "share_of_completed": round(1 / 3, 4),
    }
    assert [i.institution for i in p.by_institution] == ["must"]


async def test_a_re_evaluation_replaces_the_earlier_one(uow: FakeUnitOfWork, reports: Reports) -> None:
    course = AI_COURSES[0]
    await project(
        uow,
        registered("e1", "must"),
        evaluated("e1", "must", course, content=2, usefulness=5, time="2025-05-01T10:00:00+08:00"),
        evaluated("e1", "must", course, content=4, usefulness=4, time="2025-05-03T10:00:00+08:00"),
        evaluated("e1", "must", AI_COURSES[1], content=5, usefulness=3, language="en"),
        evaluated("e2", "num", course, content=5, usefulness=5, language="en"),
    )
    await project(uow, evaluated("e1", "must", course, content=1, usefulness=1, time="2025-05-02T10:00:00+08:00"))
    summary = await reports.summary()
    assert (summary.course_ratings, summary.courses_rated_highly) == (3, 2)
    assert {i.institution: i.course_ratings for i in summary.by_institution} == {"must": 2, "num": 1}
    feedback = await reports.feedback()
    assert [(c.course_id, c.language, c.ratings, c.rated_highly) for c in feedback.by_course] == [
        (AI_COURSES[0], "en", 1, 1),
        (AI_COURSES[0], "mn", 1, 1),
        (AI_COURSES[1], "en", 1, 0),
    ]
    assert feedback.by_course[2].mean_content == 5.0 and feedback.share_highly == round(2 / 3, 4)


async def test_credit_transfers_acceptance_rate_and_credits_per_receiving_institution(
    uow: FakeUnitOfWork, reports: Reports
) -> None:
    await project(
        uow,
        transfer_requested("q1", "e1", "num", receiving="must"),
        transfer_requested("q2", "e2", "num", receiving="must"),
        transfer_requested("q3", "e3", "num", receiving="must"),
        transfer_requested("q4", "e4", "must", receiving="num"),
        transfer_decided("q1", "e1", "num", "accepted", receiving="must", credits=6),
        transfer_decided("q2", "e2", "num", "rejected", receiving="must", credits=6),  # credits ignored
        transfer_decided("q4", "e4", "must", "rejected", receiving="num", at="2025-07-10T10:00:00+08:00"),
        transfer_decided("q4", "e4", "must", "accepted", receiving="num", credits=4.5, at="2025-07-20T10:00:00+08:00"),
    )
    rec = await reports.recognition()
    assert rec.transfers.model_dump() == {
        "requests": 4,
        "pending": 1,
        "accepted": 2,
        "rejected": 1,
        "acceptance_rate": round(2 / 3, 4),
        "credits": 10.5,
    }
    by = {
        r.institution: (r.requests, r.pending, r.accepted, r.rejected, r.credits) for r in rec.by_receiving_institution
    }
    assert by == {"must": (3, 1, 1, 1, 6.0), "num": (1, 0, 1, 0, 4.5)}


async def test_an_erased_educator_still_counts(uow: FakeUnitOfWork, reports: Reports) -> None:
    await project(uow, registered("e1", "must"), *completed_all("e1", "must"))
    before = (await reports.summary()).model_dump(exclude={"generated_at"})
    erased = EducatorErased(educator_id="e1", institution="must", erased_at=ts("2025-08-01T10:00:00+08:00"))
    assert await Projector(uow).project(ProjectionEvent("erase-1", erased))
    assert (await reports.summary()).model_dump(exclude={"generated_at"}) == before


async def test_institution_names_in_three_languages_with_english_where_no_translation(uow: FakeUnitOfWork) -> None:
    await project(uow, registered("e1", "must"), registered("e2", "muls"), registered("e3", "x-unknown"))
    by_inst = {i.institution: i for i in (await Reports(uow, load_institutions(), RULES).summary()).by_institution}
    assert by_inst["must"].name_ru == "Монгольский государственный университет науки и технологий"
    assert by_inst["must"].name_mn == "Шинжлэх Ухаан Технологийн Их Сургууль"
    assert by_inst["muls"].name_ru == by_inst["muls"].name == "Mongolian University of Life Sciences"
    assert (by_inst["x-unknown"].name, by_inst["x-unknown"].name_ru) == (None, None)


async def dated_world(uow: FakeUnitOfWork) -> Reports:
    await project(
        uow,
        registered("e1", "must", at="2025-06-30T23:30:00+08:00", language="en"),  # the last minutes of 30 June
        registered("e2", "must", at="2025-06-30T16:30:00+00:00"),  # 1 July, 00:30 in Ulaanbaatar
        registered("e3", "miu", at="2025-05-01T10:00:00+08:00", language="ru"),
        role_changed("e1", "must", "master_teacher", at="2025-07-05T10:00:00+08:00"),
        *[completed("e3", "miu", c, at="2025-05-20T10:00:00+08:00", language="ru") for c in AI_COURSES],
        completed("e1", "must", AI_COURSES[0], at="2025-07-20T10:00:00+08:00"),  # no language sent
        issued("c3", "e3", "miu", at="2025-06-01T10:00:00+08:00"),
        suspended("c3", "e3", "miu", at="2025-06-20T10:00:00+08:00"),
        reinstated("c3", "e3", "miu", at="2025-07-10T10:00:00+08:00"),
        revoked("c3", "e3", "miu", at="2025-08-05T10:00:00+08:00"),
        practice("e3", "miu", True, on="2025-06-15"),
        practice("e3", "miu", False, on="2025-07-15"),
        session_held("s1", "e1", "must", region="Darkhan", on="2025-07-02"),
        attended("s1", "e3", "miu"),
        transfer_requested("q1", "e3", "miu", receiving="must"),
        transfer_decided("q1", "e3", "miu", "accepted", receiving="must", credits=3, at="2025-07-01T10:00:00+08:00"),
    )
    return Reports(uow, load_institutions(), RULES)


async def test_a_dated_report_counts_what_was_true_at_the_end_of_that_day_in_ulaanbaatar(
    uow: FakeUnitOfWork,
) -> None:
    reports = await dated_world(uow)

    def measures(r: Any) -> tuple[Any, ...]:
        t = r.totals
        return (
            t.registered,
            t.master_teachers,
            t.completed_programme,
            t.certified,
            t.integrating_ai,
            t.trainees_reached,
            t.credits_recognised,
        )

    assert measures(await reports.dated_report(date(2025, 6, 10))) == (1, 0, 1, 1, 0, 0, 0.0)
    assert measures(await reports.dated_report(date(2025, 6, 30))) == (2, 0, 1, 0, 1, 0, 0.0)  # suspended
    assert measures(await reports.dated_report(date(2025, 7, 31))) == (3, 1, 1, 1, 0, 1, 3.0)  # reinstated
    assert measures(await reports.dated_report(date(2025, 8, 31))) == (3, 1, 1, 0, 0, 1, 3.0)  # revoked
    report = await reports.dated_report(date(2025, 7, 31), language="ru")
    assert report.cutoff.isoformat() == "2025-08-01T00:00:00+08:00"
    by_type = {g.key: (g.registered, g.certified, g.credits_recognised) for g in report.by_type}
    assert by_type == {"public": (2, 0, 0.0), "private": (1, 1, 3.0)}
    assert {g.key: g.registered for g in report.by_city} == {"Ulaanbaatar": 3}
    assert {g.key: g.registered for g in report.by_language} == {"en": 1, "mn": 1, "ru": 1}
    assert [(r.region, r.sessions, r.trainees) for r in report.by_region] == [("Darkhan", 1, 1)]
    assert [(c.language, c.educators, c.course_completions) for c in report.by_course_language] == [
        ("ru", 1, 3),
        ("unknown", 1, 1),
    ]
    assert report.cascade.model_dump() == {"sessions": 1, "trainees": 1}
    names = {g.key: g.name for g in report.by_institution}
    assert names["must"] == "Монгольский государственный университет науки и технологий"
    assert [(p.programme_id, p.certificates_active) for p in report.by_programme] == [(AI_PROGRAMME_ID, 1)]
    practice_june = (await reports.dated_report(date(2025, 6, 30))).totals
    assert (practice_june.completed_and_integrating, practice_june.practice_share) == (1, 1.0)


async def test_the_dated_report_as_csv_has_one_header_row_and_a_row_per_breakdown_entry(uow: FakeUnitOfWork) -> None:
    report = await (await dated_world(uow)).dated_report(date(2025, 7, 31))
    rows = list(csv.reader(io.StringIO(report_formats.to_csv(report))))
    assert tuple(rows[0]) == report_formats.CSV_COLUMNS
    body = [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]
    total = body[0]
    assert (total["breakdown"], total["registered"], total["certified"], total["credits_recognised"]) == (
        "total",
        "3",
        "1",
        "3",
    )
    assert {(r["breakdown"], r["key"]) for r in body} >= {
        ("institution", "must"),
        ("institution", "miu"),
        ("type", "private"),
        ("city", "Ulaanbaatar"),
        ("language", "ru"),
        ("region", "Darkhan"),
        ("programme", AI_PROGRAMME_ID),
    }
    assert all(r["as_of"] == "2025-07-31" for r in body)


async def test_the_dated_report_as_pdf_reads_back_in_russian(uow: FakeUnitOfWork) -> None:
    report = await (await dated_world(uow)).dated_report(date(2025, 7, 31), language="ru")
    pdf = report_formats.to_pdf(report, "ru")
    assert pdf.startswith(b"%PDF-")
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "отчёт на 2025-07-31" in text
    assert "Монгольский государственный университет науки и технологий" in text
    assert "Darkhan" in text and "Каскад: занятий 1, обучено 1" in text


async def test_without_a_unicode_font_the_pdf_falls_back_to_english_labels(
    uow: FakeUnitOfWork, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report_formats, "FONT_CANDIDATES", ())
    monkeypatch.delenv(report_formats.PDF_FONT_ENV, raising=False)
    report = await (await dated_world(uow)).dated_report(date(2025, 7, 31), language="ru")
    text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(report_formats.to_pdf(report, "ru"))).pages)
    assert "report as of 2025-07-31" in text and "miu" in text


async def test_the_time_series_ends_at_the_latest_month_with_data_or_a_chosen_range(
    uow: FakeUnitOfWork, reports: Reports
) -> None:
    await project(
        uow,
        registered("e1", "must", at="2025-01-10T10:00:00+08:00"),
        registered("e2", "must", at="2025-03-10T10:00:00+08:00"),
    )
    assert [m.month for m in (await reports.timeseries()).months] == ["2025-01", "2025-02", "2025-03"]
    chosen = await reports.timeseries(None, "2024-12", "2025-02")
    assert [(m.month, m.registrations) for m in chosen.months] == [("2024-12", 0), ("2025-01", 1), ("2025-02", 0)]
    assert [m.month for m in (await reports.timeseries(None, "2025-02", None)).months] == ["2025-02", "2025-03"]
    assert (await reports.timeseries(None, "2025-04", "2025-03")).months == []


async def test_active_certificates_by_programme_tier(uow: FakeUnitOfWork) -> None:
    await project(
        uow,
        issued("c1", "e1", "must", at="2025-05-01T10:00:00+08:00"),
        issued("c2", "e2", "must", at="2025-05-01T10:00:00+08:00", programme_id="adp-advanced"),
        issued("c3", "e3", "must", at="2025-05-01T10:00:00+08:00", programme_id="not-in-catalogue"),
        revoked("c1", "e1", "must", at="2025-05-20T10:00:00+08:00"),
    )
    tiers = {AI_PROGRAMME_ID: "standalone", "adp-advanced": "advanced"}
    reports = Reports(uow, load_institutions(), RULES, tiers)
    before = await reports.dated_report(date(2025, 5, 10))
    assert [(t.tier, t.certificates_active) for t in before.by_tier] == [
        ("advanced", 1),
        ("standalone", 1),
        ("unknown", 1),
    ]
    after = await reports.dated_report(date(2025, 5, 31))
    assert [(t.tier, t.certificates_active) for t in after.by_tier] == [("advanced", 1), ("unknown", 1)]
    assert "2025-05-31,tier,advanced," in report_formats.to_csv(after)


def test_the_followed_programme_has_its_tier_with_or_without_the_shared_catalogue() -> None:
    assert programme_tiers(AnalyticsSettings())[AI_PROGRAMME_ID] == "standalone"
