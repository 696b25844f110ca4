"""Stream provisioning is idempotent and keeps what operators tuned."""

from __future__ import annotations

import pytest
from nats.aio.client import Client as NATS

from iioe.runtime.nats import provision_streams
from iioe.subjects import CONTACTS_STREAM, DLQ_STREAM, EVENTS_STREAM, MAX_EVENT_BYTES

pytestmark = pytest.mark.integration


async def test_streams_follow_the_contract_and_provisioning_twice_changes_nothing(nc: NATS) -> None:
    js = nc.jetstream()
    assert await provision_streams(js) == await provision_streams(js)
    events = (await js.stream_info(EVENTS_STREAM)).config
    assert events.subjects == ["iioe.events.>"]
    assert str(getattr(events.storage, "value", events.storage)) == "file"
    assert str(getattr(events.retention, "value", events.retention)) == "limits"
    assert (events.duplicate_window or 0) >= 120
    assert events.max_msg_size == MAX_EVENT_BYTES
    contacts = (await js.stream_info(CONTACTS_STREAM)).config
    assert contacts.subjects == ["iioe.contacts.>"] and contacts.max_age == 30 * 24 * 3600
    assert (await js.stream_info(DLQ_STREAM)).config.subjects == ["iioe.dlq.>"]


async def test_an_oversized_event_is_rejected_by_the_server_with_a_reason(nc: NATS) -> None:
    from nats.js.errors import APIError

    with pytest.raises(APIError) as caught:
        await nc.jetstream().publish(
            "iioe.events.must.course_completed.v1", b"{" + b" " * (MAX_EVENT_BYTES + 10) + b"}"
        )
    assert "size" in str(caught.value).lower()
