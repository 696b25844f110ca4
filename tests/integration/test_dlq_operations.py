"""Operating IIOE_DLQ: retention per reason (server-enforced TTL), filtered list/show/purge, and a
re-drive that only targets subjects the letter's consumer consumes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from iioe.runtime import dlq
from iioe.runtime.dlq import (
    RedriveRefused,
    dead_letter,
    list_dead_letters,
    purge_dead_letters,
    redrive,
    retention_seconds,
    show_dead_letter,
    subject_matches,
)
from iioe.subjects import CONTACTS_STREAM, DLQ_STREAM, EVENTS_STREAM
from tests.support.helpers import eventually

pytestmark = pytest.mark.integration


def test_retention_depends_on_the_reason_and_never_outlives_contacts() -> None:
    day = 24 * 3600
    assert retention_seconds("invalid_json") == 30 * day
    assert retention_seconds("unknown_course") == 90 * day
    assert retention_seconds("processing_failed") == 180 * day
    assert retention_seconds("webhook_failed") == 90 * day
    assert retention_seconds("processing_failed", CONTACTS_STREAM) == 30 * day


def test_subject_matching_follows_nats_wildcards() -> None:
    assert subject_matches("iioe.events.*.course_completed.v1", "iioe.events.must.course_completed.v1")
    assert not subject_matches("iioe.events.*.course_completed.v1", "iioe.events.must.educator_registered.v1")
    assert subject_matches("iioe.events.>", "iioe.events.must.course_completed.v1")
    assert not subject_matches("iioe.events.>", "iioe.events")
    assert not subject_matches("iioe.events.*", "iioe.events.must.x")


async def test_list_show_purge_filter_and_redrive_checks_the_consumer(nc, ref) -> None:
    js = nc.jetstream()
    durable_a, durable_b = f"{ref}-a", f"{ref}-b"
    consumed = f"iioe.events.x{ref}.course_completed.v1"
    not_consumed = f"iioe.events.x{ref}.educator_registered.v1"
    for durable in (durable_a, durable_b):
        await js.add_consumer(
            EVENTS_STREAM,
            ConsumerConfig(durable_name=durable, ack_policy=AckPolicy.EXPLICIT, filter_subject=consumed),
        )

    async def letter(consumer: str, reason: str, subject: str, n: int) -> None:
        await dead_letter(
            js,
            data=f"body-{n}".encode(),
            original_subject=subject,
            consumer=consumer,
            reason=reason,
            detail="test",
            original_stream=EVENTS_STREAM,
            original_seq=n,
        )

    start = datetime.now(UTC) - timedelta(seconds=1)
    await letter(durable_a, "invalid_json", consumed, 1)
    await letter(durable_a, "processing_failed", consumed, 2)
    await letter(durable_a, "processing_failed", not_consumed, 3)
    await letter(durable_b, "invalid_json", consumed, 4)

    of_a = await list_dead_letters(js, consumer=durable_a)
    assert [x.original_seq for x in of_a] == [1, 2, 3]
    failed_a = await list_dead_letters(js, consumer=durable_a, reason="processing_failed")
    assert [x.original_seq for x in failed_a] == [2, 3]
    assert len(await list_dead_letters(js, consumer=durable_b, since=start)) == 1
    assert await list_dead_letters(js, consumer=durable_b, since=datetime.now(UTC) + timedelta(hours=1)) == []

    shown = await show_dead_letter(js, failed_a[0].seq)
    assert shown.consumer == durable_a and shown.reason == "processing_failed"
    raw = await js.get_msg(DLQ_STREAM, shown.seq)
    assert raw.headers is not None and raw.headers["Nats-TTL"] == str(retention_seconds("processing_failed"))

    with pytest.raises(RedriveRefused):
        await redrive(js, failed_a[1].seq)  # its consumer does not consume that subject
    assert await redrive(js, failed_a[0].seq)
    assert [x.original_seq for x in await list_dead_letters(js, consumer=durable_a)] == [1, 3]

    assert await purge_dead_letters(js, consumer=durable_a, reason="invalid_json") == 1
    assert [x.original_seq for x in await list_dead_letters(js, consumer=durable_a)] == [3]
    assert [x.original_seq for x in await list_dead_letters(js, consumer=durable_b)] == [4]
    assert await purge_dead_letters(js, consumer=durable_b, since=start) == 1
    assert await list_dead_letters(js, consumer=durable_b) == []


async def test_the_server_expires_letters_by_their_reason(nc, ref, monkeypatch) -> None:
    js = nc.jetstream()
    monkeypatch.setattr(dlq, "DAY", 1)  # a "day" of one second, so a 1-day reason expires in 1 s
    monkeypatch.setitem(dlq.RETENTION_DAYS, "invalid_json", 1)
    for reason in ("invalid_json", "processing_failed"):
        await dead_letter(
            js,
            data=b"x",
            original_subject=f"iioe.events.x{ref}.course_completed.v1",
            consumer=f"{ref}-c",
            reason=reason,
            detail="test",
            original_stream=EVENTS_STREAM,
            original_seq=1,
            msg_id=f"{ref}-{reason}",
        )

    async def only_processing_failed_left() -> bool:
        left = await list_dead_letters(js, consumer=f"{ref}-c")
        return [x.reason for x in left] == ["processing_failed"]

    await eventually(only_processing_failed_left, timeout=10, what="the 1-second letter expired")


async def test_an_empty_dead_letter_stream_lists_nothing(nc) -> None:
    assert await list_dead_letters(nc.jetstream()) == []
