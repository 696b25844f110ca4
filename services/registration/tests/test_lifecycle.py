"""Role changes, erasure, search and CSV import on the in-memory unit of work: every rule, no servers."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime

import pytest

from iioe.commands import RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorErased, EducatorRegistered, EducatorRoleChanged
from services.registration.domain import RegisterEducator, RegistrationError
from services.registration.ports import EducatorQuery
from services.registration.tests.fakes import FakeUnitOfWork
from services.registration.usecases import ChangeRole, Registrations

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SOURCE = "urn:iioe:service:registration"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def registrations(uow: FakeUnitOfWork) -> Registrations:
    ids = (f"edu-{n}" for n in itertools.count(1))
    return Registrations(uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW, new_id=lambda: next(ids))


async def register(registrations: Registrations, institution: str = "must", **overrides: object) -> str:
    body = {"full_name": "Батын Сарнай", "email": "sarnai@must.edu.mn", "language": "mn", **overrides}
    reply = await registrations.register(RegisterEducator(institution, RegisterEducatorRequest.parse(body)))
    return reply.educator_id


def change(educator_id: str, role: str = "master_teacher", institution: str | None = "must") -> ChangeRole:
    return ChangeRole(educator_id, role, institution=institution, actor="partner-must")  # type: ignore[arg-type]


# --- change_role -------------------------------------------------------------------------------


async def test_changing_the_role_emits_educator_role_changed_and_records_the_actor(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    educator_id = await register(registrations)
    reply = await registrations.change_role(change(educator_id))
    assert reply.model_dump() == {"educator_id": educator_id, "role": "master_teacher", "status": "changed"}
    (event,) = uow.events_of(EducatorRoleChanged)
    assert event.model_dump() == {
        "educator_id": educator_id,
        "institution": "must",
        "role": "master_teacher",
        "changed_at": NOW,
    }
    assert uow.events[-1].subject == educator_id and uow.events[-1].source == SOURCE
    assert uow.educators[educator_id].role == "master_teacher"
    (audit,) = uow.audit
    assert (audit.action, audit.actor, audit.detail) == (
        "role_changed",
        "partner-must",
        {"from": "educator", "to": "master_teacher"},
    )


async def test_the_same_role_again_is_unchanged_and_emits_nothing(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    educator_id = await register(registrations, role="master_teacher")
    staged = len(uow.events)
    reply = await registrations.change_role(change(educator_id))
    assert reply.status == "unchanged" and reply.role == "master_teacher"
    assert len(uow.events) == staged and uow.audit == []


async def test_a_role_can_change_back(registrations: Registrations, uow: FakeUnitOfWork) -> None:
    educator_id = await register(registrations)
    await registrations.change_role(change(educator_id))
    back = await registrations.change_role(change(educator_id, "educator"))
    assert back.status == "changed"
    assert [e.role for e in uow.events_of(EducatorRoleChanged)] == ["master_teacher", "educator"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("institution", ["num", "nowhere"])
async def test_an_educator_of_another_institution_is_not_found(
    registrations: Registrations, uow: FakeUnitOfWork, institution: str
) -> None:
    educator_id = await register(registrations)
    with pytest.raises(RegistrationError) as caught:
        await registrations.change_role(change(educator_id, institution=institution))
    assert caught.value.code == "educator_not_found"
    assert uow.educators[educator_id].role == "educator" and uow.events_of(EducatorRoleChanged) == []


async def test_an_unknown_educator_is_not_found(registrations: Registrations) -> None:
    with pytest.raises(RegistrationError) as caught:
        await registrations.change_role(change("edu-nope", institution=None))
    assert caught.value.code == "educator_not_found"


async def test_an_operator_changes_a_role_at_any_institution(registrations: Registrations, uow: FakeUnitOfWork) -> None:
    educator_id = await register(registrations, "num")
    assert (await registrations.change_role(change(educator_id, institution=None))).status == "changed"
    assert uow.events_of(EducatorRoleChanged)[0].institution == "num"  # type: ignore[attr-defined]


# --- erasure -----------------------------------------------------------------------------------


async def test_erasure_deletes_name_and_email_and_emits_educator_erased(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    educator_id = await register(registrations)
    educator, erased_now = await registrations.erase(educator_id, actor="operator")
    assert erased_now and educator.erased_at == NOW
    stored = uow.educators[educator_id]
    assert (stored.full_name, stored.email, stored.email_key) == (None, None, None)
    assert (stored.institution, stored.role, stored.language) == ("must", "educator", "mn")
    (event,) = uow.events_of(EducatorErased)
    assert event.model_dump() == {"educator_id": educator_id, "institution": "must", "erased_at": NOW}
    assert "sarnai" not in event.model_dump_json().lower()
    assert uow.forgotten_contacts == [educator_id]  # contact rows in the outbox go too
    assert [(a.action, a.actor) for a in uow.audit] == [("erased", "operator")]


async def test_erasing_again_is_idempotent(registrations: Registrations, uow: FakeUnitOfWork) -> None:
    educator_id = await register(registrations)
    await registrations.erase(educator_id, actor="operator")
    staged = len(uow.events)
    educator, erased_now = await registrations.erase(educator_id, actor="operator")
    assert not erased_now and educator.erased_at == NOW
    assert len(uow.events) == staged and len(uow.events_of(EducatorErased)) == 1


async def test_the_same_email_after_erasure_registers_a_new_educator(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    first = await register(registrations)
    await registrations.erase(first, actor="operator")
    second = await register(registrations)
    assert second != first
    assert len(uow.events_of(EducatorRegistered)) == 2 and len(uow.events_of(EducatorContact)) == 2


async def test_an_erased_educator_keeps_no_role_changes(registrations: Registrations) -> None:
    educator_id = await register(registrations)
    await registrations.erase(educator_id, actor="operator")
    with pytest.raises(RegistrationError) as caught:
        await registrations.change_role(change(educator_id))
    assert caught.value.code == "educator_erased"


async def test_erasing_an_unknown_educator_is_not_found(registrations: Registrations) -> None:
    with pytest.raises(RegistrationError) as caught:
        await registrations.erase("edu-nope", actor="operator")
    assert caught.value.code == "educator_not_found"


# --- search ------------------------------------------------------------------------------------


async def test_search_filters_by_institution_role_and_substring_and_pages(registrations: Registrations) -> None:
    ids = [
        await register(registrations, full_name=f"Person {n}", email=f"p{n}@must.edu.mn", role=role)
        for n, role in enumerate(["educator", "master_teacher", "educator", "educator"])
    ]
    await register(registrations, "num", full_name="Person 9", email="p9@num.edu.mn")
    await registrations.erase(ids[3], actor="operator")

    total, page = await registrations.educators(EducatorQuery("must", limit=2))
    assert total == 3 and [e.educator_id for e in page] == ids[:2]
    total, page = await registrations.educators(EducatorQuery("must", offset=2, limit=2))
    assert total == 3 and [e.educator_id for e in page] == ids[2:3]
    assert (await registrations.educators(EducatorQuery("must", role="master_teacher")))[0] == 1
    assert (await registrations.educators(EducatorQuery(None, q="PERSON")))[0] == 4
    assert (await registrations.educators(EducatorQuery(None, q="@num.")))[0] == 1
    assert (await registrations.educators(EducatorQuery("must", q="p3@")))[0] == 0  # erased: gone


# --- CSV import --------------------------------------------------------------------------------


async def rows_of(*rows: Mapping[str, str]) -> AsyncIterator[tuple[int, Mapping[str, str]]]:
    for number, row in enumerate(rows, start=2):
        yield number, row


GOOD = {"full_name": "A B", "email": "ab@must.edu.mn", "language": "en", "role": "", "registered_at": ""}


async def test_import_reports_every_row_and_is_idempotent_by_email(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    existing = await register(registrations)
    rows = [
        GOOD,
        {**GOOD, "email": "SARNAI@must.edu.mn"},
        {**GOOD, "email": "not-an-email"},
        {**GOOD, "language": "de", "email": "x@must.edu.mn"},
        {**GOOD, "email": "AB@must.edu.mn"},
    ]
    report = await registrations.import_educators("must", rows_of(*rows), dry_run=False)
    outcomes = [(r.row, r.outcome, r.error) for r in report.rows]
    assert outcomes == [
        (2, "registered", None),
        (3, "already_registered", None),
        (4, "error", "invalid_email"),
        (5, "error", "unsupported_language"),
        (6, "already_registered", None),
    ]
    assert report.rows[1].educator_id == existing and report.rows[4].educator_id == report.rows[0].educator_id
    assert report.summary() == {"registered": 1, "already_registered": 2, "error": 2}
    again = await registrations.import_educators("must", rows_of(*rows), dry_run=False)
    assert again.summary() == {"registered": 0, "already_registered": 3, "error": 2}
    assert len(uow.events_of(EducatorRegistered)) == 2


async def test_a_dry_run_predicts_the_outcomes_and_stores_nothing(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    existing = await register(registrations)
    before = (dict(uow.educators), len(uow.events))
    rows = [GOOD, {**GOOD, "email": "sarnai@MUST.edu.mn"}, {**GOOD, "email": "ab@MUST.edu.mn"}, {**GOOD, "email": ""}]
    report = await registrations.import_educators("must", rows_of(*rows), dry_run=True)
    assert [(r.outcome, r.educator_id, r.error) for r in report.rows] == [
        ("registered", None, None),
        ("already_registered", existing, None),
        ("already_registered", None, None),  # the same file registers it once
        ("error", None, "missing_email"),
    ]
    assert (dict(uow.educators), len(uow.events)) == before


async def test_import_into_an_unknown_institution_is_refused(registrations: Registrations) -> None:
    with pytest.raises(RegistrationError) as caught:
        await registrations.import_educators("nowhere", rows_of(GOOD), dry_run=False)
    assert caught.value.code == "unknown_institution"
