"""The rebuild's stream reader: every message once, in order, and a stale empty read-ahead never ends a replay."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS
from nats.js.api import StreamConfig

from services.analytics.pull import Batch, BatchPuller, MessagesLost

pytestmark = pytest.mark.integration


@pytest.fixture
async def stream(nc: NATS, ref: str) -> AsyncIterator[str]:
    """A scratch stream of this test's own (the platform's streams may be shared between tests)."""
    name = f"PULLTEST_{ref.upper()}"
    await nc.jetstream().add_stream(StreamConfig(name=name, subjects=[f"pulltest.{ref}.>"]))
    yield name
    await nc.jetstream().delete_stream(name)


async def publish(nc: NATS, ref: str, first: int, count: int) -> None:
    js = nc.jetstream()
    for i in range(first, first + count):
        await js.publish(f"pulltest.{ref}.m", str(i).encode())


async def read_all(puller: BatchPuller) -> list[Batch]:
    batches = []
    while (batch := await puller.next_batch()) is not None:
        batches.append(batch)
    return batches


async def test_every_message_once_in_order_then_what_comes_later(nc: NATS, ref: str, stream: str) -> None:
    await publish(nc, ref, 1, 23)
    puller = BatchPuller(nc, stream, f"pulltest.{ref}.>", 5)
    await puller.start(nc.jetstream())
    try:
        batches = await read_all(puller)
        assert [len(b.msgs) for b in batches] == [5, 5, 5, 5, 3]  # the last request ends at once, short
        assert [int(m.data) for b in batches for m in b.msgs] == list(range(1, 24))
        assert [b.last_seq for b in batches] == [5, 10, 15, 20, 23] and batches[-1].pending == 0

        await publish(nc, ref, 24, 2)
        later = await read_all(puller)
        assert [int(m.data) for b in later for m in b.msgs] == [24, 25]
    finally:
        await puller.close()


async def test_an_empty_read_ahead_from_before_is_asked_again(nc: NATS, ref: str, stream: str) -> None:
    """The read-ahead after the last full batch finds nothing; messages published afterwards still come
    (the rebuild's swap replays its tail this way: an early empty answer must not end it)."""
    await publish(nc, ref, 1, 10)
    puller = BatchPuller(nc, stream, f"pulltest.{ref}.>", 5)
    await puller.start(nc.jetstream())
    try:
        assert [len(b.msgs) for b in await read_all(puller)] == [5, 5]
        await publish(nc, ref, 11, 3)
        batch = await puller.next_batch()
        assert batch is not None and [int(m.data) for m in batch.msgs] == [11, 12, 13]
    finally:
        await puller.close()


async def test_a_message_lost_in_the_client_stops_the_replay(nc: NATS, ref: str, stream: str) -> None:
    """The consumer never redelivers: a gap in its delivery count must fail loudly, not give smaller numbers."""
    await publish(nc, ref, 1, 10)
    puller = BatchPuller(nc, stream, f"pulltest.{ref}.>", 5)
    await puller.start(nc.jetstream())
    try:
        assert await puller.next_batch() is not None
        second = await puller.next_batch()
        assert second is not None
        puller._received -= 1  # as if one message of those batches had been dropped before it reached us
        await publish(nc, ref, 11, 1)
        with pytest.raises(MessagesLost):
            await read_all(puller)
    finally:
        await puller.close()
