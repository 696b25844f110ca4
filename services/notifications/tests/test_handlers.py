"""NATS entry points: a received event becomes a use-case call, or a dead letter when its data is wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import BaseModel

from iioe.envelope import make_event
from iioe.events import (
    CERTIFICATE_ISSUED,
    COURSE_COMPLETED,
    EDUCATOR_CONTACT,
    EDUCATOR_ERASED,
    EDUCATOR_REGISTERED,
    EDUCATOR_ROLE_CHANGED,
    TRAINEE_ATTENDED,
    TRAINING_SESSION_HELD,
    CourseCompleted,
    EducatorContact,
    EducatorErased,
    EducatorRegistered,
    EducatorRoleChanged,
    EventSpec,
    TraineeAttended,
    TrainingSessionHeld,
)
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from services.notifications.domain import NotificationStatus
from services.notifications.handlers import NotificationHandlers
from services.notifications.tests.fakes import FakeUnitOfWork
from services.notifications.usecases import NotificationUseCases

SOURCE = "urn:iioe:service:registration"


def received(spec: EventSpec, data: BaseModel, *, event_type: str | None = None) -> ReceivedEvent:
    event: Any = make_event(data, event_type=event_type or spec.type, source=SOURCE, subject="edu-1")
    return ReceivedEvent(spec, event, spec.subject("must"), stream_seq=1, num_delivered=1)


def registered() -> EducatorRegistered:
    return EducatorRegistered(
        educator_id="edu-1", institution="must", language="mn", role="educator", registered_at=datetime.now(UTC)
    )


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def handlers(uow: FakeUnitOfWork) -> NotificationHandlers:
    return NotificationHandlers(NotificationUseCases(uow, certification_url="http://c", contact_wait_seconds=60))


async def test_contact_then_registration_queue_a_pending_welcome(
    uow: FakeUnitOfWork, handlers: NotificationHandlers
) -> None:
    contact = EducatorContact(
        educator_id="edu-1", institution="must", full_name="Батын Сарнай", email="s@must.edu.mn", language="mn"
    )
    await handlers.on_contact(received(EDUCATOR_CONTACT, contact))
    event = received(EDUCATOR_REGISTERED, registered())
    await handlers.on_event(event)

    [row] = uow.state.notifications.values()
    assert row.item.kind == "welcome" and row.item.event_id == event.id
    assert (row.item.status, row.item.recipient, row.item.language) == (
        NotificationStatus.PENDING,
        "s@must.edu.mn",
        "mn",
    )


async def test_a_course_completion_sends_no_mail_but_counts_for_the_digest(
    uow: FakeUnitOfWork, handlers: NotificationHandlers
) -> None:
    completed = CourseCompleted(
        educator_id="edu-1",
        institution="must",
        course_id="genai-fundamentals",
        score=90,
        completed_at=datetime.now(UTC),
    )
    await handlers.on_event(received(COURSE_COMPLETED, completed))
    await handlers.on_event(received(COURSE_COMPLETED, completed))
    assert uow.state.notifications == {} and uow.state.completions == {("edu-1", "genai-fundamentals")}


async def test_an_event_that_concerns_no_one_here_is_acknowledged_and_ignored(
    uow: FakeUnitOfWork, handlers: NotificationHandlers
) -> None:
    changed = EducatorRoleChanged(
        educator_id="edu-1", institution="must", role="master_teacher", changed_at=datetime.now(UTC)
    )
    await handlers.on_event(received(EDUCATOR_ROLE_CHANGED, changed))
    assert uow.state.notifications == {} and uow.commits == 0


async def test_data_that_does_not_match_its_type_is_unprocessable(handlers: NotificationHandlers) -> None:
    mislabelled = received(EDUCATOR_REGISTERED, registered(), event_type=CERTIFICATE_ISSUED.type)
    with pytest.raises(Unprocessable) as info:
        await handlers.on_event(mislabelled)
    assert info.value.reason == "invalid_data"
    with pytest.raises(Unprocessable):
        await handlers.on_contact(received(EDUCATOR_REGISTERED, registered()))


async def test_sessions_attendance_and_erasure_reach_their_use_cases(
    uow: FakeUnitOfWork, handlers: NotificationHandlers
) -> None:
    contact = EducatorContact(educator_id="edu-1", institution="must", full_name="A", email="a@b.mn", language="en")
    await handlers.on_contact(received(EDUCATOR_CONTACT, contact))
    attended = TraineeAttended(session_id="s-1", institution="must", educator_id="edu-1")
    await handlers.on_event(received(TRAINEE_ATTENDED, attended))
    assert set(uow.state.attendances) == {("s-1", "edu-1")} and uow.state.notifications == {}  # no session yet
    held = TrainingSessionHeld(
        session_id="s-1",
        institution="num",
        master_teacher_id="mt-1",
        region="Orkhon",
        mode="online",
        held_on=date(2026, 1, 5),
        language="ru",
    )
    await handlers.on_event(received(TRAINING_SESSION_HELD, held))
    [row] = uow.state.notifications.values()
    assert row.item.kind == "session_attended" and row.item.status is NotificationStatus.PENDING

    await handlers.on_event(
        received(EDUCATOR_ERASED, EducatorErased(educator_id="edu-1", institution="must", erased_at=datetime.now(UTC)))
    )
    assert uow.state.contacts == {} and row.item.status is NotificationStatus.EXPIRED
