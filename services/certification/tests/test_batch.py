"""The consumer's batch path (`handlers.batch_handler`, `Certification.batch`): a fetched batch applied in one
transaction must decide exactly what the same events decide one by one, and a refusal must leave nothing."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from iioe.events import CertificateIssued
from iioe.runtime.consumer import ReceivedEvent, Unprocessable
from services.certification.handlers import batch_handler, event_handler
from services.certification.reference import builtin_catalogue
from services.certification.tests.fakes import FakeUnitOfWork
from services.certification.tests.test_handlers import completed, registered
from services.certification.usecases import Certification

COURSES = (
    "genai-fundamentals",
    "teaching-with-ai",
    "future-classroom",
    "lbt-lightboard-studio",
    "lbt-video-lecture-production",
)


def service(uow: FakeUnitOfWork, issued: list[str] | None = None) -> Certification:
    on_issued = issued.append if issued is not None else None
    return Certification(uow, builtin_catalogue(), {"must": {}, "num": {}}, on_issued=on_issued)


def history(seed: int) -> list[ReceivedEvent]:
    """Registrations and completions of a few educators in a shuffled order: completions before their
    registration (parked), retakes, low scores, re-deliveries of the same event."""
    rng = random.Random(seed)
    events: list[ReceivedEvent] = []
    seq = 0
    for n in range(8):
        educator = f"edu-{seed}-{n}"
        mine = [registered(educator)] if rng.random() < 0.9 else []
        for course in rng.sample(COURSES, rng.randint(1, len(COURSES))):
            for _ in range(rng.randint(1, 2)):
                seq += 1
                mine.append(completed(educator, course, rng.choice((55.0, 79.5, 80.0, 95.0)), seq=seq))
        events += mine
    rng.shuffle(events)
    return events + rng.sample(events, 5)  # re-deliveries


def decided(uow: FakeUnitOfWork) -> dict[str, Any]:
    """What the rules decided, without what is random by design (signatures, status list indexes)."""
    s = uow.state
    return {
        "educators": s.educators,
        "completions": s.completions,
        "pending": set(s.pending),
        "certificates": sorted(
            (c.educator_id, c.programme_id, c.course_ids, c.credits) for c in s.certificates.values()
        ),
        "entries per list": Counter(e.list_id for e in s.status_entries.values()),
        "events": sorted(e.event_id for e in s.events),
        "inbox": s.inbox,
    }


@pytest.mark.parametrize("seed", range(12))
async def test_a_batch_decides_what_the_same_events_decide_one_by_one(seed: int) -> None:
    events = history(seed)
    one_by_one, batched = FakeUnitOfWork(), FakeUnitOfWork()
    handle = event_handler(service(one_by_one), "t-progress")
    for received in events:
        await handle(received)
    on_batch = batch_handler(service(batched), "t-progress")
    rng = random.Random(seed)
    start = 0
    while start < len(events):
        size = rng.randint(1, 30)
        await on_batch(events[start : start + size])
        start += size

    assert decided(batched) == decided(one_by_one)
    assert batched.commits < one_by_one.commits  # fewer transactions is the point


async def test_every_educator_of_a_batch_is_locked_up_front_once_in_sorted_order() -> None:
    uow = FakeUnitOfWork()
    events = [completed("edu-b", COURSES[0], 90, seq=3), registered("edu-c"), registered("edu-a")]
    events.append(completed("edu-b", COURSES[1], 90, seq=4))
    await batch_handler(service(uow), "t-progress")(events)
    assert uow.state.locked_batches == [["edu-a", "edu-b", "edu-c"]]
    assert uow.commits == 1


async def test_a_refused_event_rolls_the_whole_batch_back_and_counts_no_certificate() -> None:
    uow, issued = FakeUnitOfWork(), list[str]()
    certification = service(uow, issued)
    await batch_handler(certification, "t-progress")([registered("edu-1"), registered("edu-2")])
    before = decided(uow)
    batch = [completed("edu-1", course, 95, seq=10 + i) for i, course in enumerate(COURSES[:3])]
    batch.append(completed("edu-2", "underwater-basket-weaving", 95, seq=20))

    with pytest.raises(Unprocessable) as refused:
        await batch_handler(certification, "t-progress")(batch)

    assert refused.value.reason == "unknown_course"
    assert decided(uow) == before  # the consumer now retries one by one: nothing of the batch was kept
    assert issued == []
    await batch_handler(certification, "t-progress")(batch[:3])
    assert issued == ["ai-in-higher-education"]  # counted once the transaction committed
    assert [e.data.educator_id for e in uow.state.events if isinstance(e.data, CertificateIssued)] == ["edu-1"]
