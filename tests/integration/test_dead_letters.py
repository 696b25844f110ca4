"""Dead letters: junk and poison messages go to IIOE_DLQ with a reason; good ones keep flowing."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.consumer import ConsumerSpec, EventConsumer, ReceivedEvent
from iioe.runtime.dlq import H_CONSUMER, H_REASON, H_SUBJECT, list_dead_letters, redrive
from iioe.subjects import DLQ_STREAM, EVENTS_STREAM, dlq_filter, dlq_subject, event_subject
from tests.support.helpers import StoredMessage, completion, eventually, stream_messages

pytestmark = pytest.mark.integration


async def test_junk_is_dead_lettered_with_reasons_while_good_events_flow(nc: NATS, ref: str) -> None:
    js = nc.jetstream()
    inst = f"x{ref}"
    subject = event_subject(inst, "course_completed")
    handled: list[str] = []
    attempts: Counter[str] = Counter()

    async def handler(received: ReceivedEvent) -> None:
        attempts[received.id] += 1
        if received.id == f"{ref}-flaky" and attempts[received.id] == 1:
            raise ConnectionError("database blinked")
        if received.id == f"{ref}-poison":
            raise RuntimeError("always fails")
        handled.append(received.id)

    durable = f"{ref}-dlq-test"
    consumer = EventConsumer(
        js,
        ConsumerSpec(durable, EVENTS_STREAM, [subject], handler, max_deliver=3, retry_backoff_seconds=(0.1,)),
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await js.publish(subject, completion(f"{ref}-good-1", inst))
        await js.publish(subject, b"this is not json")
        await js.publish(subject, completion(f"{ref}-bad-score", inst, score=140))
        await js.publish(subject, completion(f"{ref}-wrong-subject", "must"))
        await js.publish(subject, completion(f"{ref}-flaky", inst))
        await js.publish(subject, completion(f"{ref}-poison", inst))
        await js.publish(subject, completion(f"{ref}-good-2", inst))

        async def dead() -> list[StoredMessage]:
            msgs = await stream_messages(nc, DLQ_STREAM, dlq_filter(durable))
            return msgs if len(msgs) >= 4 else []

        letters = await eventually(dead, timeout=30, what="four dead letters")
        await eventually(lambda: _true_if(len(handled) >= 3), what="good events handled")
    finally:
        task.cancel()

    assert sorted(handled) == sorted([f"{ref}-good-1", f"{ref}-flaky", f"{ref}-good-2"])
    assert attempts[f"{ref}-flaky"] == 2
    assert attempts[f"{ref}-poison"] == 3
    reasons = {m.headers[H_REASON]: m for m in letters}
    assert set(reasons) == {"invalid_json", "score_out_of_range", "subject_institution_mismatch", "processing_failed"}
    junk = reasons["invalid_json"]
    assert junk.data == b"this is not json"  # the original bytes, untouched
    assert junk.headers[H_SUBJECT] == subject and junk.headers[H_CONSUMER] == durable
    assert junk.subject == dlq_subject(durable, "invalid_json")

    listed = [d for d in await list_dead_letters(js, limit=1000) if d.consumer == durable]
    assert {d.reason for d in listed} == set(reasons)

    # re-drive the poison message once its cause is fixed: it flows again to the original subject
    poison = next(d for d in listed if d.reason == "processing_failed")
    await redrive(js, poison.seq)
    again = [m for m in await stream_messages(nc, EVENTS_STREAM, subject) if f'"{ref}-poison"'.encode() in m.data]
    assert len(again) == 2
    remaining = [d for d in await list_dead_letters(js, limit=1000) if d.consumer == durable]
    assert poison.seq not in {d.seq for d in remaining}


async def _true_if(value: bool) -> bool:
    return value


async def test_a_durable_consumer_follows_changed_filters(nc: NATS, ref: str) -> None:
    js = nc.jetstream()
    first, second = event_subject(f"x{ref}", "course_completed"), event_subject(f"x{ref}", "educator_registered")

    async def ignore(_: ReceivedEvent) -> None:
        return None

    durable = f"{ref}-filters"
    await EventConsumer(js, ConsumerSpec(durable, EVENTS_STREAM, [first], ignore)).start()
    await EventConsumer(js, ConsumerSpec(durable, EVENTS_STREAM, [first, second], ignore)).start()
    info = await js.consumer_info(EVENTS_STREAM, durable)
    assert sorted(info.config.filter_subjects or []) == sorted([first, second])
