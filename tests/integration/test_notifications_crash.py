"""A notifications process killed (SIGKILL) while an e-mail is being sent: exactly one mail in the end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client as NATS

from iioe.envelope import event_headers, make_event
from iioe.events import EDUCATOR_CONTACT, EDUCATOR_REGISTERED, EducatorContact, EducatorRegistered
from iioe_tools.embedded import free_port
from services.notifications.tests.fakes import smtp_server
from tests.support.helpers import Infra, ServiceProcess, eventually

pytestmark = pytest.mark.integration


async def test_kill_during_sending_then_restart_sends_exactly_one_mail(
    infra: Infra, database_url: str, nc: NATS, ref: str, tmp_path: Path
) -> None:
    inst, educator_id, address = f"i-{ref}", f"edu-{ref}", f"crash.{ref}@example.mn"
    with smtp_server() as (capture, smtp_port):
        env = {
            "NATS_URL": infra.nats_url,
            "DATABASE_URL": database_url,
            "IIOE_DATA_DIR": str(tmp_path),
            "IIOE_NOTIFICATIONS_CONSUMER_PREFIX": f"{ref}-",
            "IIOE_NOTIFICATIONS_API_TOKEN": "token",
            "IIOE_NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "IIOE_NOTIFICATIONS_SMTP_PORT": str(smtp_port),
            "IIOE_NOTIFICATIONS_SMTP_STARTTLS": "false",
            # the held SMTP answer outlasts the kill by far; the lease brings the row back after restart
            "IIOE_NOTIFICATIONS_SMTP_TIMEOUT_SECONDS": "10",
            "IIOE_NOTIFICATIONS_SEND_LEASE_SECONDS": "11",
            "IIOE_NOTIFICATIONS_MAIL_POLL_SECONDS": "0.1",
        }
        service = ServiceProcess("notifications", env, free_port(), tmp_path / "notifications.log")
        db = await asyncpg.connect(database_url, server_settings={"search_path": "notifications"})
        try:
            service.start()
            await service.wait_healthy()
            capture.hold.add(address)  # the relay takes the DATA but does not answer yet
            js = nc.jetstream()
            for spec, data in [
                (
                    EDUCATOR_CONTACT,
                    EducatorContact(
                        educator_id=educator_id, institution=inst, full_name="Crash Test", email=address, language="en"
                    ),
                ),
                (
                    EDUCATOR_REGISTERED,
                    EducatorRegistered(
                        educator_id=educator_id,
                        institution=inst,
                        language="en",
                        role="educator",
                        registered_at=datetime.now(UTC),
                    ),
                ),
            ]:
                event = make_event(data, event_type=spec.type, source="urn:iioe:service:registration")
                await js.publish(spec.subject(inst), event.to_json_bytes(), headers=event_headers(event))

            async def row() -> asyncpg.Record | None:
                return await db.fetchrow(
                    "SELECT notification_id, status, attempts FROM notifications WHERE educator_id = $1", educator_id
                )

            async def sending_and_held() -> bool:
                current = await row()
                return current is not None and current["status"] == "sending" and capture.held > 0

            await eventually(sending_and_held, timeout=180, what="the mail to be in flight")
            service.kill()
            capture.release()  # the held session now gets a 451: the relay never accepted the message
            stuck = await row()
            assert stuck is not None and (stuck["status"], stuck["attempts"]) == ("sending", 1)
            assert capture.to(address) == []

            service.start()
            await service.wait_healthy()

            async def sent() -> bool:
                current = await row()
                return current is not None and current["status"] == "sent"

            await eventually(sent, timeout=180, what="the mail sent after the lease expired")
            final = await row()
            assert final is not None and final["attempts"] == 2
            [mail] = capture.to(address)
            assert str(mail["X-IIOE-Notification-Id"]).strip() == final["notification_id"]  # folded header
        finally:
            service.stop()
            await db.close()
