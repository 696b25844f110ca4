"""The projector use case and the reports on the in-memory unit of work: the projection rules,
exactly-once through the inbox, and no personal data in the summary. No NATS, no PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iioe.envelope import CloudEvent, make_event
from iioe.events import BY_MODEL, EDUCATOR_CONTACT, EducatorContact
from iioe.parsing import InvalidEvent, parse_event
from iioe.reasons import Reason
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from services.analytics.domain import ProjectionEvent, ProjectionRules
from services.analytics.handlers import ProjectionHandlers
from services.analytics.reports import Reports
from services.analytics.settings import AI_PROGRAMME_ID
from services.analytics.tests.fakes import FakeUnitOfWork
from services.analytics.tests.helpers import AI_COURSES, completed, issued, registered, revoked
from services.analytics.usecases import Projector

RULES = ProjectionRules(AI_PROGRAMME_ID, AI_COURSES, "Asia/Ulaanbaatar")


def plain(*events: CloudEvent[Any]) -> list[ProjectionEvent]:
    return [ProjectionEvent(e.id, e.data, source=e.source) for e in events]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(RULES)


@pytest.fixture
def projector(uow: FakeUnitOfWork) -> Projector:
    return Projector(uow)


@pytest.fixture
def reports(uow: FakeUnitOfWork) -> Reports:
    return Reports(uow, {}, RULES)


async def test_registrations_are_counted_per_institution(projector: Projector, reports: Reports) -> None:
    await projector.project_batch(
        plain(
            registered("e1", "must"),
            registered("e2", "must", role="master_teacher"),
            registered("e3", "num"),
        )
    )
    summary = await reports.summary()
    by_inst = {i.institution: i for i in summary.by_institution}
    assert summary.educators_registered == 3 and summary.institutions_active == 2
    assert by_inst["must"].educators_registered == 2 and by_inst["must"].master_teachers == 1
    assert by_inst["num"].educators_registered == 1 and by_inst["num"].master_teachers == 0
    assert [i.institution for i in summary.by_institution] == ["must", "num"]  # most registrations first


async def test_earliest_registration_wins_whatever_the_order(projector: Projector, reports: Reports) -> None:
    await projector.project(plain(registered("e1", "num", at="2025-05-01T10:00:00+08:00"))[0])
    await projector.project(plain(registered("e1", "must", at="2025-03-01T10:00:00+08:00"))[0])
    summary = await reports.summary()
    assert [(i.institution, i.educators_registered) for i in summary.by_institution] == [("must", 1)]


async def test_completions_are_counted_per_course_and_ulaanbaatar_month(projector: Projector, reports: Reports) -> None:
    await projector.project_batch(
        plain(
            registered("e1", "must"),
            completed("e1", "must", AI_COURSES[0], at="2025-03-31T20:00:00+00:00"),  # 1 April in Ulaanbaatar
            completed("e1", "must", AI_COURSES[0], at="2025-04-02T10:00:00+08:00", score=95),  # a retake
            completed("e1", "must", "other-course", at="2025-05-02T10:00:00+08:00"),
        )
    )
    detail = await reports.institution("must")
    assert detail is not None
    courses = {c.course_id: (c.completions, c.educators) for c in detail.by_course}
    assert courses == {AI_COURSES[0]: (2, 1), "other-course": (1, 1)}
    months = {m.month: m.course_completions for m in detail.months}
    assert months == {"2025-03": 0, "2025-04": 2, "2025-05": 1}  # March shows only as the registration month
    assert detail.course_completions == 3 and detail.educators_started == 1


async def test_completing_all_courses_with_any_score_completes_the_funnel_step(
    projector: Projector, reports: Reports
) -> None:
    days = ("2025-04-01", "2025-05-20", "2025-04-15")
    events = [registered("e1", "must"), registered("e2", "must")]
    events += [
        completed("e1", "must", course, at=f"{day}T10:00:00+08:00", score=score)
        for course, day, score in zip(AI_COURSES, days, (10.0, 50.0, 99.0), strict=True)
    ]
    events += [completed("e2", "must", course) for course in AI_COURSES[:2]]  # one course short
    await projector.project_batch(plain(*events))
    summary = await reports.summary()
    assert summary.educators_completed_programme_courses == 1
    assert summary.funnel.model_dump() == {
        "registered": 2,
        "started": 2,
        "completed": 1,
        "certified": 0,
        "rates": {"started": 1.0, "completed": 0.5, "certified": 0.0},
    }
    months = {m.month: m.programme_completions for m in (await reports.timeseries()).months}
    assert months["2025-05"] == 1 and months["2025-04"] == 0  # at the last of the first completions


async def test_a_certificate_issued_then_revoked_stops_being_active(projector: Projector, reports: Reports) -> None:
    await projector.project_batch(plain(registered("e1", "must"), issued("c1", "e1", "must")))
    summary = await reports.summary()
    assert (summary.certificates_issued, summary.certificates_revoked, summary.funnel.certified) == (1, 0, 1)
    assert summary.by_programme[0].credits_issued == 6.0

    await projector.project(plain(revoked("c1", "e1", "must", at="2025-06-01T10:00:00+08:00"))[0])
    summary = await reports.summary()
    assert (summary.certificates_issued, summary.certificates_revoked, summary.funnel.certified) == (0, 1, 0)
    assert summary.by_programme[0].credits_issued == 0.0
    june = next(m for m in (await reports.timeseries()).months if m.month == "2025-06")
    assert june.certificates_revoked == 1


async def test_a_revocation_before_its_issuance_is_kept(projector: Projector, reports: Reports) -> None:
    await projector.project(plain(revoked("c1", "e1", "must"))[0])
    assert (await reports.summary()).certificates_revoked == 0  # not known to be issued yet
    await projector.project(plain(issued("c1", "e1", "must"))[0])
    summary = await reports.summary()
    assert (summary.certificates_issued, summary.certificates_revoked) == (0, 1)


async def test_duplicate_event_ids_are_projected_once(
    uow: FakeUnitOfWork, projector: Projector, reports: Reports
) -> None:
    reg, done = registered("e1", "must"), completed("e1", "must", AI_COURSES[0])
    first = await projector.project_batch(plain(reg, done, done))  # the same id twice in one batch
    again = await projector.project_batch(plain(reg, done))  # redelivered later
    assert (first.applied, first.duplicates) == (2, 1) and (again.applied, again.duplicates) == (0, 2)
    assert await projector.project(plain(done)[0]) is False
    summary = await reports.summary()
    assert summary.educators_registered == 1 and summary.course_completions == 1
    assert uow.inbox == {(reg.source, reg.id), (done.source, done.id)}


async def test_two_producers_may_use_the_same_id_and_both_count(
    uow: FakeUnitOfWork, projector: Projector, reports: Reports
) -> None:
    """CloudEvents uniqueness is (source, id): two partners that both send `evt-1` are both applied."""
    first = ProjectionEvent("evt-1", completed("e1", "must", AI_COURSES[0]).data, source="urn:iioe:partner:must-lms")
    second = ProjectionEvent("evt-1", completed("e2", "num", AI_COURSES[0]).data, source="urn:iioe:partner:num-lms")
    outcome = await projector.project_batch([first, second, first])
    assert (outcome.applied, outcome.duplicates) == (2, 1)
    assert (await reports.summary()).course_completions == 2


async def test_a_failed_projection_keeps_no_inbox_claim_so_the_retry_counts(
    uow: FakeUnitOfWork, projector: Projector, reports: Reports
) -> None:
    event = completed("e1", "must", AI_COURSES[0])
    uow.fail_next_apply = True
    with pytest.raises(ConnectionError):
        await projector.project(plain(event)[0])
    assert uow.inbox == set() and uow.rollbacks == 1
    assert await projector.project(plain(event)[0]) is True
    assert (await reports.summary()).course_completions == 1


def received(raw: bytes, subject: str) -> ReceivedEvent:
    spec, event = parse_event(raw, subject)
    return ReceivedEvent(spec, event, subject, stream_seq=1, num_delivered=1, data=raw)


def with_personal_data(event: CloudEvent[Any]) -> tuple[bytes, str]:
    doc = json.loads(event.to_json_bytes())
    doc["data"].update(full_name="Батын Сарнай", email="sarnai@must.edu.mn")
    doc["sarnai_email"] = "sarnai@must.edu.mn"  # an unknown envelope attribute, kept by the envelope
    return json.dumps(doc).encode(), BY_MODEL[type(event.data)].subject(event.data.institution)


async def test_summary_never_contains_names_or_emails(uow: FakeUnitOfWork, reports: Reports) -> None:
    handlers = ProjectionHandlers(Projector(uow))
    events = [registered("e1", "must"), completed("e1", "must", AI_COURSES[0]), issued("c1", "e1", "must")]
    batch = [received(*with_personal_data(e)) for e in events]
    await handlers.on_batch(batch)
    await handlers.on_event(batch[0])  # and once more alone: a duplicate
    summary = await reports.summary()
    assert summary.educators_registered == 1 and summary.certificates_issued == 1
    detail = await reports.institution("must")
    assert detail is not None
    outputs = [summary.model_dump_json(), detail.model_dump_json()]
    outputs.append(repr(vars(uow.state)))
    for text in outputs:
        assert "sarnai" not in text.lower() and "Сарнай" not in text and "@" not in text


async def test_a_contact_on_the_event_stream_is_unprocessable(uow: FakeUnitOfWork) -> None:
    contact = make_event(
        EducatorContact(educator_id="e1", institution="must", full_name="A B", email="a@b.mn", language="mn"),
        event_type=EDUCATOR_CONTACT.type,
        source="urn:iioe:test",
    )
    on_events = "iioe.events.must.educator_contact.v1"
    with pytest.raises(InvalidEvent) as refused:  # the parser dead-letters it before any handler
        parse_event(contact.to_json_bytes(), on_events)
    assert refused.value.reason == Reason.SUBJECT_MISMATCH
    # and the handler still refuses one that got past a parser (defence in depth)
    smuggled = ReceivedEvent(EDUCATOR_CONTACT, contact, on_events, stream_seq=1, num_delivered=1)
    handlers = ProjectionHandlers(Projector(uow))
    with pytest.raises(Unprocessable) as caught:
        await handlers.on_event(smuggled)
    assert caught.value.reason == Reason.SUBJECT_MISMATCH
    valid = received(*with_personal_data(registered("e2", "must")))
    with pytest.raises(Unprocessable):  # in a batch too: the consumer then retries each message alone
        await handlers.on_batch([valid, smuggled])
    assert uow.inbox == set() and uow.commits == 0
