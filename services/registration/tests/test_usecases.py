"""The register-educator use case on the in-memory unit of work: no NATS, no PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from iioe.commands import RegisterEducatorRequest
from iioe.events import EducatorContact, EducatorRegistered
from services.registration.domain import RegisterEducator, RegistrationError
from services.registration.tests.fakes import FakeUnitOfWork
from services.registration.usecases import Registrations

NOW = datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
SOURCE = "urn:iioe:service:registration"


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def registrations(uow: FakeUnitOfWork) -> Registrations:
    ids = (f"edu-{n}" for n in itertools.count(1))
    return Registrations(uow, {"must", "num"}, source=SOURCE, clock=lambda: NOW, new_id=lambda: next(ids))


def register(institution: str = "must", **overrides: object) -> RegisterEducator:
    body = {"full_name": "Батын Сарнай", "email": "sarnai@must.edu.mn", "language": "mn", **overrides}
    return RegisterEducator(institution, RegisterEducatorRequest.parse(body))


async def test_registration_emits_educator_registered_and_contact(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    reply = await registrations.register(register())
    assert reply.model_dump() == {"educator_id": "edu-1", "status": "registered"}
    assert [type(s.event).__name__ for s in uow.events] == ["EducatorRegistered", "EducatorContact"]
    assert {(s.source, s.subject) for s in uow.events} == {(SOURCE, "edu-1")}
    registered, contact = (s.event for s in uow.events)
    assert registered.model_dump() == {
        "educator_id": "edu-1",
        "institution": "must",
        "language": "mn",
        "role": "educator",
        "registered_at": NOW,
    }
    assert isinstance(contact, EducatorContact)
    assert (contact.full_name, contact.email) == ("Батын Сарнай", "sarnai@must.edu.mn")
    educator = await registrations.educator("edu-1")
    assert educator is not None and educator.registered_at == NOW


async def test_same_email_same_institution_gets_first_id_and_no_second_event(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    first = await registrations.register(register())
    again = await registrations.register(
        register(full_name="Batyn Sarnai", email=" SARNAI@must.EDU.mn ", language="en")
    )
    assert again.model_dump() == {"educator_id": first.educator_id, "status": "already_registered"}
    assert len(uow.educators) == 1 and len(uow.events_of(EducatorRegistered)) == 1
    assert len(uow.events_of(EducatorContact)) == 1


async def test_same_email_at_another_institution_is_another_educator(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    first = await registrations.register(register("must"))
    other = await registrations.register(register("num"))
    assert other.status == "registered" and other.educator_id != first.educator_id
    assert [e.institution for e in uow.events_of(EducatorRegistered)] == ["must", "num"]  # type: ignore[attr-defined]


async def test_master_teacher_with_historical_date_keeps_both(
    registrations: Registrations, uow: FakeUnitOfWork
) -> None:
    await registrations.register(register(role="master_teacher", registered_at="2025-03-14T09:30:00+08:00"))
    (registered,) = uow.events_of(EducatorRegistered)
    assert isinstance(registered, EducatorRegistered) and registered.role == "master_teacher"
    assert registered.registered_at == datetime(2025, 3, 14, 1, 30, tzinfo=UTC)
    assert registered.registered_at.utcoffset() == timedelta(hours=8)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (lambda: register("nowhere"), "unknown_institution"),
        (lambda: register(registered_at="2025-06-02T00:00:00Z"), "registered_at_in_future"),
    ],
)
async def test_rejected_registration_stores_and_emits_nothing(
    registrations: Registrations, uow: FakeUnitOfWork, command: object, code: str
) -> None:
    with pytest.raises(RegistrationError) as caught:
        await registrations.register(command())  # type: ignore[operator]
    assert caught.value.code == code
    assert uow.educators == {} and uow.events == [] and uow.commits == 0


async def test_unknown_educator_is_none(registrations: Registrations) -> None:
    assert await registrations.educator("edu-nope") is None
