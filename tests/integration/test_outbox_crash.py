"""The outbox across a crash: state committed, process killed before publishing, restarted."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS

from iioe.subjects import EVENTS_STREAM, event_subject
from iioe_tools.embedded import free_port
from tests.support.helpers import Infra, ServiceProcess, StoredMessage, eventually, stream_messages

pytestmark = pytest.mark.integration


async def test_event_committed_before_a_crash_is_published_exactly_once_after_restart(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    env = {
        "NATS_URL": infra.nats_url,
        "DATABASE_URL": database_url,
        "IIOE_REGISTRATION_CONSUMER_PREFIX": f"{ref}-",
        "IIOE_REGISTRATION_OUTBOX_POLL_SECONDS": "0.1",
        "IIOE_REGISTRATION_API_TOKEN": f"operator-{ref}",
    }
    service = ServiceProcess("registration", env, free_port(), tmp_path / "registration.log")
    service.start(IIOE_REGISTRATION_OUTBOX_RELAY_ENABLED="false")  # commit happens, publish never does
    try:
        await service.wait_healthy()
        operator = {"Authorization": f"Bearer operator-{ref}"}
        async with httpx.AsyncClient(base_url=service.base_url, headers=operator) as http:
            reply = await http.post(
                "/v1/educators",
                json={
                    "institution": "must",
                    "full_name": "Crash Test",
                    "email": f"{ref}@must.edu.mn",
                    "language": "en",
                },
            )
        assert reply.status_code == 201, reply.text
        educator_id = reply.json()["educator_id"]
        service.kill()

        db = await asyncpg.connect(database_url, server_settings={"search_path": "registration"})
        try:
            pending = await db.fetch("SELECT event_id FROM outbox WHERE published_at IS NULL")
            assert len(pending) == 2  # EducatorRegistered + EducatorContact, committed with the educator

            async def mine() -> list[StoredMessage]:
                msgs = await stream_messages(nc, EVENTS_STREAM, event_subject("must", "educator_registered"))
                return [m for m in msgs if m.json()["data"]["educator_id"] == educator_id]

            assert await mine() == []

            service.start()  # relay enabled again
            await service.wait_healthy()
            published = await eventually(mine, what="the committed event after restart")
            assert len(published) == 1

            # a crash after publish but before marking: the row is sent again with the same Nats-Msg-Id
            event_id = published[0].json()["id"]
            await db.execute("UPDATE outbox SET published_at = NULL WHERE event_id = $1", event_id)

            async def marked_again() -> bool:
                return bool(
                    await db.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE event_id = $1", event_id)
                )

            await eventually(marked_again, what="the relay to re-send the row")
            assert len(await mine()) == 1  # JetStream dropped the duplicate
        finally:
            await db.close()
    finally:
        service.stop()
