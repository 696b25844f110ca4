"""Cascade and portfolio intake on the in-memory unit of work: every rule, no servers."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from iioe.commands import CommandRejected, RegisterEducatorRequest
from iioe.events import PortfolioEntryAdded, PracticeIntegrationReported, TraineeAttended, TrainingSessionHeld
from services.registration.domain import RegisterEducator
from services.registration.tests.fakes import FakeUnitOfWork
from services.registration.usecases import CascadeRecords, Registrations

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SOURCE = "urn:iioe:service:registration"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def registrations(uow: FakeUnitOfWork) -> Registrations:
    ids = (f"edu-{n}" for n in itertools.count(1))
    return Registrations(uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW, new_id=lambda: next(ids))


@pytest.fixture
def records(uow: FakeUnitOfWork) -> CascadeRecords:
    counter = itertools.count(1)
    return CascadeRecords(
        uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW, new_id=lambda prefix: f"{prefix}-{next(counter)}"
    )


async def educator(registrations: Registrations, institution: str = "must", role: str = "educator") -> str:
    body = {"full_name": "A B", "email": f"{role}.{institution}@x.mn", "language": "mn", "role": role}
    reply = await registrations.register(RegisterEducator(institution, RegisterEducatorRequest.parse(body)))
    return reply.educator_id


def session_body(teacher: str, **overrides: Any) -> dict[str, Any]:
    return {
        "institution": "must",
        "master_teacher_id": teacher,
        "region": "Ulaanbaatar",
        "mode": "face_to_face",
        "held_on": "2025-05-30",
        "language": "mn",
        **overrides,
    }


async def rejected(run: Any) -> str:
    with pytest.raises(CommandRejected) as caught:
        await run
    return caught.value.code


# --- training sessions -------------------------------------------------------------------------


async def test_a_master_teachers_session_is_recorded_with_its_actor(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    teacher = await educator(registrations, role="master_teacher")
    outcome = await records.hold_session(session_body(teacher), scope="must", actor="partner-must")
    assert (outcome.record_id, outcome.status, outcome.institution) == ("ses-1", "recorded", "must")
    (event,) = uow.events_of(TrainingSessionHeld)
    assert event.model_dump(mode="json") == {**session_body(teacher), "session_id": "ses-1"}
    assert uow.events[-1].subject == teacher
    assert uow.record_actors["training_session", "ses-1"] == "partner-must"


async def test_the_same_session_id_twice_is_recorded_once_and_other_content_conflicts(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    teacher = await educator(registrations, role="master_teacher")
    body = session_body(teacher, session_id="s-42")
    assert (await records.hold_session(body, scope=None, actor="operator")).status == "recorded"
    assert (await records.hold_session(body, scope=None, actor="operator")).status == "already_recorded"
    assert len(uow.events_of(TrainingSessionHeld)) == 1
    code = await rejected(records.hold_session({**body, "region": "Darkhan"}, scope=None, actor="operator"))
    assert code == "training_session_conflict"


@pytest.mark.parametrize(
    ("teacher_of", "overrides", "code"),
    [
        ("educator", {}, "not_a_master_teacher"),
        ("nobody", {}, "unknown_master_teacher"),
        ("other-institution", {}, "unknown_master_teacher"),
        ("master", {"institution": "nowhere"}, "unknown_institution"),
        ("master", {"mode": "radio"}, "invalid_mode"),
        ("master", {"held_on": "30/05/2025"}, "invalid_held_on"),
        ("master", {"held_on": "2025-06-05"}, "held_on_in_future"),
        ("master", {"language": "de"}, "invalid_language"),
        ("master", {"region": ""}, "invalid_region"),
        ("master", {"institution": "MUST"}, "invalid_institution"),
    ],
)
async def test_invalid_sessions_are_refused_with_a_code(
    registrations: Registrations,
    records: CascadeRecords,
    uow: FakeUnitOfWork,
    teacher_of: str,
    overrides: dict[str, Any],
    code: str,
) -> None:
    teachers = {
        "educator": await educator(registrations),
        "master": await educator(registrations, role="master_teacher"),
        "other-institution": await educator(registrations, "num", role="master_teacher"),
        "nobody": "edu-nope",
    }
    staged = len(uow.events)
    body = session_body(teachers[teacher_of], **overrides)
    assert await rejected(records.hold_session(body, scope=None, actor="operator")) == code
    assert len(uow.events) == staged and uow.records == {}


async def test_missing_fields_are_named(records: CascadeRecords) -> None:
    body = session_body("edu-1")
    del body["held_on"]
    assert await rejected(records.hold_session(body, scope=None, actor="operator")) == "missing_held_on"


async def test_an_institution_records_only_its_own_sessions(
    registrations: Registrations, records: CascadeRecords
) -> None:
    teacher = await educator(registrations, role="master_teacher")
    assert await rejected(records.hold_session(session_body(teacher), scope="num", actor="partner-num")) == "forbidden"


async def test_an_erased_master_teacher_holds_no_sessions(
    registrations: Registrations, records: CascadeRecords
) -> None:
    teacher = await educator(registrations, role="master_teacher")
    await registrations.erase(teacher, actor="operator")
    assert await rejected(records.hold_session(session_body(teacher), scope=None, actor="op")) == "educator_erased"


# --- attendance --------------------------------------------------------------------------------


async def held_session(registrations: Registrations, records: CascadeRecords) -> str:
    teacher = await educator(registrations, role="master_teacher")
    return (await records.hold_session(session_body(teacher), scope="must", actor="partner-must")).record_id


async def test_a_trainee_of_another_institution_attends_on_the_trainees_subject(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    session = await held_session(registrations, records)
    trainee = await educator(registrations, "num")
    outcome = await records.attend(session, {"educator_id": trainee}, scope="must", actor="partner-must")
    assert (outcome.status, outcome.institution) == ("recorded", "num")
    (event,) = uow.events_of(TraineeAttended)
    assert event.model_dump() == {"session_id": session, "institution": "num", "educator_id": trainee}
    assert uow.events[-1].subject == trainee


async def test_attendance_is_idempotent_per_session_and_educator(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    session = await held_session(registrations, records)
    trainees = [await educator(registrations), await educator(registrations, "num")]
    for trainee in trainees + trainees:
        await records.attend(session, {"educator_id": trainee}, scope=None, actor="operator")
    assert [e.educator_id for e in uow.events_of(TraineeAttended)] == trainees  # type: ignore[attr-defined]
    again = await records.attend(session, {"educator_id": trainees[0]}, scope=None, actor="operator")
    assert again.status == "already_recorded"


async def test_the_trainees_institution_may_record_attendance_a_third_may_not(
    registrations: Registrations, records: CascadeRecords
) -> None:
    session = await held_session(registrations, records)
    trainee = await educator(registrations, "num")
    body = {"educator_id": trainee}
    assert (await records.attend(session, body, scope="num", actor="partner-num")).status == "recorded"
    assert await rejected(records.attend(session, body, scope="mnums", actor="partner-mnums")) == "forbidden"


@pytest.mark.parametrize(
    ("session", "body", "code"),
    [
        ("ses-nope", {"educator_id": "edu-1"}, "session_not_found"),
        ("ses-1", {"educator_id": "edu-nope"}, "educator_not_found"),
        ("ses-1", {}, "missing_educator_id"),
        ("ses-1", {"educator_id": 7}, "missing_educator_id"),
    ],
)
async def test_attendance_needs_a_known_session_and_educator(
    registrations: Registrations,
    records: CascadeRecords,
    uow: FakeUnitOfWork,
    session: str,
    body: dict[str, Any],
    code: str,
) -> None:
    assert await held_session(registrations, records) == "ses-1"
    assert await rejected(records.attend(session, body, scope=None, actor="operator")) == code
    assert uow.events_of(TraineeAttended) == []


# --- portfolio and practice --------------------------------------------------------------------


async def test_a_portfolio_entry_is_recorded_once_per_entry_id(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    owner = await educator(registrations)
    body = {"entry_id": "e-1", "kind": "lesson_plan", "title": "AI in statics", "added_on": "2025-05-01"}
    assert (await records.add_portfolio_entry(owner, body, scope="must", actor="partner-must")).status == "recorded"
    assert (await records.add_portfolio_entry(owner, body, scope="must", actor="p")).status == "already_recorded"
    (event,) = uow.events_of(PortfolioEntryAdded)
    assert event.model_dump(mode="json") == {**body, "educator_id": owner, "institution": "must", "link": None}
    other = {**body, "title": "Another"}
    assert await rejected(records.add_portfolio_entry(owner, other, scope=None, actor="op")) == (
        "portfolio_entry_conflict"
    )


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"kind": "essay"}, "invalid_kind"),
        ({"title": None}, "invalid_title"),
        ({"link": "ftp://x.mn/a"}, "invalid_link"),
        ({"added_on": "2030-01-01"}, "added_on_in_future"),
    ],
)
async def test_invalid_portfolio_entries_are_refused(
    registrations: Registrations, records: CascadeRecords, overrides: dict[str, Any], code: str
) -> None:
    owner = await educator(registrations)
    body = {"kind": "reflection", "title": "T", "added_on": "2025-05-01", **overrides}
    assert await rejected(records.add_portfolio_entry(owner, body, scope=None, actor="op")) == code


async def test_the_path_decides_educator_and_institution_not_the_body(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    owner = await educator(registrations)
    body = {"kind": "reflection", "title": "T", "added_on": "2025-05-01", "institution": "num", "educator_id": "x"}
    await records.add_portfolio_entry(owner, body, scope="must", actor="partner-must")
    (event,) = uow.events_of(PortfolioEntryAdded)
    assert (event.educator_id, event.institution) == (owner, "must")  # type: ignore[attr-defined]


async def test_every_practice_report_is_kept(
    registrations: Registrations, records: CascadeRecords, uow: FakeUnitOfWork
) -> None:
    owner = await educator(registrations, "num")
    for flag in (False, True):
        body = {"integrates_ai": flag, "disciplines": ["physics"], "reported_on": "2025-05-20"}
        assert (await records.report_practice(owner, body, scope="num", actor="partner-num")).status == "recorded"
    reports = uow.events_of(PracticeIntegrationReported)
    assert [r.integrates_ai for r in reports] == [False, True]  # type: ignore[attr-defined]
    assert {r.institution for r in reports} == {"num"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("owner_of", "scope", "body", "code"),
    [
        ("must", "num", {"integrates_ai": True, "reported_on": "2025-05-20"}, "forbidden"),
        ("nobody", None, {"integrates_ai": True, "reported_on": "2025-05-20"}, "educator_not_found"),
        ("must", None, {"integrates_ai": "yes", "reported_on": "2025-05-20"}, "invalid_integrates_ai"),
        ("must", None, {"reported_on": "2025-05-20"}, "missing_integrates_ai"),
        ("erased", None, {"integrates_ai": True, "reported_on": "2025-05-20"}, "educator_erased"),
    ],
)
async def test_invalid_practice_reports_are_refused(
    registrations: Registrations,
    records: CascadeRecords,
    uow: FakeUnitOfWork,
    owner_of: str,
    scope: str | None,
    body: dict[str, Any],
    code: str,
) -> None:
    owners = {"must": await educator(registrations), "nobody": "edu-nope"}
    owners["erased"] = await educator(registrations, "num")
    await registrations.erase(owners["erased"], actor="operator")
    assert await rejected(records.report_practice(owners[owner_of], body, scope=scope, actor="x")) == code
    assert uow.events_of(PracticeIntegrationReported) == []
