"""The event entry point: a received CloudEvent reaches the use case; a refusal becomes a dead-letter reason."""

from __future__ import annotations

import json

import pytest

from iioe.parsing import parse_event
from iioe.runtime.consumer import Handler, ReceivedEvent, Unprocessable
from services.certification.handlers import event_handler
from services.certification.reference import builtin_catalogue
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.usecases import Certification

TIME = "2025-04-01T10:00:00+08:00"


def received(kind: str, data: dict[str, object], event_id: str, seq: int) -> ReceivedEvent:
    body = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:iioe:partner:test-lms",
        "type": f"org.iioe.{kind}.v1",
        "time": TIME,
        "subject": data["educator_id"],
        "datacontenttype": "application/json",
        "data": data,
    }
    raw = json.dumps(body).encode()
    subject = f"iioe.events.{data['institution']}.{kind.rsplit('.', 1)[1]}.v1"
    spec, event = parse_event(raw, subject)
    return ReceivedEvent(spec, event, subject, seq, 1, data=raw, stream="IIOE_EVENTS")


def registered(educator: str, institution: str = "must") -> ReceivedEvent:
    data = {"educator_id": educator, "institution": institution, "language": "en", "role": "educator"}
    return received("registration.educator_registered", {**data, "registered_at": TIME}, f"reg-{educator}", 1)


def completed(educator: str, course: str, score: float, institution: str = "must", seq: int = 2) -> ReceivedEvent:
    data = {"educator_id": educator, "institution": institution, "course_id": course, "score": score}
    return received("learning.course_completed", {**data, "completed_at": TIME}, f"done-{educator}-{seq}", seq)


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


@pytest.fixture
def handle(uow: FakeUnitOfWork) -> Handler:
    return event_handler(Certification(uow, builtin_catalogue(), {"must": {}}), "t-certification-progress")


async def test_events_reach_the_use_cases_and_a_parked_completion_keeps_its_origin(
    handle: Handler, uow: FakeUnitOfWork
) -> None:
    early = completed("edu-1", "genai-fundamentals", 90, seq=7)
    await handle(early)
    [parked] = uow.state.pending.values()
    assert (parked.raw, parked.subject, parked.stream, parked.stream_seq) == (
        early.data,
        early.subject,
        "IIOE_EVENTS",
        7,
    )
    assert parked.durable == "t-certification-progress"

    await handle(registered("edu-1"))
    assert uow.state.completions["edu-1"]["genai-fundamentals"].best_score == 90


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (completed("edu-1", "underwater-basket-weaving", 90), "unknown_course"),
        (completed("edu-1", "genai-fundamentals", 90, institution="num"), "institution_mismatch"),
    ],
)
async def test_a_refused_event_is_unprocessable_with_its_reason(
    handle: Handler, event: ReceivedEvent, reason: str
) -> None:
    await handle(registered("edu-1"))
    with pytest.raises(Unprocessable) as refused:
        await handle(event)
    assert refused.value.reason == reason
